"""Small camera-geometry helpers shared by the format readers and writers.

All matrices are float64. ``cam_to_world`` is (C, 4, 4) in the OpenCV convention (x right,
y down, z forward); world-to-camera rotations ``R`` are (C, 3, 3) and translations ``t`` (C, 3),
so that ``X_cam = R @ X_world + t`` and the camera centre is ``-R.T @ t``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

#: Right-multiplying an OpenGL/Blender camera-to-world by this flips its y and z axes into
#: OpenCV's (x right, y down, z forward); the matrix is its own inverse.
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def opengl_to_opencv(c2w_gl: np.ndarray) -> np.ndarray:
    """(C, 4, 4) Blender/OpenGL camera-to-world (y up, looking along -z) -> OpenCV camera-to-world."""
    return np.asarray(c2w_gl, np.float64) @ GL_TO_CV


def opencv_to_opengl(c2w_cv: np.ndarray) -> np.ndarray:
    """(C, 4, 4) OpenCV camera-to-world -> Blender/OpenGL camera-to-world."""
    return np.asarray(c2w_cv, np.float64) @ GL_TO_CV


def quat_to_rotation(q: np.ndarray) -> np.ndarray:
    """(C, 4) unit quaternions (w, x, y, z), COLMAP's order -> (C, 3, 3) rotation matrices."""
    q = np.asarray(q, np.float64).reshape(-1, 4)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def rotation_to_quat(R: np.ndarray) -> np.ndarray:
    """(C, 3, 3) rotations -> (C, 4) unit quaternions (w, x, y, z) with w >= 0.

    Uses the eigenvector of the symmetric 4x4 matrix of Bar-Itzhack's method, which is
    stable for every rotation (no branch on the largest diagonal entry).
    """
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    r = R
    k = np.empty((R.shape[0], 4, 4))
    k[:, 0, 0] = r[:, 0, 0] - r[:, 1, 1] - r[:, 2, 2]
    k[:, 1, 1] = r[:, 1, 1] - r[:, 0, 0] - r[:, 2, 2]
    k[:, 2, 2] = r[:, 2, 2] - r[:, 0, 0] - r[:, 1, 1]
    k[:, 3, 3] = r[:, 0, 0] + r[:, 1, 1] + r[:, 2, 2]
    k[:, 0, 1] = k[:, 1, 0] = r[:, 1, 0] + r[:, 0, 1]
    k[:, 0, 2] = k[:, 2, 0] = r[:, 2, 0] + r[:, 0, 2]
    k[:, 1, 2] = k[:, 2, 1] = r[:, 2, 1] + r[:, 1, 2]
    k[:, 0, 3] = k[:, 3, 0] = r[:, 2, 1] - r[:, 1, 2]
    k[:, 1, 3] = k[:, 3, 1] = r[:, 0, 2] - r[:, 2, 0]
    k[:, 2, 3] = k[:, 3, 2] = r[:, 1, 0] - r[:, 0, 1]
    _, vecs = np.linalg.eigh(k / 3.0)
    xyzw = vecs[:, :, -1]
    q = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """(C, 3, 3) nearly orthonormal matrices -> the nearest proper rotations (SVD projection)."""
    u, _, vt = np.linalg.svd(np.asarray(M, np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return u @ vt


def world_to_cam_to_c2w(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World-to-camera (C, 3, 3) rotations and (C, 3) translations -> (C, 4, 4) camera-to-world."""
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    t = np.asarray(t, np.float64).reshape(-1, 3)
    c2w = np.tile(np.eye(4), (R.shape[0], 1, 1))
    rt = np.transpose(R, (0, 2, 1))
    c2w[:, :3, :3] = rt
    c2w[:, :3, 3] = -(rt @ t[:, :, None])[:, :, 0]
    return c2w


def c2w_to_world_to_cam(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, 4, 4) camera-to-world -> world-to-camera rotations (C, 3, 3) and translations (C, 3)."""
    c2w = np.asarray(c2w, np.float64).reshape(-1, 4, 4)
    R = np.transpose(c2w[:, :3, :3], (0, 2, 1))
    t = -(R @ c2w[:, :3, 3:])[:, :, 0]
    return R, t


def decompose_projection(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (C, 3, 4) projection matrices P ~ K [R | t] into intrinsics and camera-to-world.

    K is upper triangular with positive focal lengths and K[2, 2] = 1; the overall sign of P
    is chosen so that R is a proper rotation (points in front of the camera have z > 0).

    Returns:
        K (C, 3, 3) and cam_to_world (C, 4, 4), both float64.
    """
    P = np.asarray(P, np.float64).reshape(-1, 3, 4)
    Ks, c2ws = [], []
    for p in P:  # one 3x3 RQ per view
        M = p[:, :3]
        if np.linalg.det(M) < 0:
            p = -p
            M = p[:, :3]
        k, r = scipy.linalg.rq(M)
        d = np.diag(np.sign(np.diag(k)))
        k, r = k @ d, d @ r
        centre = -np.linalg.solve(M, p[:, 3])
        c2w = np.eye(4)
        c2w[:3, :3] = r.T
        c2w[:3, 3] = centre
        Ks.append(k / k[2, 2])
        c2ws.append(c2w)
    c2w_all = np.stack(c2ws)
    c2w_all[:, :3, :3] = nearest_rotation(c2w_all[:, :3, :3])
    return np.stack(Ks), c2w_all


def compose_projection(K: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """(C, 3, 3) intrinsics and (C, 4, 4) camera-to-world -> (C, 3, 4) projections K [R | t]."""
    R, t = c2w_to_world_to_cam(c2w)
    return np.asarray(K, np.float64).reshape(-1, 3, 3) @ np.concatenate([R, t[:, :, None]], axis=2)


def intrinsics(fx: np.ndarray, fy: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Per-view focal lengths and principal points (each (C,) or scalar) -> (C, 3, 3) K."""
    fx, fy, cx, cy = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, np.float64)) for a in (fx, fy, cx, cy)))
    K = np.zeros((fx.shape[0], 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, cx, cy, 1.0
    return K


def shift_principal_point(K: np.ndarray, delta: float) -> np.ndarray:
    """A copy of (C, 3, 3) ``K`` with ``delta`` pixels added to cx and cy.

    Converts between conventions that put pixel centres at integers (IDR/DTU: ``delta=+0.5``
    into the library's convention) and at +0.5 (the library, COLMAP, NeRF).
    """
    K = np.array(K, np.float64, copy=True)
    K[..., 0, 2] += delta
    K[..., 1, 2] += delta
    return K


def optical_axes_centre(cam_to_world: np.ndarray) -> np.ndarray:
    """The least-squares point closest to all optical axes (IDR's ``normalize_cameras`` centre).

    Minimises sum_i |(I - d_i d_i^T)(x - c_i)|^2 over x, with c_i the camera centres and d_i the
    unit optical axes. Directions the axes do not constrain (parallel axes, a single camera)
    keep the value of a point in front of the cameras (mean centre + spread * mean axis).

    Args:
        cam_to_world: (C, 4, 4) float64.

    Returns:
        (3,) float64 world position.
    """
    c2w = np.asarray(cam_to_world, np.float64).reshape(-1, 4, 4)
    centres = c2w[:, :3, 3]
    dirs = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=1, keepdims=True)
    proj = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]
    A = proj.sum(0)
    b = (proj @ centres[:, :, None]).sum(0)[:, 0]
    spread = float(np.sqrt(((centres - centres.mean(0)) ** 2).sum(1).mean())) or 1.0
    mean_dir = dirs.mean(0)
    mean_dir = mean_dir / (np.linalg.norm(mean_dir) or 1.0)
    prior = centres.mean(0) + spread * mean_dir
    w, V = np.linalg.eigh(A)
    inv = np.where(w > 1e-6 * w.max(), 1.0 / np.maximum(w, 1e-300), 0.0)
    return prior + V @ (inv * (V.T @ (b - A @ prior)))


__all__ = [
    "GL_TO_CV", "c2w_to_world_to_cam", "compose_projection", "decompose_projection", "intrinsics",
    "nearest_rotation", "opencv_to_opengl", "opengl_to_opencv", "optical_axes_centre", "quat_to_rotation",
    "rotation_to_quat", "shift_principal_point", "world_to_cam_to_c2w",
]
