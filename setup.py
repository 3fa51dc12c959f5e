"""Package discovery: the library ``recon`` plus the front ends in ``apps/`` installed as ``recon_apps``.

Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

apps = ["recon_apps" + p[len("apps"):] for p in find_packages(include=["apps", "apps.*"])]
setup(
    packages=find_packages(include=["recon", "recon.*"]) + apps,
    package_dir={"recon_apps": "apps"},
)
