"""Turning parsed poses into :class:`~recon.types.Views`: image lookup, sizes, masks, sanity checks.

Every format reader ends in :func:`make_views`, so the rules are the same for all formats:

* every pose needs its image (readers that may drop views, Middlebury, filter before), and
  images named by a pose file must stay inside the dataset folder (:mod:`recon.io.cameras.paths`);
* all images must have the camera's size (sizes are read from the file headers only);
* masks: ``mask_dir`` (matched by file stem) wins; otherwise images with an alpha channel are
  their own masks (``mask_paths[i] == image_paths[i]`` means "the alpha of the image");
* every K and camera-to-world matrix must be finite and invertible (focal lengths and the
  rotation's determinant not zero);
* the optical axes must meet in front of the cameras.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io.cameras.geometry import optical_axes_centre
from recon.io.cameras.paths import confined, join_name
from recon.io.image_files import open_image
from recon.types import Cameras, Views

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr")
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header (the pixels are not decoded)."""
    with open_image(path, decode=False) as im:
        return int(im.size[0]), int(im.size[1])


def has_alpha(path: Path) -> bool:
    """True when the image carries an alpha channel (or palette transparency)."""
    with open_image(path, decode=False) as im:
        return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def resolve_image(base: Path, name: str, source: str | os.PathLike, root: Path | None = None) -> Path:
    """Find ``name`` under ``base``, trying the common image extensions when it has none.

    Args:
        base: the folder the name is relative to.
        name: the image name from the pose file (untrusted).
        source: the pose file, for messages.
        root: the dataset folder the image must stay inside (default ``base``).

    Raises:
        InputError: an absolute name, a name or symbolic link leading outside ``root``, or no
            such file (names the path that was expected and the pose file).
    """
    root = base if root is None else root
    p = join_name(base, name, root, source)
    names = [name]
    if not p.suffix or p.suffix.lower() not in IMAGE_EXTENSIONS:
        names += [name + ext for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS)]
    for n in names:
        q = join_name(base, n, root, source)
        if q.is_file():
            return confined(q, root, source)
    raise InputError(f"missing image {p} (listed in the pose file)", source,
                     "put the images next to the pose file or remove the view from it")


def find_image_dir(candidates: list[Path], first_name: str) -> Path:
    """The first folder in ``candidates`` that holds ``first_name`` (or the first existing one)."""
    for c in candidates:
        if (c / first_name).is_file() or any((c / (first_name + e)).is_file() for e in IMAGE_EXTENSIONS):
            return c
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def check_sizes(paths: list[Path], width: int, height: int, camera_ids: list[str], source: str | os.PathLike) -> None:
    """Every image must be ``width`` x ``height`` (its camera's size).

    Raises:
        InputError: names the first image whose size differs.
    """
    for p, cam in zip(paths, camera_ids):  # a loop over files: headers only
        w, h = image_size(p)
        if (w, h) != (width, height):
            raise InputError(f"image {p} is {w}x{h} but camera {cam} is {width}x{height}", source,
                             "give every image of one camera the same size (resize or re-run the calibration)")


def match_masks(image_paths: list[Path], mask_dir: str | os.PathLike) -> list[str]:
    """One mask per image from ``mask_dir``, matched by file stem (any image extension).

    Raises:
        InputError: the folder is missing, or an image has no mask.
    """
    folder = Path(mask_dir)
    if not folder.is_dir():
        raise InputError("mask folder not found", folder, "pass an existing folder to --mask-dir")
    by_stem: dict[str, Path] = {}
    for p in list_images(folder):
        by_stem.setdefault(p.stem, p)
    out = []
    for img in image_paths:
        m = by_stem.get(img.stem) or by_stem.get(img.name)
        if m is None:
            raise InputError(f"no mask for image {img.name} (looked for {img.stem}.* )", folder,
                             "name each mask like its image (same stem)")
        out.append(str(m))
    return out


def check_matrices(cameras: Cameras, source: str | os.PathLike) -> None:
    """Every K (C, 3, 3) and cam_to_world (C, 4, 4) must be finite, with non-zero focal lengths, an
    image size of at least one pixel and a rotation part whose determinant is not (nearly) zero.

    Raises:
        InputError: names the first bad camera.
    """
    K = np.asarray(cameras.K, np.float64)
    c2w = np.asarray(cameras.cam_to_world, np.float64)
    if not (int(cameras.width) >= 1 and int(cameras.height) >= 1):
        raise InputError(f"image size {cameras.width}x{cameras.height} is not positive", source, "fix the camera's width and height")
    bad = ~np.all(np.isfinite(K.reshape(len(K), -1)), axis=1) | ~np.all(np.isfinite(c2w.reshape(len(c2w), -1)), axis=1)
    if bad.any():
        raise InputError(f"camera {int(np.argmax(bad))} has non-finite (NaN/Inf) parameters", source,
                         "fix or remove that camera in the pose file")
    flat = (K[:, 0, 0] == 0) | (K[:, 1, 1] == 0)
    if flat.any():
        raise InputError(f"camera {int(np.argmax(flat))} has a zero focal length", source, "fix its intrinsics")
    rot = c2w[:, :3, :3]
    scale = np.maximum(np.abs(rot).max(axis=(1, 2)), 1e-300) ** 3
    singular = np.abs(np.linalg.det(rot)) <= 1e-9 * scale
    if singular.any():
        raise InputError(f"camera {int(np.argmax(singular))} has a singular rotation (its axes are degenerate)", source,
                         "store a proper rotation for every camera")


def check_converging(cameras: Cameras, source: str | os.PathLike) -> np.ndarray:
    """Check that the optical axes meet in front of the cameras; return that point (3,).

    The least-squares point closest to all optical axes must lie in front of (z > 0 and at
    least 1 % of the camera spread away) at least half of the cameras. Single views pass.

    Raises:
        InputError: the cameras look away from a common scene.
    """
    c2w = cameras.cam_to_world
    centre = optical_axes_centre(c2w)
    if len(cameras) < 2:
        return centre
    centres = c2w[:, :3, 3]
    depth = np.einsum("ij,ij->i", centre[None] - centres, c2w[:, :3, 2])
    scale = max(float(np.linalg.norm(centres - centres.mean(0), axis=1).max()), float(np.abs(depth).max()), 1e-12)
    in_front = depth > 0.01 * scale
    if in_front.mean() < 0.5:
        raise InputError(
            f"the cameras look away from the scene: their optical axes meet behind {int((~in_front).sum())} "
            f"of {len(cameras)} cameras", source,
            "check the pose convention (camera-to-world vs world-to-camera, OpenGL vs OpenCV axes)")
    return centre


def make_views(cameras: Cameras, image_paths: list[Path], source: str | os.PathLike, *,
               camera_ids: list[str] | None = None, mask_dir: str | os.PathLike | None = None,
               mask_paths: list[Path] | None = None, check_size: bool = True) -> Views:
    """Validate and assemble the views of one pose file.

    Args:
        cameras: C cameras in the OpenCV convention.
        image_paths: C existing image files.
        source: the pose file, for messages.
        camera_ids: per-view camera labels for size messages (default: the image names).
        mask_dir: optional folder of masks matched by stem (wins over everything).
        mask_paths: masks the format itself provides (e.g. an IDR ``mask/`` folder).
        check_size: compare every image header against ``cameras.width/height``.

    Raises:
        InputError: image count differs from pose count, wrong sizes, no masks, diverging cameras.
    """
    if len(image_paths) != len(cameras):
        raise InputError(f"{len(cameras)} poses but {len(image_paths)} images", source,
                         "give exactly one image per pose")
    if len(cameras) == 0:
        raise InputError("no views", source, "check the pose file lists at least one image")
    check_matrices(cameras, source)
    if check_size:
        check_sizes(image_paths, cameras.width, cameras.height, camera_ids or [p.name for p in image_paths], source)
    masks: list[str] | None
    if mask_dir is not None:
        masks = match_masks(image_paths, mask_dir)
    elif mask_paths is not None:
        masks = [str(m) for m in mask_paths]
    elif has_alpha(image_paths[0]):
        masks = [str(p) for p in image_paths]
    else:
        masks = None
    check_converging(cameras, source)
    return Views(cameras=cameras, image_paths=[str(p) for p in image_paths], mask_paths=masks)


__all__ = [
    "IMAGE_EXTENSIONS", "check_converging", "check_matrices", "check_sizes", "find_image_dir", "has_alpha", "image_size",
    "list_images", "make_views", "match_masks", "resolve_image",
]
