"""OpenCV radial-tangential lens distortion: distort and undistort image coordinates.

The model (OpenCV, COLMAP ``OPENCV``; ``SIMPLE_RADIAL`` and ``RADIAL`` are special cases with
only k1, or k1 and k2) acts on normalised coordinates ``x = (u - cx) / fx``, ``y = (v - cy) / fy``::

    r2 = x^2 + y^2
    radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2)
    y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y

Coefficients are stored as (k1, k2, p1, p2[, k3]), the order of ``Cameras.distortion``.
Pixel coordinates follow the library convention (pixel centres at +0.5). Undistortion is
a vectorised Newton iteration; it converges to < 1e-10 px for the distortions of real lenses
inside the image.
"""

from __future__ import annotations

import numpy as np

NEWTON_ITERATIONS = 20


def _coeffs(coeffs: np.ndarray) -> tuple[float, float, float, float, float]:
    c = np.zeros(5)
    flat = np.asarray(coeffs, np.float64).reshape(-1)[:5]
    c[: flat.size] = flat
    return c[0], c[1], c[2], c[3], c[4]


def is_distorted(coeffs: np.ndarray | None) -> bool:
    """True when ``coeffs`` (k,) has any non-zero coefficient."""
    return coeffs is not None and bool(np.any(np.asarray(coeffs) != 0))


def distort_normalized(xy: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """(N, 2) ideal normalised coordinates -> (N, 2) distorted normalised coordinates."""
    k1, k2, p1, p2, k3 = _coeffs(coeffs)
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], -1)


def _jacobian(xy: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """(N, 2, 2) derivative of :func:`distort_normalized` at ``xy``."""
    k1, k2, p1, p2, k3 = _coeffs(coeffs)
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    dradial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r2
    J = np.empty((xy.shape[0], 2, 2))
    J[:, 0, 0] = radial + x * dradial * 2 * x + 2 * p1 * y + 6 * p2 * x
    J[:, 0, 1] = x * dradial * 2 * y + 2 * p1 * x + 2 * p2 * y
    J[:, 1, 0] = y * dradial * 2 * x + 2 * p1 * x + 2 * p2 * y
    J[:, 1, 1] = radial + y * dradial * 2 * y + 6 * p1 * y + 2 * p2 * x
    return J


def undistort_normalized(xy_d: np.ndarray, coeffs: np.ndarray, iterations: int = NEWTON_ITERATIONS) -> np.ndarray:
    """(N, 2) distorted normalised coordinates -> (N, 2) ideal ones (Newton's method)."""
    xy_d = np.asarray(xy_d, np.float64)
    xy = xy_d.copy()
    for _ in range(iterations):  # fixed small count; each step is vectorised over all points
        residual = distort_normalized(xy, coeffs) - xy_d
        J = _jacobian(xy, coeffs)
        det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
        det = np.where(np.abs(det) < 1e-12, 1e-12, det)
        dx = (J[:, 1, 1] * residual[:, 0] - J[:, 0, 1] * residual[:, 1]) / det
        dy = (J[:, 0, 0] * residual[:, 1] - J[:, 1, 0] * residual[:, 0]) / det
        xy[:, 0] -= dx
        xy[:, 1] -= dy
    return xy


def _to_normalized(uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    y = (uv[:, 1] - K[1, 2]) / K[1, 1]
    x = (uv[:, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x, y], -1)


def _to_pixels(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    u = K[0, 0] * xy[:, 0] + K[0, 1] * xy[:, 1] + K[0, 2]
    v = K[1, 1] * xy[:, 1] + K[1, 2]
    return np.stack([u, v], -1)


def distort_points(uv: np.ndarray, K: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Pixel coordinates of an ideal pinhole image -> where they appear in the distorted photo.

    Args:
        uv: (N, 2) pixels in the pinhole image (pixel centres at +0.5).
        K: (3, 3) intrinsics shared by both images.
        coeffs: (k,) distortion (k1, k2, p1, p2[, k3]).

    Returns:
        (N, 2) float64 pixels in the distorted image.
    """
    K = np.asarray(K, np.float64)
    return _to_pixels(distort_normalized(_to_normalized(np.asarray(uv, np.float64), K), coeffs), K)


def undistort_points(uv: np.ndarray, K: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Pixel coordinates in the distorted photo -> the same rays' pixels in the pinhole image.

    Feed the result to :func:`recon.ops.rays.pixel_rays` with the same ``K`` to get the true
    rays of distorted pixels.

    Args:
        uv: (N, 2) pixels in the distorted image.
        K: (3, 3) intrinsics.
        coeffs: (k,) distortion (k1, k2, p1, p2[, k3]).

    Returns:
        (N, 2) float64 pixels in the ideal pinhole image.
    """
    K = np.asarray(K, np.float64)
    return _to_pixels(undistort_normalized(_to_normalized(np.asarray(uv, np.float64), K), coeffs), K)


def undistort_image(image: np.ndarray, K: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Resample a distorted image (H, W[, ch]) onto the pinhole model with the same K and size.

    Each output pixel centre is mapped through :func:`distort_points` and the photo is sampled
    there bilinearly (edge values repeat outside the photo).

    Returns:
        float32 array of the input's shape.
    """
    from scipy.ndimage import map_coordinates

    h, w = image.shape[:2]
    j, i = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    uv = np.stack([i.ravel() + 0.5, j.ravel() + 0.5], -1).astype(np.float64)
    src = distort_points(uv, K, coeffs) - 0.5  # continuous -> array index
    coords = [src[:, 1], src[:, 0]]
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        return map_coordinates(img, coords, order=1, mode="nearest").reshape(h, w).astype(np.float32)
    chans = [map_coordinates(img[..., c], coords, order=1, mode="nearest") for c in range(img.shape[2])]
    return np.stack(chans, -1).reshape(h, w, img.shape[2]).astype(np.float32)


__all__ = [
    "distort_normalized", "distort_points", "is_distorted", "undistort_image", "undistort_normalized",
    "undistort_points",
]
