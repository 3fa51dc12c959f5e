"""Normal estimation and orientation.

:func:`estimate_normals` = an unoriented estimator from :data:`NORMAL_METHODS`
(``"pca"`` built in; more register with :func:`register_normal_method`) followed
by an orientation step (``"mst"``, ``"sensor"`` or ``"none"``). One kNN query is
shared by both steps. A method not yet registered is looked up as the module
``recon.normals.<method>``, imported on first use (it registers itself).

A normal method is a function ``fn(points, *, k, neighbors) -> normals`` where
``points`` is (N, 3) float64 (recentred), ``k`` the requested neighbourhood size
or None for the method's default, ``neighbors`` an (N, K) int64 kNN index array
with each point first (the method may ignore it or need more columns), and the
result (N, 3) unit normals of any sign, without NaN.
"""

from __future__ import annotations

import pkgutil
from typing import Callable

import numpy as np

from recon.errors import ConfigError, InputError
from recon.normals.orient import DEFAULT_K as ORIENT_K
from recon.normals.orient import orient_mst, orient_towards_sensor
from recon.normals.pca import DEFAULT_K as PCA_K
from recon.normals.pca import MAX_K, MIN_K, check_points, clip_k, pca_normals
from recon.ops.knn import build_tree, knn

NormalMethod = Callable[..., np.ndarray]


def _pca(points: np.ndarray, *, k: int | None, neighbors: np.ndarray | None) -> np.ndarray:
    return pca_normals(points, k, neighbors=neighbors)  # type: ignore[return-value]


#: name -> unoriented normal estimator (see the module docstring for the signature).
NORMAL_METHODS: dict[str, NormalMethod] = {"pca": _pca}
#: name -> default k of the method, used to size the shared kNN query.
_DEFAULT_K: dict[str, int] = {"pca": PCA_K}

ORIENT_MODES = ("mst", "sensor", "none")


def register_normal_method(name: str, fn: NormalMethod, default_k: int = PCA_K) -> None:
    """Add (or replace) an unoriented normal estimator under ``name``.

    Args:
        name: method name used by ``estimate_normals(method=...)``.
        fn: ``fn(points, *, k, neighbors) -> (N, 3)`` unit normals.
        default_k: neighbourhood size it uses when ``k`` is None (sizes the shared kNN).
    """
    NORMAL_METHODS[name] = fn
    _DEFAULT_K[name] = int(default_k)


def choose_orientation(mode: str, has_sensor: bool, source: str | None = None) -> str:
    """The orientation to run for a requested ``mode``: "auto" is "sensor" when sensor positions are
    known, else "mst"; the others are kept.

    Raises:
        ConfigError: an unknown mode.
        InputError: "sensor" for an input without sensor positions (``source`` names it).
    """
    if mode == "auto":
        return "sensor" if has_sensor else "mst"
    if mode not in ORIENT_MODES:
        raise ConfigError(f"unknown normal orientation '{mode}'", None, f"use auto or one of: {', '.join(ORIENT_MODES)}")
    if mode == "sensor" and not has_sensor:
        raise InputError("normal orientation 'sensor' needs sensor positions, which the input lacks", source,
                          "give the scanner position (--sensor X,Y,Z) or use orientation mst")
    return mode


def available_normal_methods() -> list[str]:
    """Names ``estimate_normals`` accepts: the registered methods and the plugin packages here (not imported)."""
    plugins = [m.name for m in pkgutil.iter_modules(__path__) if m.ispkg]
    return sorted(set(NORMAL_METHODS) | set(plugins))


def check_normal_method(method: str) -> None:
    """Raise ConfigError for a name :func:`available_normal_methods` does not list."""
    methods = available_normal_methods()
    if method not in methods:
        raise ConfigError(f"unknown normal method '{method}'", None, f"use one of: {', '.join(methods)}")


def _import_plugin(method: str) -> None:
    """Import ``recon.normals.<method>`` if it exists; such a module registers itself."""
    import importlib
    import importlib.util

    if not method.isidentifier() or method in ("pca", "orient"):
        return
    name = f"{__name__}.{method}"
    try:
        if importlib.util.find_spec(name) is None:
            return
    except (ImportError, ValueError):
        return
    importlib.import_module(name)


def estimate_normals(
    points: np.ndarray,
    *,
    method: str = "pca",
    k: int | None = None,
    orient: str = "mst",
    sensor: np.ndarray | None = None,
) -> np.ndarray:
    """Estimate oriented unit normals of a point cloud.

    Args:
        points: (N, 3) positions, world units, N >= 3, finite.
        method: a key of :data:`NORMAL_METHODS` ("pca").
        k: neighbourhood size of the method (excluding the point), default per method
            (20 for PCA), clipped to N - 1.
        orient: "mst" (spanning-tree propagation + outward vote per connected piece;
            with ``sensor`` the per-piece sign follows the sensor instead), "sensor"
            (each normal faces ``sensor``; requires it) or "none" (arbitrary signs).
        sensor: (3,) or (N, 3) scanner position(s), world units.

    Returns:
        (N, 3) float32 unit normals.

    Raises:
        InputError: bad points (shape, < 3 points, NaN) or sensor shape.
        ConfigError: unknown method or orientation, k outside MIN_K..MAX_K, or orient="sensor" without a sensor.
    """
    if method not in NORMAL_METHODS:
        _import_plugin(method)
    if method not in NORMAL_METHODS:
        check_normal_method(method)
        raise ConfigError(f"normal method '{method}' did not register itself", None, "report this as a bug")
    if orient not in ORIENT_MODES:
        raise ConfigError(f"unknown normal orientation '{orient}'", None, f"use one of: {', '.join(ORIENT_MODES)}")
    if orient == "sensor" and sensor is None:
        raise ConfigError("normal orientation 'sensor' needs sensor positions", None,
                          "give the scanner position(s) or use orient='mst'")
    if k is not None and not MIN_K <= int(k) <= MAX_K:
        raise ConfigError(f"k must be in {MIN_K}..{MAX_K}, got {k}", None, f"use k between {MIN_K} and {MAX_K}, e.g. 20")
    p = check_points(points)
    centre = p.mean(axis=0)
    # work in a spatially coherent order (the kd-tree's leaf order): the kNN queries
    # and the neighbour gathers of PCA and MST then hit the cache; undone at the end
    order = np.asarray(build_tree(p).indices)
    p = p[order] - centre
    n_pts = p.shape[0]
    k_method = clip_k(k if k is not None else _DEFAULT_K.get(method, PCA_K), n_pts)
    k_orient = clip_k(ORIENT_K, n_pts)
    kq = max(k_method, k_orient if orient == "mst" else 0) + 1
    _, idx = knn(p, kq)
    normals = np.asarray(NORMAL_METHODS[method](p, k=k_method, neighbors=idx), dtype=np.float32)
    if normals.shape != p.shape or not np.isfinite(normals).all():
        raise InputError(f"normal method '{method}' returned invalid normals")
    s = None
    if sensor is not None:
        s = np.asarray(sensor, dtype=np.float64)
        if s.shape == (n_pts, 3):
            s = s[order]
        s = s - centre
    if orient == "sensor":
        normals = orient_towards_sensor(p, normals, s)
    elif orient == "mst":
        if method == "pca":
            normals = orient_mst(p, normals, k_orient, neighbors=idx, sensor=s)  # type: ignore[assignment]
        else:
            # Sign propagation is most reliable on smooth normals: orient PCA normals over the
            # same graph, then give each learned normal the sign of its oriented PCA normal.
            # (Propagating over sharper learned normals flipped whole parts, e.g. buddha.)
            guide = pca_normals(p, k=clip_k(PCA_K, n_pts), neighbors=idx)
            guide = orient_mst(p, guide, k_orient, neighbors=idx, sensor=s)
            flip = np.einsum("ij,ij->i", normals, guide) < 0
            normals = np.where(flip[:, None], -normals, normals).astype(np.float32)
    out = np.empty_like(normals)
    out[order] = normals
    return out


__all__ = ["MAX_K", "MIN_K", "NORMAL_METHODS", "ORIENT_MODES", "available_normal_methods", "check_normal_method",
           "choose_orientation",
           "estimate_normals", "orient_mst", "orient_towards_sensor",
           "pca_normals", "register_normal_method"]
