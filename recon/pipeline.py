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
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from recon.config import from_dict, load_yaml, parse_override, set_nested, to_dict
from recon.device import resolve_device
from recon.errors import ConfigError, EmptyResultError, InputError
from recon.normals import MAX_K, MIN_K, check_normal_method, estimate_normals
from recon.ops.transforms import LocalFrame, centred_frame
from recon.progress import NULL_PROGRESS, Progress
from recon.registry import BackendSpec, get_backend
from recon.types import Mesh, PointCloud, Views

DEFAULT_BACKEND = "kernel"


@dataclass
class NormalsConfig:
    """How normals are estimated when the input has none."""

    method: str = "pca"
    """normal estimator: "pca" (kNN PCA), or a registered learned method such as "hdfe"."""
    k: int | None = None
    """neighbours per point; None picks the method's default."""
    orient: Literal["auto", "mst", "sensor", "none"] = "auto"
    """orientation: "auto" uses sensor positions when the input has them, else "mst"."""

    def __post_init__(self) -> None:
        check_normal_method(self.method)
        if self.k is not None and not MIN_K <= self.k <= MAX_K:
            raise ConfigError(f"normals.k must be in {MIN_K}..{MAX_K}, got {self.k}", None,
                              "set normals.k to e.g. 20, or null for the method's default")


@dataclass
class ReconstructConfig:
    """Top-level settings of one reconstruction (a YAML preset in configs/ fills these)."""

    backend: str = DEFAULT_BACKEND
    """registered backend name (see `recon backends`)."""
    device: str = "auto"
    """"auto", "cpu" or "cuda"."""
    normals: NormalsConfig = field(default_factory=NormalsConfig)
    """normal estimation for inputs without normals."""
    backend_options: dict[str, Any] = field(default_factory=dict)
    """options of the chosen backend, checked against its config class (the YAML section named after it)."""


def load_reconstruct_config(
    path: str | None = None,
    overrides: list[str] | None = None,
    backend: str | None = None,
    device: str | None = None,
    default_backend: str = DEFAULT_BACKEND,
) -> tuple[ReconstructConfig, Any, BackendSpec]:
    """Merge a YAML preset, ``key=value`` overrides and explicit options.

    A preset looks like::

        backend: kernel
        device: auto
        normals: {method: pca, k: 20}
        kernel: {detail: 0.5, mise_iter: 1}     # section named after the backend

    Overrides: ``normals.k=30``; ``kernel.detail=1``; a bare ``detail=1`` goes to the
    chosen backend's section.

    ``default_backend`` applies when neither the preset nor ``backend`` names one (the CLI
    passes "volsdf" for posed-image folders).

    Returns:
        (top-level config, the backend's typed config, its registry spec).
    """
    source = path
    data: dict[str, Any] = load_yaml(path) if path else {}
    data = dict(data)
    if backend is not None:
        data["backend"] = backend
    if device is not None:
        data["device"] = device
    name = data.get("backend", default_backend)
    if not isinstance(name, str):
        raise ConfigError(f"config key 'backend' has value {name!r}, expected a name", source, "write backend: poisson")
    spec = get_backend(name)
    sections: dict[str, Any] = {}
    top: dict[str, Any] = {}
    from recon.registry import backends as all_backends

    backend_names = set(all_backends())
    for k, v in data.items():
        if k in backend_names:
            if not isinstance(v, dict):
                raise ConfigError(f"config section '{k}' must be a mapping of options", source,
                                  f"write '{k}:' followed by indented 'option: value' lines")
            sections[k] = dict(v)
        else:
            top[k] = v
    for item in overrides or []:
        keys, value = parse_override(item)
        if keys[0] in backend_names:
            set_nested(sections.setdefault(keys[0], {}), keys[1:], value)
        elif keys[0] in ("normals",) or (len(keys) == 1 and keys[0] in ("backend", "device")):
            set_nested(top, keys, value)
        elif len(keys) == 1:
            set_nested(sections.setdefault(name, {}), keys, value)
        else:
            raise ConfigError(f"unknown config key '{'.'.join(keys)}'", source,
                              f"prefix options with a backend name ({', '.join(sorted(backend_names))}) or 'normals.'")
    if top.get("backend", name) != name:
        name = top["backend"]
        spec = get_backend(name)
    top.pop("backend_options", None)
    cfg = from_dict(ReconstructConfig, top, source=source)
    cfg.backend = name
    backend_cfg = from_dict(spec.config_class(), sections.get(name, {}), source=source, prefix=f"{name}.")
    cfg.backend_options = to_dict(backend_cfg)
    return cfg, backend_cfg, spec


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
        orient = normals.orient
        if orient == "auto":
            orient = "sensor" if sensors is not None else "mst"
        if orient == "sensor" and sensors is None:
            raise InputError("normal orientation 'sensor' needs per-point sensor positions, which the input lacks",
                             cloud.source, "use normals.orient=mst")
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
        config: the resolved configuration as a plain dict.
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
    if backend_config is None:
        backend_config = from_dict(spec.config_class(), cfg.backend_options or {}, prefix=f"{spec.name}.")
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
    cfg.backend_options = to_dict(backend_config)
    return ReconResult(mesh, field_obj, prepared.frame, notes, timings, to_dict(cfg))


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

    Returns:
        The mesh in world units, the field (world units) and timings; ``frame`` is the identity.
    """
    cfg = dataclasses.replace(config) if config is not None else ReconstructConfig(backend="volsdf")
    if backend is not None:
        cfg.backend = backend
    spec = get_backend(cfg.backend)
    source = views.image_paths[0] if views.image_paths else None
    if "images" not in spec.requires:
        raise InputError(f"backend '{spec.name}' reconstructs point clouds, not posed images", source,
                         "use --backend volsdf or gvkf for a posed-image folder")
    if backend_config is None:
        backend_config = from_dict(spec.config_class(), cfg.backend_options or {}, prefix=f"{spec.name}.")
    device = resolve_device(cfg.device)
    impl = spec.build(backend_config)
    timings: dict[str, float] = {}
    notes: list[str] = []
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        field_obj = impl.fit_views(views, device=device, progress=progress, checkpoint_dir=checkpoint_dir,
                                   resume=resume, **(train_kwargs or {}))
        timings["fit"] = time.perf_counter() - t0
        progress.update("meshing", None)
        t0 = time.perf_counter()
        mesh = field_obj.extract_mesh(**(mesh_options or {}))
        timings["mesh"] = time.perf_counter() - t0
    notes += [f"warning: {w.message}" for w in caught]
    if mesh.is_empty():
        raise EmptyResultError(f"backend '{spec.name}' produced an empty mesh", source,
                               "train longer (--steps / --time-budget) or check the cameras and masks")
    cfg.backend_options = to_dict(backend_config)
    return ReconResult(mesh, field_obj, LocalFrame(np.zeros(3)), notes, timings, to_dict(cfg))


def bounds_diagonal(points: np.ndarray) -> float:
    """Length of the bounding-box diagonal of (N, 3) points."""
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
