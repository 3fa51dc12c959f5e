"""DTU / IDR / VolSDF / NeuS ``cameras.npz`` (``world_mat_i``, ``scale_mat_i``).

* ``world_mat_i`` is the 4x4 ``[K [R | t]; 0 0 0 1]`` projecting world points to pixels;
  it is decomposed (RQ) into K and the camera-to-world pose.
* ``scale_mat_i`` maps the normalised frame (object inside the unit sphere) to world units;
  IDR trains in that frame with ``P = world_mat @ scale_mat``. :func:`load_dtu` returns world
  units by default (so meshes come out in the units of the ground truth) and the normalised
  frame with ``normalized=True``; :func:`read_scale_mat` gives the matrix itself.
* IDR samples pixels at integer coordinates (pixel centres at 0, 1, ...), the library at +0.5:
  cx and cy are shifted by +0.5 on reading and -0.5 on writing.
* Images: ``image/`` (IDR) or ``images/`` next to the npz, sorted by name, the i-th image
  belonging to ``world_mat_i``; masks from ``mask/`` (same count, sorted) when present. Image and
  mask files must lie inside the scan folder (a symbolic link leading out of it is refused).
* The npz is read without trusting its headers (:mod:`recon.io.numpy_files`); every matrix must
  be finite, and the 3x3 part of each ``world_mat_i`` (``K R``) and each ``scale_mat_i`` must be
  invertible (smallest singular value above :data:`SINGULAR_RATIO` times the largest).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io._common import read_bytes
from recon.io.cameras.assemble import image_size, list_images, make_views
from recon.io.cameras.paths import confined
from recon.io.cameras.geometry import compose_projection, decompose_projection, shift_principal_point
from recon.io.atomic import atomic_write
from recon.io.numpy_files import read_npz_bytes
from recon.types import Cameras, Views

NPZ_NAMES = ("cameras.npz", "cameras_sphere.npz", "cameras_large.npz")
_KEY = re.compile(r"^world_mat_(\d{1,9})$")
#: A matrix whose smallest singular value is below this times its largest is treated as singular.
SINGULAR_RATIO = 1e-12


def find_npz(folder: Path) -> Path | None:
    """The cameras npz inside ``folder`` (by the IDR/NeuS names), or None."""
    for name in NPZ_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    return read_npz_bytes(read_bytes(path), path)


def _singular(m: np.ndarray) -> bool:
    """True when the square matrix ``m`` is (numerically) not invertible."""
    s = np.linalg.svd(m, compute_uv=False)
    return not s[0] > 0 or s[-1] <= SINGULAR_RATIO * s[0]


def _matrices(data: dict[str, np.ndarray], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(C, 4, 4) world matrices and (C, 4, 4) scale matrices, ordered by index."""
    idx = sorted(int(m.group(1)) for k in data if (m := _KEY.match(k)))
    if not idx:
        raise InputError("no world_mat_<i> arrays", path, "a DTU/IDR cameras.npz holds world_mat_0, world_mat_1, ...")
    if idx != list(range(len(idx))):
        raise InputError("world_mat indices are not 0..N-1", path, "renumber the cameras consecutively from 0")

    def as4(a: np.ndarray, key: str) -> np.ndarray:
        a = np.asarray(a, np.float64)
        if a.shape == (3, 4):
            a = np.vstack([a, [0, 0, 0, 1]])
        if a.shape != (4, 4) or not np.all(np.isfinite(a)):
            raise InputError(f"{key} is not a finite 4x4 (or 3x4) matrix", path, "fix the array")
        return a

    def numeric(key: str) -> np.ndarray:
        a = data[key]
        if a.dtype.kind not in "biuf":
            raise InputError(f"{key} is not a numeric array ({a.dtype})", path, "store each matrix as float64")
        return a

    world = np.stack([as4(numeric(f"world_mat_{i}"), f"world_mat_{i}") for i in idx])
    scale = np.stack([as4(numeric(f"scale_mat_{i}"), f"scale_mat_{i}") if f"scale_mat_{i}" in data else np.eye(4)
                      for i in idx])
    for i in idx:  # one small SVD per camera
        if _singular(world[i, :3, :3]):
            raise InputError(f"world_mat_{i} is singular (its 3x3 part K R has no inverse)", path,
                             "store a valid projection K [R | t] for every camera")
        if _singular(scale[i]):
            raise InputError(f"scale_mat_{i} is singular", path,
                             "store an invertible scale_mat (normalised -> world), or leave it out")
    return world, scale


def read_scale_mat(path: str | os.PathLike) -> np.ndarray:
    """The (4, 4) ``scale_mat_0`` of a cameras npz (identity when absent): normalised -> world."""
    _, scale = _matrices(_load_npz(Path(path)), Path(path))
    return scale[0]


def dtu_cameras(path: str | os.PathLike, width: int, height: int, normalized: bool = False) -> Cameras:
    """Decompose the projections of a cameras npz into :class:`Cameras` of the given image size.

    Args:
        path: the npz.
        width, height: image size in pixels (the npz does not store it).
        normalized: return cameras in IDR's normalised frame (``world_mat @ scale_mat``).
    """
    p = Path(path)
    world, scale = _matrices(_load_npz(p), p)
    P = world @ scale if normalized else world
    K, c2w = decompose_projection(P[:, :3, :4])
    return Cameras(K=shift_principal_point(K, 0.5), cam_to_world=c2w, width=width, height=height)


def load_dtu(path: str | os.PathLike, mask_dir: str | os.PathLike | None = None, normalized: bool = False) -> Views:
    """Load an IDR/VolSDF/NeuS scan folder (or its npz) with its images.

    Raises:
        InputError: unreadable npz, no images, pose count different from image count, sizes differ.
    """
    p = Path(path)
    npz = p if p.is_file() else find_npz(p)
    if npz is None:
        raise InputError("no cameras.npz", p, f"expected one of {', '.join(NPZ_NAMES)}")
    folder = npz.parent
    image_dir = next((folder / d for d in ("image", "images", "rgb") if list_images(folder / d)), None)
    if image_dir is None:
        raise InputError("missing images: no image/ or images/ folder next to the cameras file", npz,
                         "put the images in image/ (sorted so that the i-th is world_mat_i)")
    images = [confined(im, folder, npz) for im in list_images(image_dir)]
    world, _ = _matrices(_load_npz(npz), npz)
    if len(images) != world.shape[0]:
        raise InputError(f"{world.shape[0]} poses (world_mat_i) but {len(images)} images in {image_dir}", npz,
                         "give exactly one image per world_mat_i")
    w, h = image_size(images[0])
    cameras = dtu_cameras(npz, w, h, normalized=normalized)
    masks = None
    if mask_dir is None:
        for d in ("mask", "masks"):
            found = list_images(folder / d)
            if len(found) == len(images):
                masks = [confined(m, folder, npz, "mask") for m in found]
                break
    return make_views(cameras, images, npz, camera_ids=[npz.name] * len(images), mask_dir=mask_dir, mask_paths=masks)


def write_cameras_npz(path: str | os.PathLike, cameras: Cameras, scale_mat: np.ndarray | None = None) -> None:
    """Write ``world_mat_i`` (IDR pixel convention) and ``scale_mat_i`` for every camera.

    Args:
        path: the ``.npz`` to write (atomically).
        cameras: pinhole cameras in world units.
        scale_mat: (4, 4) normalised -> world matrix (IDR: object inside the unit sphere); identity if None.
    """
    P = compose_projection(shift_principal_point(cameras.K, -0.5), cameras.cam_to_world)
    S = np.eye(4) if scale_mat is None else np.asarray(scale_mat, np.float64)
    arrays: dict[str, np.ndarray] = {}
    for i in range(len(cameras)):  # loop over views
        arrays[f"world_mat_{i}"] = np.vstack([P[i], [0, 0, 0, 1]])
        arrays[f"scale_mat_{i}"] = S.copy()
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


__all__ = ["NPZ_NAMES", "dtu_cameras", "find_npz", "load_dtu", "read_scale_mat", "write_cameras_npz"]
