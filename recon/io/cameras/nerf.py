"""NeRF-synthetic ``transforms_{train,val,test}.json`` and instant-ngp ``transforms.json``.

* ``transform_matrix`` is camera-to-world in Blender/OpenGL axes (x right, y up, looking along
  -z); it is converted to OpenCV by negating the camera's y and z axes.
* Intrinsics, top level or overridden per frame: ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` and the
  OpenCV distortion ``k1 k2 p1 p2 [k3]`` (instant-ngp, nerfstudio), else ``camera_angle_x``
  (NeRF-synthetic: f = W / 2 / tan(angle / 2), fy = fx unless ``camera_angle_y``), principal point at
  the image centre by default. Pixel centres are at +0.5, as in the library.
* ``file_path`` (and ``depth_file_path``) is relative to the JSON file, with or without extension,
  and must name a file inside the JSON file's folder (:mod:`recon.io.cameras.paths`).
* Every number is checked: focal lengths, sizes and angles must be finite and positive.
* instant-ngp's ``scale``/``offset``/``aabb_scale`` only place the scene inside its own training
  box; the poses in the file are already in world units, so they are ignored here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from recon.errors import InputError
from recon.io._common import read_bytes
from recon.io.cameras.assemble import image_size, make_views, resolve_image
from recon.io.cameras.geometry import intrinsics, opencv_to_opengl, opengl_to_opencv
from recon.io.cameras.paths import confined, join_name
from recon.io.atomic import atomic_write
from recon.types import Cameras, Views

SPLITS = ("train", "val", "test")
#: Largest image side accepted from ``w``/``h`` (pixels); the images themselves must match it.
_MAX_SIDE = 1 << 20
_FISHEYE = {"OPENCV_FISHEYE", "EQUIRECTANGULAR", "FISHEYE"}


def transforms_files(folder: Path, split: str | None) -> list[Path]:
    """The transforms files to read from ``folder`` for ``split``.

    ``split=None``: ``transforms.json`` if present, else ``transforms_train.json``;
    ``"train"``/``"val"``/``"test"``: that split; ``"all"``: every ``transforms_*.json`` split.
    """
    if split is None:
        for name in ("transforms.json", "transforms_train.json"):
            if (folder / name).is_file():
                return [folder / name]
        return []
    if split == "all":
        return [folder / f"transforms_{s}.json" for s in SPLITS if (folder / f"transforms_{s}.json").is_file()]
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}", folder, f"use one of {', '.join(SPLITS)} or all")
    p = folder / f"transforms_{split}.json"
    return [p] if p.is_file() else []


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        detail = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(f"invalid JSON ({detail})", path, "check the file is a complete transforms.json") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise InputError("no 'frames' list", path, "a transforms.json needs a frames[] list with transform_matrix")
    return data


def _number(value: Any, key: str, path: Path, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 when ``positive``), or an InputError naming ``key``."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{key} is not a number ({str(value)[:30]!r})", path, f"write {key} as a number") from None
    if not math.isfinite(v) or (positive and v <= 0):
        raise InputError(f"{key} must be a finite{' positive' if positive else ''} number, got {v}", path, f"fix {key}")
    return v


def _frame_intrinsics(top: dict[str, Any], frame: dict[str, Any], size: tuple[int, int], path: Path) -> np.ndarray:
    """(fx, fy, cx, cy, w, h, k1, k2, p1, p2, k3) for one frame; per-frame keys override the top level."""

    def get(key: str) -> Any:
        return frame.get(key, top.get(key))

    model = str(get("camera_model") or "").upper()
    if model in _FISHEYE or get("is_fisheye"):
        raise InputError(f"unsupported camera model {model or 'fisheye'}", path,
                         "supported: PINHOLE and OPENCV (k1 k2 p1 p2); undistort the images first")

    def num(key: str, positive: bool = False) -> float:
        return _number(get(key), key, path, positive)

    def angle(key: str) -> float:
        a = num(key, positive=True)
        if a >= math.pi:
            raise InputError(f"{key} must be below pi (a field of view in radians), got {a}", path, f"fix {key}")
        return a

    w = num("w", True) if get("w") is not None else float(size[0])
    h = num("h", True) if get("h") is not None else float(size[1])
    if get("fl_x") is not None:
        fx = num("fl_x", True)
    elif get("camera_angle_x") is not None:
        fx = 0.5 * w / math.tan(0.5 * angle("camera_angle_x"))
    else:
        raise InputError("no focal length (fl_x or camera_angle_x)", path, "add camera_angle_x or fl_x to the file")
    if get("fl_y") is not None:
        fy = num("fl_y", True)
    elif get("camera_angle_y") is not None and get("fl_x") is None:
        fy = 0.5 * h / math.tan(0.5 * angle("camera_angle_y"))
    else:
        fy = fx
    cx = num("cx") if get("cx") is not None else 0.5 * w
    cy = num("cy") if get("cy") is not None else 0.5 * h
    dist = [num(k) if get(k) is not None else 0.0 for k in ("k1", "k2", "p1", "p2", "k3")]
    if max(w, h) > _MAX_SIDE:
        raise InputError(f"image size {w:g}x{h:g} is implausible", path, "fix w and h")
    return np.array([fx, fy, cx, cy, w, h, *dist])


def _read_file(path: Path) -> tuple[np.ndarray, np.ndarray, list[Path], list[Path] | None]:
    """Intrinsic rows (F, 11), OpenCV camera-to-world (F, 4, 4), images and optional depth files."""
    data = _read_json(path)
    frames = data["frames"]
    if not frames:
        raise InputError("the frames list is empty", path, "add at least one frame")
    base = path.parent
    images, depths, mats = [], [], []
    for fr in frames:  # loop over frames (files)
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            raise InputError("a frame lacks file_path or transform_matrix", path, "give every frame both keys")
        images.append(resolve_image(base, str(fr["file_path"]), path))
        depths.append(fr.get("depth_file_path"))
        mats.append(fr["transform_matrix"])
    try:
        gl = np.asarray(mats, np.float64)
    except (ValueError, TypeError, OverflowError):
        raise InputError("a transform_matrix is not 4x4", path, "write each transform_matrix as 4 rows of 4 numbers") from None
    if gl.ndim == 3 and gl.shape[1:] == (3, 4):
        gl = np.concatenate([gl, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (gl.shape[0], 1, 1))], axis=1)
    if gl.ndim != 3 or gl.shape[1:] != (4, 4) or not np.all(np.isfinite(gl)):
        raise InputError("a transform_matrix is not a finite 4x4 matrix", path, "fix the frame's transform_matrix")
    need_size = any(frame.get("w", data.get("w")) is None or frame.get("h", data.get("h")) is None for frame in frames)
    size = image_size(images[0]) if need_size else (0, 0)
    intr = np.stack([_frame_intrinsics(data, fr, size, path) for fr in frames])
    depth_paths = None
    if all(d is not None for d in depths):
        depth_paths = [confined(join_name(base, str(d), base, path, "depth map"), base, path, "depth map") for d in depths]
    return intr, opengl_to_opencv(gl), images, depth_paths


def load_transforms(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None, split: str | None = None) -> Views:
    """Load NeRF-synthetic / instant-ngp transforms file(s).

    Args:
        path: a ``transforms*.json`` file (used as is) or the folder holding them.
        mask_dir: optional folder of masks matched by file stem; RGBA images are their own masks.
        split: see :func:`transforms_files` (ignored when ``path`` is a file).

    Raises:
        InputError: invalid JSON, missing images, sizes that differ, unsupported model, diverging cameras.
    """
    p = Path(path)
    files = [p] if p.is_file() else transforms_files(p, split)
    if not files:
        raise InputError(f"no transforms file for split {split or 'train'}", p, "pass the transforms_*.json file itself")
    parts = [_read_file(f) for f in files]
    intr = np.concatenate([x[0] for x in parts])
    c2w = np.concatenate([x[1] for x in parts])
    images = [im for x in parts for im in x[2]]
    depth_parts = [x[3] for x in parts]
    sizes = {(int(round(w)), int(round(h))) for w, h in intr[:, 4:6]}
    if len(sizes) > 1:
        raise InputError(f"frames of different image sizes {sorted(sizes)}", files[0],
                         "resize all images to one size and update w/h")
    (w, h), = sizes
    dist = intr[:, 6:11]
    dist = dist[:, :4] if np.all(dist[:, 4] == 0) else dist
    cameras = Cameras(K=intrinsics(intr[:, 0], intr[:, 1], intr[:, 2], intr[:, 3]), cam_to_world=c2w, width=w,
                      height=h, distortion=dist if np.any(dist != 0) else None)
    views = make_views(cameras, images, files[0], camera_ids=[files[0].name] * len(images), mask_dir=mask_dir)
    if all(d is not None for d in depth_parts):
        views.depth_paths = [str(d) for part in depth_parts for d in part]  # type: ignore[union-attr]
    return views


def write_transforms(path: str | os.PathLike, cameras: Cameras, file_paths: list[str],
                     depth_paths: list[str] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write an instant-ngp style ``transforms.json`` (shared intrinsics, Blender axes).

    The intrinsics of the first camera are written at the top level (``fl_x fl_y cx cy w h`` and
    ``camera_angle_x``); views whose K differs get per-frame overrides.

    Args:
        path: the JSON file to write (atomically).
        cameras: OpenCV cameras.
        file_paths: C image paths relative to the JSON file.
        depth_paths: optional C depth files, written as ``depth_file_path``.
        extra: more top-level keys (e.g. a description of how the views were made).
    """
    K = cameras.K
    gl = opencv_to_opengl(cameras.cam_to_world)

    def intr(k: np.ndarray) -> dict[str, float]:
        return {"fl_x": float(k[0, 0]), "fl_y": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2])}

    top = {"camera_angle_x": float(2 * math.atan(0.5 * cameras.width / K[0, 0, 0])),
           "camera_angle_y": float(2 * math.atan(0.5 * cameras.height / K[0, 1, 1])),
           **intr(K[0]), "w": int(cameras.width), "h": int(cameras.height)}
    frames = []
    for i in range(len(cameras)):  # loop over views
        fr: dict[str, Any] = {"file_path": file_paths[i], "transform_matrix": gl[i].tolist()}
        if depth_paths is not None:
            fr["depth_file_path"] = depth_paths[i]
        if not np.allclose(K[i], K[0], rtol=0, atol=1e-12):
            fr.update(intr(K[i]))
        frames.append(fr)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps({**top, **(extra or {}), "frames": frames}, indent=2) + "\n")


__all__ = ["SPLITS", "load_transforms", "transforms_files", "write_transforms"]
