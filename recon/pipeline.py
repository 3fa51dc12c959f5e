"""load -> prepare -> backend -> mesh -> world units.

:func:`reconstruct` is what the ``recon reconstruct`` command runs; it is equally
usable from Python::

    from recon.io import load_point_cloud
    from recon.pipeline import reconstruct
    result = reconstruct(load_point_cloud("scan.ply"), backend="poisson")
    result.mesh   # recon.types.Mesh in the input's world units
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from recon.backends.scene_bound import clean_to_bound
from recon.config import (
    check_limits,
    from_dict,
    load_yaml,
    parse_override,
    set_nested,
    to_dict,
)
from recon.device import resolve_device
from recon.errors import ConfigError, EmptyResultError, InputError
from recon.normals import MAX_K, MIN_K, check_normal_method, choose_orientation, estimate_normals
from recon.ops.transforms import LocalFrame, centred_frame
from recon.progress import NULL_PROGRESS, Progress
from recon.registry import BackendSpec, get_backend
from recon.registry import backends as all_backends
from recon.types import Mesh, PointCloud, Views

DEFAULT_BACKEND = "kernel"


@dataclass
class NormalsConfig:
    """How normals are estimated when the input has none."""

    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"k": (MIN_K, MAX_K)}

    method: str = "pca"
    """normal estimator: "pca" (kNN PCA), or a registered learned method such as "hdfe"."""
    k: int | None = None
    """neighbours per point; None picks the method's default."""
    orient: Literal["auto", "mst", "sensor", "none"] = "auto"
    """orientation: "auto" uses sensor positions when the input has them, else "mst"."""

    def __post_init__(self) -> None:
        check_normal_method(self.method)
        check_limits(self, self.LIMITS, "normals.")


@dataclass
class ReconstructConfig:
    """Top-level settings of one reconstruction; the chosen backend's options are a separate typed
    config (see :func:`load_reconstruct_config`, :func:`preset_dict`)."""

    backend: str = DEFAULT_BACKEND
    """registered backend name (see `recon backends`)."""
    device: str = "auto"
    """"auto", "cpu" or "cuda"."""
    normals: NormalsConfig = field(default_factory=NormalsConfig)
    """normal estimation for inputs without normals."""


def load_reconstruct_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    backend: str | None = None,
    device: str | None = None,
    default_backend: str = DEFAULT_BACKEND,
    *,
    values: dict[str, Any] | None = None,
) -> tuple[ReconstructConfig, Any, BackendSpec]:
    """Merge a YAML preset, ``--set`` text, explicit options and typed values, in that order.

    A preset looks like::

        backend: kernel
        device: auto
        normals: {method: pca, k: 20}
        kernel: {detail: 0.5, mise_iter: 1}     # section named after the backend

    Keys of ``overrides`` (``"key=value"`` text, values read as YAML) and of ``values`` (typed
    Python values, no parsing) are placed alike: ``normals.k``, ``backend`` and ``device`` go to
    the top level, ``kernel.detail`` to that backend's section, and a bare ``detail`` to the chosen
    backend's section. The backend is chosen by ``overrides`` or ``values`` naming one, else
    ``backend``, else the preset, else ``default_backend`` (the CLI passes "gvkf" for
    posed-image folders).

    Returns:
        (top-level config, the backend's typed config, its registry spec). The typed backend config
        is the one copy of the backend's options; :func:`preset_dict` joins the two for output.

    Raises:
        ConfigError: unknown backend, key or section, or a value of the wrong type or range.
    """
    source = None if path is None else os.fspath(path)
    data: dict[str, Any] = dict(load_yaml(source)) if source else {}
    if backend is not None:
        data["backend"] = backend
    if device is not None:
        data["device"] = device
    backend_names = set(all_backends())
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for k, v in data.items():
        if k in backend_names:
            if not isinstance(v, dict):
                raise ConfigError(f"config section '{k}' must be a mapping of options", source,
                                  f"write '{k}:' followed by indented 'option: value' lines")
            sections[k] = dict(v)
        else:
            top[k] = v
    items = [parse_override(item) for item in overrides or []]
    items += [(str(k).split("."), v) for k, v in (values or {}).items()]
    for keys, value in items:
        if keys == ["backend"]:
            top["backend"] = value
    name = top.get("backend", default_backend)
    if not isinstance(name, str):
        raise ConfigError(f"config key 'backend' has value {name!r}, expected a name", source, "write backend: poisson")
    spec = get_backend(name)
    for keys, value in items:
        if keys[0] in backend_names:
            if keys[0] != name:  # an option of a backend that will not run would be ignored
                raise ConfigError(f"'{'.'.join(keys)}' is a {keys[0]} option, but the backend is '{name}'", source,
                                  f"use --backend {keys[0]}, or drop it")
            set_nested(sections.setdefault(keys[0], {}), keys[1:], value)
        elif keys[0] == "normals" or keys in (["backend"], ["device"]):
            set_nested(top, keys, value)
        elif len(keys) == 1:
            set_nested(sections.setdefault(name, {}), keys, value)
        else:
            raise ConfigError(f"unknown config key '{'.'.join(keys)}'", source,
                              f"prefix options with a backend name ({', '.join(sorted(backend_names))}) or 'normals.'")
    top["backend"] = name
    cfg = from_dict(ReconstructConfig, top, source=source)
    backend_cfg = from_dict(spec.config_class(), sections.get(name, {}), source=source, prefix=f"{name}.")
    return cfg, backend_cfg, spec


def preset_dict(config: ReconstructConfig, backend_config: Any) -> dict[str, Any]:
    """The resolved settings as a plain dict in the shape of a preset: top-level keys plus the
    backend's section (``{"backend": "poisson", "device": ..., "normals": {...}, "poisson": {...}}``);
    saved as YAML it loads back to the same configs."""
    return {**to_dict(config), config.backend: to_dict(backend_config)}


def _backend_config(spec: BackendSpec, backend_config: Any) -> Any:
    """``backend_config``, or the backend's defaults when None; refuses another backend's config."""
    cls = spec.config_class()
    if backend_config is None:
        return cls()
    if not isinstance(backend_config, cls):
        raise ConfigError(f"backend '{spec.name}' got a {type(backend_config).__name__}, expected a {cls.__name__}",
                          None, f"pass the config of backend '{spec.name}' (or None for its defaults)")
    return backend_config


@dataclass
class PreparedCloud:
    """A cloud in the local working frame (recentred, world units, float32 values)."""

    cloud: PointCloud
    frame: LocalFrame
    normals_estimated: bool
    notes: list[str]


def prepare(
    cloud: PointCloud,
    *,
    needs_normals: bool,
    normals: NormalsConfig | None = None,
    ignore_normals: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> PreparedCloud:
    """Recentre in float64, go to float32 local coordinates, estimate normals if needed."""
    normals = normals or NormalsConfig()
    notes: list[str] = []
    frame = centred_frame(cloud.points)
    local_pts = frame.to_local(cloud.points)
    sensors = None if cloud.sensors is None else frame.to_local(cloud.sensors)
    n = None if ignore_normals else cloud.normals
    estimated = False
    if needs_normals and n is None:
        orient = choose_orientation(normals.orient, sensors is not None, cloud.source)
        progress.update("estimating normals", None, f"{normals.method}, orient={orient}")
        t0 = time.perf_counter()
        n = estimate_normals(local_pts, method=normals.method, k=normals.k, orient=orient, sensor=sensors)
        estimated = True
        notes.append(f"normals estimated ({normals.method}, orient={orient}) in {time.perf_counter() - t0:.1f} s")
    local = PointCloud(local_pts, n, cloud.colors, sensors, cloud.attrs, cloud.source)
    return PreparedCloud(local, frame, estimated, notes)


@dataclass
class ReconResult:
    """What :func:`reconstruct` returns.

    Attributes:
        mesh: the mesh in world units.
        field: the backend's implicit field in the local frame, when it has one.
        frame: local -> world mapping.
        notes: human-readable remarks (dropped rows, estimated normals, solver warnings).
        timings: seconds per stage.
        config: the resolved configuration as a plain dict in the shape of a preset (:func:`preset_dict`).
    """

    mesh: Mesh
    field: Any
    frame: LocalFrame
    notes: list[str]
    timings: dict[str, float]
    config: dict[str, Any]


def reconstruct(
    cloud: PointCloud,
    backend: str | None = None,
    *,
    config: ReconstructConfig | None = None,
    backend_config: Any = None,
    ignore_normals: bool = False,
    mesh_options: dict[str, Any] | None = None,
    progress: Progress = NULL_PROGRESS,
) -> ReconResult:
    """Reconstruct a mesh from a validated point cloud.

    Args:
        cloud: input in world units (see :func:`recon.io.load_point_cloud`).
        backend: backend name; defaults to ``config.backend``.
        config: top-level settings; defaults are used when None.
        backend_config: the backend's typed config; its defaults when None.
        ignore_normals: drop the input's normals and estimate new ones.
        mesh_options: keyword arguments for ``field.extract_mesh``.
        progress: progress reporter.
    """
    cfg = dataclasses.replace(config) if config is not None else ReconstructConfig()
    if backend is not None:
        cfg.backend = backend
    spec = get_backend(cfg.backend)
    backend_config = _backend_config(spec, backend_config)
    if "images" in spec.requires and "points" not in spec.requires:
        raise InputError(f"backend '{spec.name}' needs posed images, not a point cloud", cloud.source,
                         "pass a folder of posed images or choose a point-cloud backend")
    device = resolve_device(cfg.device)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    prepared = prepare(cloud, needs_normals="normals" in spec.requires, normals=cfg.normals,
                       ignore_normals=ignore_normals, progress=progress)
    timings["prepare"] = time.perf_counter() - t0
    notes = list(prepared.notes)

    impl = spec.build(backend_config)
    progress.update(f"reconstructing ({spec.name})", None)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = impl.fit(prepared.cloud, device=device, progress=progress)
        timings["fit"] = time.perf_counter() - t0
        field_obj = None
        if isinstance(result, Mesh):
            local_mesh = result
        else:
            field_obj = result
            progress.update("meshing", None)
            t0 = time.perf_counter()
            local_mesh = result.extract_mesh(**(mesh_options or {}))
            timings["mesh"] = time.perf_counter() - t0
    for w in caught:
        notes.append(f"warning: {w.message}")
    if local_mesh.is_empty():
        raise EmptyResultError(f"backend '{spec.name}' produced an empty mesh", cloud.source,
                               "check the input's scale and normals, or change the backend's options")
    mesh = Mesh(prepared.frame.to_world(local_mesh.vertices), local_mesh.faces,
                local_mesh.vertex_normals, local_mesh.vertex_colors)
    return ReconResult(mesh, field_obj, prepared.frame, notes, timings, preset_dict(cfg, backend_config))


def reconstruct_views(
    views: Views,
    backend: str | None = None,
    *,
    config: ReconstructConfig | None = None,
    backend_config: Any = None,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    mesh_options: dict[str, Any] | None = None,
    progress: Progress = NULL_PROGRESS,
    train_kwargs: dict[str, Any] | None = None,
    started: float | None = None,
) -> ReconResult:
    """Reconstruct a mesh from posed images (see :func:`recon.io.cameras.load_views`).

    Args:
        views: the posed images in world units.
        backend: an image backend's name (default: ``config.backend``).
        config, backend_config: as in :func:`reconstruct`.
        checkpoint_dir: where training checkpoints go (None: no checkpoints).
        resume: continue from the newest checkpoint in ``checkpoint_dir``.
        mesh_options: keyword arguments for ``field.extract_mesh``.
        progress: progress reporter.
        train_kwargs: passed to the backend's trainer (``callback``, ``callback_every``: e.g. a live preview).
        started: ``time.monotonic()`` when the run began (default: now). The backend's ``time_budget``
            bounds the run from then to the meshed field.

    Returns:
        The mesh in world units, the field (world units) and timings; ``frame`` is the identity.
    """
    cfg = dataclasses.replace(config) if config is not None else ReconstructConfig(backend="gvkf")
    if backend is not None:
        cfg.backend = backend
    spec = get_backend(cfg.backend)
    source = views.image_paths[0] if views.image_paths else None
    if "images" not in spec.requires:
        raise InputError(f"backend '{spec.name}' reconstructs point clouds, not posed images", source,
                         "use --backend volsdf or gvkf for a posed-image folder")
    backend_config = _backend_config(spec, backend_config)
    device = resolve_device(cfg.device)
    impl = spec.build(backend_config)
    timings: dict[str, float] = {}
    notes: list[str] = []
    started = time.monotonic() if started is None else started
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        field_obj = impl.fit_views(views, device=device, progress=progress, checkpoint_dir=checkpoint_dir,
                                   resume=resume, started=started, **(train_kwargs or {}))
        timings["fit"] = time.perf_counter() - t0
        progress.update("meshing", None)
        t0 = time.perf_counter()
        mesh = field_obj.extract_mesh(**(mesh_options or {}))
        bound = getattr(field_obj, "scene_bound", None)  # the backend's scene bound (world units)
        if bound is not None and not mesh.is_empty():
            before = mesh.n_faces
            mesh = clean_to_bound(mesh, bound)
            if mesh.n_faces < before:
                notes.append(f"cropped to the scene bound ({bound.source}) and removed small pieces: "
                             f"{before - mesh.n_faces:,} of {before:,} faces")
        timings["mesh"] = time.perf_counter() - t0
    notes += [f"warning: {w.message}" for w in caught]
    budget = getattr(impl.trainer, "run_budget", None)
    if budget is not None:
        notes.append(f"time budget {budget.seconds:.0f} s: {budget.spent():.0f} s used, training "
                     f"{impl.trainer.stats.elapsed:.0f} s, meshing {timings['mesh']:.0f} s "
                     f"({budget.reserve:.0f} s expected)")
    if mesh.is_empty():
        raise EmptyResultError(f"backend '{spec.name}' produced an empty mesh", source,
                               "train longer (--steps / --time-budget) or check the cameras and masks")
    return ReconResult(mesh, field_obj, LocalFrame(np.zeros(3)), notes, timings, preset_dict(cfg, backend_config))


def bounds_diagonal(points: np.ndarray) -> float:
    """Length of the bounding-box diagonal of (N, 3) points."""
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
