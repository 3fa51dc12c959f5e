"""Backend registry: built-ins, availability, entry-point plugins."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from recon import registry
from recon.errors import ConfigError, DependencyError
from recon.registry import BackendSpec


def test_builtins_listed_and_available():
    table = registry.backends()
    assert "poisson" in table
    ok, why = table["poisson"].available()
    assert ok, why
    assert table["poisson"].requires == {"points", "normals"}


def test_unknown_backend_lists_known():
    with pytest.raises(ConfigError, match="use one of: .*poisson"):
        registry.get_backend("nope")


@dataclass
class _Cfg:
    x: int = 1


class _Impl:
    def __init__(self, cfg):
        self.cfg = cfg


def test_missing_dependency_is_a_clear_error():
    spec = BackendSpec("fake", f"{__name__}:_Cfg", f"{__name__}:_Impl", frozenset({"points"}), "test",
                       python_deps=("definitely_not_installed_pkg",))
    ok, why = spec.available()
    assert not ok and "definitely_not_installed_pkg" in why
    with pytest.raises(DependencyError, match="definitely_not_installed_pkg"):
        spec.build(_Cfg())


def test_entry_point_plugin(monkeypatch):
    spec = BackendSpec("plugin-x", f"{__name__}:_Cfg", f"{__name__}:_Impl", frozenset({"points"}), "plugin")

    class EP:
        def load(self):
            return spec

    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: [EP()] if group == "recon.backends" else [])
    table = registry.backends()
    assert table["plugin-x"] is spec
    assert isinstance(registry.get_backend("plugin-x").build(_Cfg(3)), _Impl)
