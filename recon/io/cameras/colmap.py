"""COLMAP sparse models (``cameras``/``images`` as ``.txt`` or ``.bin``): read, and write text.

COLMAP already uses the library's conventions: OpenCV axes, world-to-camera ``X_c = R(q) X_w + t``
and the top-left pixel centre at (0.5, 0.5). Supported camera models: SIMPLE_PINHOLE, PINHOLE,
and SIMPLE_RADIAL, RADIAL, OPENCV, whose distortion is kept in ``Cameras.distortion`` as
(k1, k2, p1, p2) and removed when images are read (:func:`recon.io.images.read_view_images`).

Images are looked up in ``<root>/images`` where ``<root>`` is the folder holding ``sparse/``
(or the model folder itself); views are ordered by image name. Image names must stay inside the
dataset folder (:mod:`recon.io.cameras.paths`). Binary files' record counts are checked against
their size before anything is allocated, and every pose and intrinsic must be finite (with a
non-zero quaternion).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io._common import check_fits, read_bytes
from recon.io.cameras.assemble import find_image_dir, make_views, resolve_image
from recon.io.cameras.geometry import c2w_to_world_to_cam, intrinsics, quat_to_rotation, rotation_to_quat, world_to_cam_to_c2w
from recon.io.atomic import atomic_write
from recon.types import Cameras, Views

#: model id -> (name, number of parameters), from COLMAP's ``src/colmap/sensor/models.h``.
MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
    4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
}
MODEL_IDS = {name: i for i, (name, _) in MODELS.items()}
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
#: Smallest record of each binary file in bytes: camera (id, model, width, height), image (id,
#: pose, camera id, empty name, no 2D points), 3D point (id, xyz, rgb, error, empty track).
_MIN_RECORD = {"cameras": 24, "images": 73, "points3D": 51}
_FIX = "re-export the model from COLMAP"


@dataclass
class ColmapCamera:
    """One COLMAP camera: model name, size and its raw parameter list."""

    model: str
    width: int
    height: int
    params: np.ndarray


@dataclass
class ColmapImage:
    """One registered image: world-to-camera quaternion (w, x, y, z) and translation, camera id, name."""

    qvec: np.ndarray
    tvec: np.ndarray
    camera_id: int
    name: str


def model_dir(path: Path) -> Path | None:
    """The folder holding ``cameras.{txt,bin}`` + ``images.{txt,bin}`` for ``path``, or None.

    ``path`` may be that folder, one of the two files, a project folder with ``sparse/0`` or
    ``sparse``, or the ``sparse`` folder.
    """
    p = Path(path)
    if p.is_file():
        p = p.parent
    for cand in (p, p / "sparse" / "0", p / "sparse", p / "0"):
        for ext in (".txt", ".bin"):
            if (cand / f"cameras{ext}").is_file() and (cand / f"images{ext}").is_file():
                return cand
    return None


def _lines(path: Path) -> list[str]:
    text = read_bytes(path).decode("utf-8", errors="replace")
    return [ln.rstrip("\r\n") for ln in text.splitlines() if not ln.lstrip().startswith("#")]


def _bad(path: Path, what: str) -> InputError:
    return InputError(f"malformed COLMAP model ({what})", path, "re-export the model from COLMAP")


def read_cameras_text(path: Path) -> dict[int, ColmapCamera]:
    """``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]`` per line."""
    cams: dict[int, ColmapCamera] = {}
    for ln in _lines(path):
        tok = ln.split()
        if not tok:
            continue
        try:
            cams[int(tok[0])] = ColmapCamera(tok[1], int(tok[2]), int(tok[3]), np.array(tok[4:], np.float64))
        except (ValueError, IndexError) as exc:
            raise _bad(path, f"camera line {ln[:60]!r}") from exc
    return cams


def read_images_text(path: Path) -> list[ColmapImage]:
    """``images.txt``: two lines per image (pose line, then a possibly empty 2D-points line)."""
    lines = _lines(path)
    images = []
    i = 0
    while i < len(lines):
        tok = lines[i].split()
        if not tok:  # stray blank line between records
            i += 1
            continue
        if len(tok) < 10:
            raise _bad(path, f"image line {lines[i][:60]!r}")
        try:
            vals = np.array(tok[1:8], np.float64)
            images.append(ColmapImage(vals[:4], vals[4:7], int(tok[8]), " ".join(tok[9:])))
        except ValueError as exc:
            raise _bad(path, f"image line {lines[i][:60]!r}") from exc
        i += 2  # skip the POINTS2D line
    return images


class _Reader:
    """Little-endian struct reader over a bytes buffer with bounds checks."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise _bad(self.path, "truncated binary file")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def count(self, kind: str) -> int:
        """The leading u64 record count, checked against the bytes left (see ``_MIN_RECORD``)."""
        (n,) = self.take("Q")
        check_fits(self.path, "malformed COLMAP model (truncated binary file)", n, _MIN_RECORD[kind],
                   len(self.data) - self.pos, f"{kind} records", _FIX)
        return n

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise _bad(self.path, "truncated binary file")
        self.pos += n

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise _bad(self.path, "unterminated image name")
        s = self.data[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return s


def read_cameras_binary(path: Path) -> dict[int, ColmapCamera]:
    """``cameras.bin``: u64 count; per camera i32 id, i32 model, u64 width, u64 height, f64 params."""
    r = _Reader(read_bytes(path), path)
    n = r.count("cameras")
    cams: dict[int, ColmapCamera] = {}
    for _ in range(n):  # loop over cameras
        cam_id, model_id, w, h = r.take("iiQQ")
        if model_id not in MODELS:
            raise InputError(f"unknown COLMAP camera model id {model_id}", path,
                             f"use one of {', '.join(SUPPORTED_MODELS)}")
        name, n_params = MODELS[model_id]
        cams[cam_id] = ColmapCamera(name, int(w), int(h), np.array(r.take("d" * n_params), np.float64))
    return cams


def read_images_binary(path: Path) -> list[ColmapImage]:
    """``images.bin``: u64 count; per image i32 id, 7 f64 pose, i32 camera, name, u64 n2D, n2D x 24 bytes."""
    r = _Reader(read_bytes(path), path)
    n = r.count("images")
    images = []
    for _ in range(n):  # loop over images
        vals = r.take("i7di")
        name = r.cstring()
        (n2d,) = r.take("Q")
        r.skip(24 * n2d)
        images.append(ColmapImage(np.array(vals[1:5]), np.array(vals[5:8]), int(vals[8]), name))
    return images


def read_points3d(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray] | None:
    """The sparse points of a model: (P, 3) float64 world positions and (P, 3) float32 RGB in [0, 1].

    Reads ``points3D.txt`` (vectorised over lines) or ``points3D.bin`` (u64 count; per point u64 id,
    3 f64 xyz, 3 u8 rgb, f64 error, u64 track length, track x 8 bytes: records have variable length,
    so they are walked one by one). Returns None when the model has no points file.
    """
    mdir = model_dir(Path(folder))
    if mdir is None:
        return None
    txt, binf = mdir / "points3D.txt", mdir / "points3D.bin"
    if txt.is_file():
        rows = [ln.split()[:7] for ln in _lines(txt) if ln.strip()]
        if not rows:
            return np.zeros((0, 3)), np.zeros((0, 3), np.float32)
        try:
            a = np.array(rows, dtype=np.float64)
        except ValueError:
            raise _bad(txt, "a points3D line is not numeric") from None
        if a.shape[1] != 7:
            raise _bad(txt, "a points3D line has fewer than 7 values")
        return a[:, 1:4], (a[:, 4:7] / 255.0).astype(np.float32)
    if binf.is_file():
        r = _Reader(read_bytes(binf), binf)
        n = r.count("points3D")
        xyz = np.zeros((n, 3))
        rgb = np.zeros((n, 3), np.float32)
        for i in range(n):  # variable-length records: a sequential walk
            vals = r.take("Q3d3Bd")
            xyz[i], rgb[i] = vals[1:4], np.array(vals[4:7], np.float32) / 255.0
            (track,) = r.take("Q")
            r.skip(8 * track)
        return xyz, rgb
    return None


def _intrinsics(cam: ColmapCamera, path: Path) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """(fx, fy, cx, cy) and (k1, k2, p1, p2) of a supported model."""
    p = cam.params
    expected = MODELS[MODEL_IDS[cam.model]][1] if cam.model in MODEL_IDS else None
    if cam.model not in SUPPORTED_MODELS:
        raise InputError(f"unsupported COLMAP camera model {cam.model}", path,
                         f"supported: {', '.join(SUPPORTED_MODELS)}; undistort with `colmap image_undistorter` first")
    if p.size != expected:
        raise _bad(path, f"{cam.model} needs {expected} parameters, got {p.size}")
    zero = np.zeros(4)
    if cam.model == "SIMPLE_PINHOLE":
        return (p[0], p[0], p[1], p[2]), zero
    if cam.model == "PINHOLE":
        return (p[0], p[1], p[2], p[3]), zero
    if cam.model == "SIMPLE_RADIAL":
        return (p[0], p[0], p[1], p[2]), np.array([p[3], 0, 0, 0])
    if cam.model == "RADIAL":
        return (p[0], p[0], p[1], p[2]), np.array([p[3], p[4], 0, 0])
    return (p[0], p[1], p[2], p[3]), p[4:8].copy()  # OPENCV


def read_model(folder: Path) -> tuple[dict[int, ColmapCamera], list[ColmapImage], Path]:
    """Read the cameras and images of a model folder (text preferred when both exist).

    Returns:
        cameras by id, images, and the images file (for messages).
    """
    if (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file():
        return read_cameras_text(folder / "cameras.txt"), read_images_text(folder / "images.txt"), folder / "images.txt"
    return read_cameras_binary(folder / "cameras.bin"), read_images_binary(folder / "images.bin"), folder / "images.bin"


def to_cameras(cams: dict[int, ColmapCamera], images: list[ColmapImage], source: Path) -> Cameras:
    """Registered images (in the given order) -> :class:`Cameras` in the OpenCV convention.

    Raises:
        InputError: unsupported model, an image refers to a missing camera, or cameras of
            different sizes (the library holds one resolution per scene).
    """
    used = sorted({im.camera_id for im in images})
    for cid in used:
        if cid not in cams:
            raise _bad(source, f"an image refers to camera {cid}, which is not in the cameras file")
        if not np.all(np.isfinite(cams[cid].params)):
            raise _bad(source.parent / ("cameras" + source.suffix), f"camera {cid} has non-finite parameters")
    for im in images:
        norm = float(np.linalg.norm(im.qvec)) if np.all(np.isfinite(im.qvec)) else math.nan
        if not (math.isfinite(norm) and norm > 0) or not np.all(np.isfinite(im.tvec)):
            raise _bad(source, f"image {im.name[:60]!r} has a non-finite or zero pose")
    sizes = {(cams[c].width, cams[c].height) for c in used}
    if len(sizes) > 1:
        listing = ", ".join(f"camera {c}: {cams[c].width}x{cams[c].height}" for c in used)
        raise InputError(f"cameras have different image sizes ({listing})", source,
                         "undistort/resize all images to one size (colmap image_undistorter) or split the model")
    per_cam = {c: _intrinsics(cams[c], source.parent / ("cameras" + source.suffix)) for c in used}
    f = np.array([per_cam[im.camera_id][0] for im in images])
    dist = np.array([per_cam[im.camera_id][1] for im in images])
    R = quat_to_rotation(np.array([im.qvec for im in images]))
    t = np.array([im.tvec for im in images])
    w, h = sizes.pop()
    return Cameras(K=intrinsics(f[:, 0], f[:, 1], f[:, 2], f[:, 3]), cam_to_world=world_to_cam_to_c2w(R, t),
                   width=w, height=h, distortion=dist if np.any(dist != 0) else None)


def load_colmap(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None) -> Views:
    """Load a COLMAP sparse model (text or binary) and its images.

    Args:
        path: the model folder, one of its files, or the project folder holding ``sparse/0``.
        mask_dir: optional folder of masks matched by file stem.

    Raises:
        InputError: no model, malformed files, unsupported model, missing or mis-sized images.
    """
    folder = model_dir(Path(path))
    if folder is None:
        raise InputError("no COLMAP model (cameras.txt/bin + images.txt/bin)", path, "point to the sparse/0 folder")
    cams, images, source = read_model(folder)
    if not images:
        raise InputError("the COLMAP model has no registered images", source, "re-run the reconstruction")
    images = sorted(images, key=lambda im: im.name)
    cameras = to_cameras(cams, images, source)
    root = folder.parent.parent if folder.parent.name == "sparse" else folder.parent if folder.name == "sparse" else folder
    base = find_image_dir([root / "images", root, folder / "images", folder, folder.parent / "images"], images[0].name)
    # the dataset folder: the project root, or the model folder's parent when the images sit beside it
    dataset = root if base in (root / "images", root, folder / "images", folder) else folder.parent
    paths = [resolve_image(base, im.name, source, root=dataset) for im in images]
    return make_views(cameras, paths, source, camera_ids=[str(im.camera_id) for im in images], mask_dir=mask_dir)


def write_colmap_text(folder: str | os.PathLike, cameras: Cameras, names: list[str],
                      points: np.ndarray | None = None, colors: np.ndarray | None = None,
                      observations: list[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
    """Write ``cameras.txt``, ``images.txt`` and ``points3D.txt`` (PINHOLE, one camera per view).

    Args:
        folder: an existing folder (usually ``<root>/sparse/0``).
        cameras: pinhole cameras (distortion is not written).
        names: C image names relative to ``<root>/images``.
        points: optional (P, 3) world points; colors (P, 3) in [0, 1].
        observations: optional per view (point ids (n,), pixels (n, 2)); each point must be observed
            at least once. Points without observations are still written, with an empty track.
    """
    out = Path(folder)
    K = cameras.K
    R, t = c2w_to_world_to_cam(cameras.cam_to_world)
    q = rotation_to_quat(R)
    cam_lines = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
                 f"# Number of cameras: {len(cameras)}"]
    cam_lines += [f"{i + 1} PINHOLE {cameras.width} {cameras.height} " + " ".join(repr(float(v)) for v in row)
                  for i, row in enumerate(K[:, [0, 1, 0, 1], [0, 1, 2, 2]])]
    obs = observations or [(np.zeros(0, np.int64), np.zeros((0, 2)))] * len(cameras)
    img_lines = ["# Image list with two lines of data per image:",
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)",
                 f"# Number of images: {len(cameras)}"]
    tracks: dict[int, list[str]] = {}
    for i in range(len(cameras)):  # loop over views
        img_lines.append(" ".join([str(i + 1), *(repr(float(v)) for v in q[i]), *(repr(float(v)) for v in t[i]),
                                   str(i + 1), names[i]]))
        ids, uv = obs[i]
        img_lines.append(" ".join(f"{u:.6f} {v:.6f} {int(pid) + 1}" for (u, v), pid in zip(uv, ids)))
        for k, pid in enumerate(ids):
            tracks.setdefault(int(pid), []).append(f"{i + 1} {k}")
    pt_lines = ["# 3D point list with one line of data per point:",
                "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
    if points is not None:
        rgb = np.clip(np.round((colors if colors is not None else np.full_like(points, 0.5)) * 255), 0, 255).astype(int)
        pt_lines += [f"{p + 1} {x!r} {y!r} {z!r} {r} {g} {b} 0 {' '.join(tracks.get(p, []))}".rstrip()
                     for p, ((x, y, z), (r, g, b)) in enumerate(zip(points.tolist(), rgb.tolist()))]
    for name, lines in (("cameras.txt", cam_lines), ("images.txt", img_lines), ("points3D.txt", pt_lines)):
        with atomic_write(out / name) as tmp:
            tmp.write_text("\n".join(lines) + "\n")


__all__ = [
    "MODELS", "SUPPORTED_MODELS", "ColmapCamera", "ColmapImage", "load_colmap", "model_dir", "read_cameras_binary",
    "read_cameras_text", "read_images_binary", "read_images_text", "read_model", "to_cameras", "write_colmap_text",
]
