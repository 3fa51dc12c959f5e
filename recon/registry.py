"""Name -> backend registry: built-ins plus the entry-point group ``recon.backends``.

A backend is described by a :class:`BackendSpec` that names its config class and
implementation lazily ("module:attribute"), so listing backends imports nothing heavy.
A third-party package registers one with::

    [project.entry-points."recon.backends"]
    mybackend = "mypkg.recon_plugin:SPEC"     # a BackendSpec instance

A backend implementation is a class built from its config that has
``fit(cloud, *, device="cpu", progress=NULL_PROGRESS) -> Field | Mesh``; ``cloud`` is
in the pipeline's local frame (recentred, world units) and so is the result.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from recon.errors import ConfigError, DependencyError
from recon.progress import NULL_PROGRESS, Progress
from recon.types import Mesh, PointCloud


class Backend(Protocol):
    def fit(self, cloud: PointCloud, *, device: str = "cpu", progress: Progress = NULL_PROGRESS) -> Any:
        """Reconstruct; returns a :class:`~recon.field.Field` or a :class:`~recon.types.Mesh`."""
        ...


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, attr) if attr else mod


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend.

    Attributes:
        name: registry name used on the command line.
        config: "module:Class" of its config dataclass.
        target: "module:Class" of the implementation, constructed as ``Class(config)``.
        requires: inputs it needs, a subset of {"points", "normals", "images"}.
        description: one line for ``recon backends``.
        python_deps: importable modules it needs, checked by :meth:`available`.
        needs_gpu: True when it cannot run on a CPU.
    """

    name: str
    config: str
    target: str
    requires: frozenset[str]
    description: str
    python_deps: tuple[str, ...] = ()
    needs_gpu: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def config_class(self) -> type:
        return _load(self.config)

    def available(self) -> tuple[bool, str]:
        """(can run here, reason if not)."""
        for dep in self.python_deps:
            try:
                importlib.import_module(dep)
            except Exception as e:  # noqa: BLE001 - any import failure means unavailable
                return False, f"python package '{dep}' cannot be imported ({type(e).__name__})"
        if self.needs_gpu:
            try:
                import torch

                if not torch.cuda.is_available():
                    return False, "needs a CUDA GPU"
            except ImportError:
                return False, "needs torch with CUDA"
        return True, ""

    def build(self, config: Any) -> Backend:
        ok, why = self.available()
        if not ok:
            raise DependencyError(f"backend '{self.name}' cannot run here: {why}", None,
                                  f"install what it needs (pip install {' '.join(self.python_deps)}) or pick another backend")
        return _load(self.target)(config)


BUILTIN_BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec(
        name="poisson",
        config="recon.backends.poisson:PoissonConfig",
        target="recon.backends.poisson:PoissonBackend",
        requires=frozenset({"points", "normals"}),
        description="Open3D screened Poisson with density trimming (the baseline)",
        python_deps=("open3d",),
    ),
    BackendSpec(
        name="kernel",
        config="recon.backends.kernel.config:KernelConfig",
        target="recon.backends.kernel.backend:KernelBackend",
        requires=frozenset({"points", "normals"}),
        description="compact-kernel field with a sparse solver (NKSR, training-free core)",
        python_deps=("torch", "scipy"),
    ),
    BackendSpec(
        name="volsdf",
        config="recon.backends.volsdf.config:VolSDFConfig",
        target="recon.backends.volsdf.backend:VolSDFBackend",
        requires=frozenset({"images"}),
        description="SDF volume rendering from posed images (VolSDF: Laplace density, error-bounded sampling)",
        python_deps=("torch",),
    ),
    BackendSpec(
        name="gvkf",
        config="recon.backends.gvkf.config:GVKFConfig",
        target="recon.backends.gvkf.backend:GVKFBackend",
        requires=frozenset({"images"}),
        description="3D Gaussians rasterised differentiably, opacity turned into a signed distance (GVKF)",
        python_deps=("torch", "scipy"),
    ),
)


def _entry_point_specs() -> list[BackendSpec]:
    from importlib.metadata import entry_points

    specs = []
    for ep in entry_points(group="recon.backends"):
        try:
            obj = ep.load()
        except Exception:  # noqa: BLE001 - a broken plugin must not break the tool
            continue
        if callable(obj) and not isinstance(obj, BackendSpec):
            obj = obj()
        if isinstance(obj, BackendSpec):
            specs.append(obj)
    return specs


def backends() -> dict[str, BackendSpec]:
    """All registered backends by name (built-ins first, then plugins)."""
    out = {s.name: s for s in BUILTIN_BACKENDS}
    for s in _entry_point_specs():
        out.setdefault(s.name, s)
    return out


def get_backend(name: str) -> BackendSpec:
    table = backends()
    if name not in table:
        raise ConfigError(f"unknown backend '{name}'", None, f"use one of: {', '.join(sorted(table))}")
    return table[name]


Factory = Callable[..., Any]
__all__ = ["Backend", "BackendSpec", "BUILTIN_BACKENDS", "backends", "get_backend", "Mesh"]
