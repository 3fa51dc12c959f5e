"""Reading the images of posed views: RGB, masks, downscaling and undistortion.

Everything that leaves :func:`read_view_images` is pure pinhole: distorted photos are resampled
onto the pinhole model with the same K (bilinear), then area-averaged down to ``max_size``, and
K is scaled with the image (pixel centres stay at +0.5, so ``u' = u * new_w / w`` exactly).

Masks: a mask file with an alpha channel gives its alpha, any other its grey level; a mask path
equal to the image path means "the image's own alpha" (RGBA photos, NeRF-synthetic).

Image headers are checked before decoding (decompression bombs are refused):
:mod:`recon.io.image_files`.
"""

from __future__ import annotations

import os

import numpy as np

from recon.errors import InputError
from recon.io.cameras.distortion import is_distorted, undistort_image
from recon.io.image_files import open_image
from recon.types import Cameras, Views

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_WIDE_GREY = {"I;16", "I;16B", "I;16L", "I"}


def _open(path: str | os.PathLike):
    """The decoded image (header checked first: :func:`recon.io.image_files.open_image`)."""
    return open_image(path)


def _alpha(im) -> bool:
    return im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def decode_image(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """One image as (H, W, 3) float32 RGB in [0, 1] and its (H, W) float32 alpha or None."""
    im = _open(path)
    if _alpha(im):
        a = np.asarray(im.convert("RGBA"), np.float32) / 255.0
        return a[..., :3].copy(), a[..., 3].copy()
    if im.mode in _WIDE_GREY:
        g = np.asarray(im, np.float32) / 65535.0
        return np.repeat(g[..., None], 3, axis=2), None
    if im.mode == "F":
        g = np.asarray(im, np.float32)
        return np.repeat(g[..., None], 3, axis=2), None
    return np.asarray(im.convert("RGB"), np.float32) / 255.0, None


def decode_mask(path: str | os.PathLike) -> np.ndarray:
    """(H, W) float32 mask in [0, 1]: the alpha channel if there is one, else the grey level."""
    im = _open(path)
    if _alpha(im):
        return np.asarray(im.convert("RGBA"), np.float32)[..., 3] / 255.0
    if im.mode in _WIDE_GREY:
        return np.asarray(im, np.float32) / 65535.0
    if im.mode == "F":
        return np.clip(np.asarray(im, np.float32), 0, 1)
    return np.asarray(im.convert("L"), np.float32) / 255.0


def area_weights(n_in: int, n_out: int) -> "scipy.sparse.csr_matrix":  # noqa: F821 - imported lazily
    """(n_out, n_in) sparse matrix averaging input pixels by their exact overlap with each output pixel.

    Output pixel j covers the input interval [j s, (j + 1) s) with s = n_in / n_out; each row sums to 1.
    """
    import scipy.sparse

    s = n_in / n_out
    start = np.floor(np.arange(n_out) * s).astype(np.int64)
    k = start[:, None] + np.arange(int(np.ceil(s)) + 2)[None, :]
    j = np.arange(n_out)[:, None]
    lo = np.maximum(j * s, k)
    hi = np.minimum((j + 1) * s, k + 1)
    w = np.clip(hi - lo, 0.0, None) / s
    keep = (w > 0) & (k < n_in)
    rows = np.broadcast_to(j, k.shape)[keep]
    return scipy.sparse.csr_matrix((w[keep], (rows, k[keep])), shape=(n_out, n_in))


def area_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average (H, W[, ch]) to (height, width[, ch]) float32: each output pixel is the exact
    mean of the input area it covers (separable sparse weights, any scale factor)."""
    img = np.asarray(image, np.float32)
    h_in, w_in = img.shape[:2]
    if (h_in, w_in) == (height, width):
        return img.copy()
    rest = img.shape[2:]
    flat = img.reshape(h_in, -1).astype(np.float64)
    tmp = area_weights(h_in, height) @ flat  # (height, W * ch)
    tmp = np.moveaxis(tmp.reshape(height, w_in, -1), 1, 0).reshape(w_in, -1)
    out = area_weights(w_in, width) @ tmp  # (width, height * ch)
    return np.moveaxis(out.reshape(width, height, -1), 0, 1).reshape(height, width, *rest).astype(np.float32)


def target_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """Image size after fitting the longest side into ``max_size`` (never upscaled)."""
    if max_size is None or max(width, height) <= max_size:
        return width, height
    s = max_size / max(width, height)
    return max(1, int(round(width * s))), max(1, int(round(height * s)))


def scale_cameras(cameras: Cameras, width: int, height: int) -> Cameras:
    """Pinhole cameras for images resized to ``width`` x ``height`` (K rows scaled; no distortion)."""
    S = np.diag([width / cameras.width, height / cameras.height, 1.0])
    return Cameras(K=S @ cameras.K, cam_to_world=cameras.cam_to_world.copy(), width=width, height=height)


def read_view_images(views: Views, max_size: int | None = None,
                     background: tuple[float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray | None, Cameras]:
    """Read, undistort and downscale all images of ``views``.

    Args:
        views: the views (cameras may carry distortion).
        max_size: longest image side after area downsampling; None keeps the full size.
        background: if given (RGB in [0, 1]) and there are masks, RGB is composited onto it
            (``rgb * mask + background * (1 - mask)``) before resampling; else RGB is as stored.

    Returns:
        rgb (C, h, w, 3) float32 in [0, 1]; masks (C, h, w) float32 in [0, 1] or None;
        pinhole cameras (no distortion) with K scaled to (w, h).

    Raises:
        InputError: an unreadable image, or an image / mask whose size is not the camera's.
    """
    cams = views.cameras
    w, h = target_size(cams.width, cams.height, max_size)
    n = len(views)
    rgb_out = np.empty((n, h, w, 3), np.float32)
    has_masks = views.mask_paths is not None
    mask_out = np.empty((n, h, w), np.float32) if has_masks else None
    bg = None if background is None else np.asarray(background, np.float32).reshape(1, 1, 3)
    for i in range(n):  # loop over files; all pixel work is vectorised
        path = views.image_paths[i]
        rgb, alpha = decode_image(path)
        if rgb.shape[:2] != (cams.height, cams.width):
            raise InputError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but its camera is {cams.width}x{cams.height}",
                             path, "give every image of one camera the same size")
        mask = None
        if has_masks:
            mpath = views.mask_paths[i]  # type: ignore[index]
            if os.path.abspath(mpath) == os.path.abspath(path):
                mask = alpha if alpha is not None else np.ones(rgb.shape[:2], np.float32)
            else:
                mask = decode_mask(mpath)
                if mask.shape != rgb.shape[:2]:
                    raise InputError(f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {rgb.shape[1]}x{rgb.shape[0]}",
                                     mpath, "give each mask the size of its image")
            if bg is not None:
                rgb = rgb * mask[..., None] + bg * (1.0 - mask[..., None])
        dist = None if cams.distortion is None else cams.distortion[i]
        if is_distorted(dist):
            rgb = undistort_image(rgb, cams.K[i], dist)
            if mask is not None:
                mask = undistort_image(mask, cams.K[i], dist)
        rgb_out[i] = np.clip(area_resize(rgb, w, h), 0.0, 1.0)
        if mask_out is not None and mask is not None:
            mask_out[i] = np.clip(area_resize(mask, w, h), 0.0, 1.0)
    return rgb_out, mask_out, scale_cameras(cams, w, h)


__all__ = ["area_resize", "decode_image", "decode_mask", "read_view_images", "scale_cameras", "target_size"]
