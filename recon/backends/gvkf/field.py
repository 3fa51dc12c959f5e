"""GVKFField: trained Gaussians plus the views they were fitted to, as an implicit surface.

The field value at x is GVKF's opacity-to-distance map (docs/gvkf_volsdf.md section 2.3): the
opacity accumulated along each training view's ray up to x, mapped through the logistic inverse
and maximised over views (:func:`recon.backends.gvkf.surface.opacity_to_sdf`). It is negative
inside, positive outside, and saturates at +-``clamp``; it is a pseudo-distance (metric only near
the surface), reported in world units (normalised value times the frame's scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon.backends.gvkf.config import GVKFConfig
from recon.backends.gvkf.gaussians import GaussianSet
from recon.ops.transforms import similarity_parts
from recon.types import Mesh


# Only Gaussians at least this opaque seed the cells the "grid" mesher samples: a nearly transparent
# Gaussian left where no view constrains it (random init, seen from one side) would otherwise put
# cells where the opacity field is unreliable.
SURFACE_OPACITY = 0.1


class GVKFField:
    """Opacity-derived signed field of trained Gaussians (negative inside, world units).

    Attributes:
        gaussians: the Gaussians (normalised frame).
        K: (V, 3, 3) and cam_to_world: (V, 4, 4) the views used by the query (normalised frame).
        width, height: their image size.
        to_world: (4, 4) float64 normalised -> world similarity; ``scale`` its scale factor.
        config: the backend options (surface settings).
        info: training summary.
    """

    def __init__(self, gaussians: GaussianSet, K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int,
                 to_world: np.ndarray | None = None, *, config: GVKFConfig | None = None,
                 info: dict[str, Any] | None = None):
        self.gaussians = gaussians.detach()
        self.K = K.detach().float()
        self.cam_to_world = cam_to_world.detach().float()
        self.width, self.height = int(width), int(height)
        self.to_world = np.eye(4) if to_world is None else np.asarray(to_world, np.float64).reshape(4, 4)
        self.scale, self._A, self._c = similarity_parts(self.to_world)
        self._A_inv = np.linalg.inv(self._A)
        self.config = config or GVKFConfig()
        self.info = dict(info or {})

    @property
    def device(self) -> torch.device:
        return self.gaussians.device

    def world_to_normalised(self, xyz: np.ndarray) -> np.ndarray:
        return (np.asarray(xyz, np.float64) - self._c) @ self._A_inv.T

    def normalised_to_world(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float64) @ self._A.T + self._c

    def sdf_normalised(self, x: torch.Tensor, progress: Any = None) -> torch.Tensor:
        """(Q,) field values at (Q, 3) normalised positions (normalised units)."""
        from recon.backends.gvkf.surface import opacity_to_sdf
        from recon.device import torch_threads

        with torch.no_grad(), torch_threads(self.config.threads, self.device):
            return opacity_to_sdf(self.gaussians, self.K, self.cam_to_world, self.width, self.height,
                                  x.to(self.device).float(), shift=self.config.sdf_shift, progress=progress)

    def world_gaussians(self) -> GaussianSet:
        """The Gaussians mapped to world units (means, scales and rotations through ``to_world``)."""
        from recon.backends.gvkf.gaussians import quat_to_rotmat, rotmat_to_quat

        g = self.gaussians
        A = torch.as_tensor(self._A, dtype=g.means.dtype, device=g.device)
        c = torch.as_tensor(self._c, dtype=g.means.dtype, device=g.device)
        R = A / self.scale
        if torch.det(R) < 0:  # a mirror: keep a proper rotation, flip one local axis (same Gaussian)
            R = R @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=R.dtype, device=R.device))
        quats = rotmat_to_quat(R[None] @ quat_to_rotmat(g.quats))
        return GaussianSet(g.means @ A.T + c, g.log_scales + float(np.log(self.scale)), quats,
                           g.opacity_logits.clone(), g.colour_logits.clone())

    def evaluate(self, xyz: Any, grad: bool = False) -> Any:
        """Field values (world units) at (K, 3) world positions; numpy in -> numpy float64 out.

        ``grad=True`` adds central-difference gradients (step 1e-3 of the normalised frame): the
        field is piecewise smooth but has no cheap analytic gradient.
        """
        was_np = not isinstance(xyz, torch.Tensor)
        pts = np.asarray(xyz, np.float64) if was_np else xyz.detach().cpu().double().numpy()
        xn = torch.from_numpy(self.world_to_normalised(pts).astype(np.float32))
        f = self.sdf_normalised(xn).double().cpu() * self.scale
        g = None
        if grad:
            h = 1e-3
            offs = torch.eye(3, dtype=torch.float32) * h
            stencil = torch.cat([xn[:, None] + offs[None], xn[:, None] - offs[None]], 1).reshape(-1, 3)
            v = self.sdf_normalised(stencil).double().cpu().reshape(-1, 2, 3)
            gn = (v[:, 0] - v[:, 1]) / (2 * h) * self.scale
            g = gn @ torch.as_tensor(self._A_inv, dtype=torch.float64)  # grad_w = s A^-T grad_n
        if was_np:
            return f.numpy() if g is None else (f.numpy(), g.numpy())
        f = f.to(xyz.device)
        return f if g is None else (f, g.to(xyz.device))

    def bounds(self) -> np.ndarray:
        """(2, 3) world box around the Gaussians (their 3-sigma extents, within the unit sphere's cube)."""
        lo, hi = self._box()
        corners = np.stack(np.meshgrid(*zip(lo, hi), indexing="ij"), -1).reshape(-1, 3)
        w = self.normalised_to_world(corners)
        return np.stack([w.min(0), w.max(0)])

    def _box(self) -> tuple[np.ndarray, np.ndarray]:
        g = self.gaussians
        m = g.means.cpu().numpy().astype(np.float64)
        r = 3.0 * g.scales().max(-1).values.cpu().numpy()[:, None]
        lo = np.clip(np.quantile(m - r, 0.001, axis=0), -1, 1)
        hi = np.clip(np.quantile(m + r, 0.999, axis=0), -1, 1)
        return lo, hi

    def extract_mesh(self, resolution: int | None = None, method: str | None = None, keep_largest: bool = True,
                     colors: bool = True, progress: Any = None) -> Mesh:
        """Mesh of the zero level set in world units.

        Args:
            resolution: grid cells along the longest side of the Gaussians' box ("grid" method; default
                ``config.mesh_resolution``). The field is sampled only in cells near Gaussians at least
                ``SURFACE_OPACITY`` opaque (a half-resolution shell refined once where the surface
                crosses, MISE-style).
            method: "grid" or "tetra" (marching tetrahedra on a Delaunay of points around the
                Gaussians with long-edge filtering); default ``config.mesh_method``.
            keep_largest: keep only the largest connected component.
            colors: vertex colours from the nearest Gaussian.

        Raises:
            ValueError: the field has no zero crossing ("no surface").
        """
        from recon.meshing.cleanup import remove_small_components
        from recon.meshing.sparse import sparse_marching_mesh

        method = method or self.config.mesh_method
        if len(self.gaussians) == 0:
            raise ValueError("no surface: there are no Gaussians")
        if method == "tetra":
            from recon.backends.gvkf.tetra import extract_mesh as tetra_mesh

            lo, hi = self._box()
            v, f = tetra_mesh(lambda x: self.sdf_normalised(x), self.gaussians, bounds=(lo, hi), progress=progress)
            mesh = Mesh(np.asarray(v, np.float64), np.asarray(f, np.int64))
        elif method == "grid":
            res = int(resolution or self.config.mesh_resolution)
            lo, hi = self._box()
            h = float((hi - lo).max()) / max(res // 2, 4)                      # coarse cell, refined once
            solid = self.gaussians.opacities() >= SURFACE_OPACITY  # faint Gaussians are not surface
            m = self.gaussians.means[solid].cpu().numpy().astype(np.float64)
            if len(m) == 0:
                raise ValueError(f"no surface: no Gaussian is more than {SURFACE_OPACITY:.0%} opaque")
            cells = np.floor((m - lo) / h).astype(np.int64)
            offs = np.stack(np.meshgrid(*([np.arange(-1, 2)] * 3), indexing="ij"), -1).reshape(-1, 3)
            cells = np.unique((cells[:, None, :] + offs[None]).reshape(-1, 3), axis=0)

            def ev(p: np.ndarray) -> np.ndarray:
                return self.sdf_normalised(torch.from_numpy(p.astype(np.float32))).double().cpu().numpy()

            mesh = sparse_marching_mesh(ev, cells, lo, h, level=0.0, mise_iter=1, batch_size=1 << 16)
        else:
            raise ValueError(f"unknown mesh method {method!r} (use grid or tetra)")
        if mesh.is_empty():
            raise ValueError("no surface: the opacity field never crosses its zero level "
                             "(train longer, or check that the views see the object)")
        if keep_largest:
            mesh = remove_small_components(mesh, keep_largest=True)
        vc = None
        if colors:
            from scipy.spatial import cKDTree

            _, nn = cKDTree(self.gaussians.means.cpu().numpy()).query(mesh.vertices, k=1)
            vc = self.gaussians.colours().cpu().numpy()[nn].astype(np.float32)
        faces = mesh.faces if np.linalg.det(self._A) > 0 else mesh.faces[:, ::-1].copy()
        return Mesh(self.normalised_to_world(mesh.vertices), faces, vertex_colors=vc)
