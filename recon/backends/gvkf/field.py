"""GVKFField: trained Gaussians plus the views they were fitted to, as an implicit surface.

The field value at x is GVKF's opacity-to-distance map (docs/gvkf_volsdf.md section 2.3): the
opacity accumulated along each training view's ray up to x, mapped through the logistic inverse
and maximised over views (:func:`recon.backends.gvkf.surface.opacity_to_sdf`). It is negative
inside, positive outside, and saturates at +-``clamp``; it is a pseudo-distance (metric only near
the surface), reported in world units (normalised value times the frame's scale).

Vertex colours (:meth:`GVKFField.vertex_colours`) come from the Gaussians' own colours, which are
view-independent RGB (no spherical harmonics). Among the ``COLOUR_NEIGHBOURS`` Gaussians with the nearest
centres, "ray" composites front to back, as the rasteriser does, the Gaussians met by the line along the
vertex normal (what a camera looking straight at the surface sees: each Gaussian's alpha is its peak along
that line, ``o_i exp(-q_i / 2)``); "kernel" blends them by their density at the vertex,
``o_i exp(-m_i^2 / 2)`` with m_i the Mahalanobis distance; "nearest" takes the Gaussian with the nearest
centre. benchmarks/photos_colour.py measures the three.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon.backends.gvkf.config import GVKFConfig
from recon.backends.gvkf.gaussians import GaussianSet, quat_to_rotmat, rotmat_to_quat
from recon.backends.gvkf.surface import opacity_to_sdf
from recon.backends.gvkf.tetra import extract_mesh as tetra_mesh
from recon.device import torch_threads
from recon.meshing.cleanup import remove_small_components
from recon.meshing.sparse import sparse_marching_mesh
from recon.ops.knn import build_tree
from recon.ops.transforms import similarity_parts
from recon.types import Mesh

COLOUR_MODES = ("ray", "kernel", "nearest")
"""How :meth:`GVKFField.vertex_colours` turns the Gaussians' colours into one colour per vertex."""

#: Gaussians (nearest centres) blended per vertex in the "ray" and "kernel" colour modes.
COLOUR_NEIGHBOURS = 32
#: alpha bounds of the "ray" mode, as in the rasteriser: at most 0.99, skipped below 1/255
_ALPHA_MAX, _ALPHA_MIN = 0.99, 1.0 / 255.0


def vertex_normals_torch(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(V, 3) area-weighted unit vertex normals of a triangle mesh (zero rows for unused vertices).

    Args:
        vertices: (V, 3) positions; faces: (F, 3) int64 indices, counter-clockwise seen from outside.
    """
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    cross = torch.linalg.cross(b - a, c - a)                                   # (F, 3), twice the area
    acc = torch.zeros_like(vertices)
    for i in range(3):  # three corners, vectorised over faces
        acc.index_add_(0, faces[:, i], cross)
    return acc / acc.norm(dim=-1, keepdim=True).clamp_min(1e-30)


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

        with torch.no_grad(), torch_threads(self.config.threads, self.device):
            return opacity_to_sdf(self.gaussians, self.K, self.cam_to_world, self.width, self.height,
                                  x.to(self.device).float(), shift=self.config.sdf_shift, progress=progress)

    def world_gaussians(self) -> GaussianSet:
        """The Gaussians mapped to world units (means, scales and rotations through ``to_world``)."""

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
                     colors: bool = True, color_mode: str = "ray", progress: Any = None) -> Mesh:
        """Mesh of the zero level set in world units.

        Args:
            resolution: grid cells along the longest side of the Gaussians' box ("grid" method; default
                ``config.mesh_resolution``). The field is sampled only in cells near Gaussians at least
                ``SURFACE_OPACITY`` opaque (a half-resolution shell refined once where the surface
                crosses, MISE-style).
            method: "grid" or "tetra" (marching tetrahedra on a Delaunay of points around the
                Gaussians with long-edge filtering); default ``config.mesh_method``.
            keep_largest: keep only the largest connected component.
            colors: add vertex colours from the Gaussians (see :meth:`vertex_colours`).
            color_mode: one of :data:`COLOUR_MODES`.

        Raises:
            ValueError: the field has no zero crossing ("no surface").
        """
        method = method or self.config.mesh_method
        if len(self.gaussians) == 0:
            raise ValueError("no surface: there are no Gaussians")
        if method == "tetra":

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
            x = torch.from_numpy(mesh.vertices.astype(np.float32)).to(self.device)
            n = vertex_normals_torch(x, torch.from_numpy(mesh.faces).to(self.device))
            vc = self.colours_normalised(x, color_mode, n).cpu().numpy()
        faces = mesh.faces if np.linalg.det(self._A) > 0 else mesh.faces[:, ::-1].copy()
        return Mesh(self.normalised_to_world(mesh.vertices), faces, vertex_colors=vc)

    def vertex_colours(self, xyz: np.ndarray, mode: str = "ray", normals: np.ndarray | None = None) -> np.ndarray:
        """View-independent colours of surface points given in world units.

        Args:
            xyz: (K, 3) world positions (on or near the surface).
            mode: "ray" (front-to-back compositing along the outward normal of the ``COLOUR_NEIGHBOURS``
                nearest Gaussians), "kernel" (those Gaussians weighted by their density at the point) or
                "nearest" (the Gaussian with the nearest centre); see the module docstring.
            normals: (K, 3) outward world normals, needed by "ray".

        Returns:
            (K, 3) float32 RGB in [0, 1] (the Gaussians' colour space, that of the images).
        """
        x = torch.from_numpy(self.world_to_normalised(xyz).astype(np.float32)).to(self.device)
        n = None
        if normals is not None:  # covariant: n_n ~ A^T n_w for x_w = A x_n + c
            n = torch.from_numpy((np.asarray(normals, np.float64).reshape(-1, 3) @ self._A).astype(np.float32))
            n = (n / n.norm(dim=-1, keepdim=True).clamp_min(1e-30)).to(self.device)
        return self.colours_normalised(x, mode, n).cpu().numpy()

    def colours_normalised(self, x: torch.Tensor, mode: str = "ray", normals: torch.Tensor | None = None,
                           batch_size: int = 1 << 15) -> torch.Tensor:
        """(K, 3) float32 colours in [0, 1] at (K, 3) normalised positions (any device; result on ``x``'s).

        The neighbour search runs on the CPU (a k-d tree over the centres); the weights and the blend run
        on the Gaussians' device in batches of ``batch_size`` points. A point whose neighbours contribute
        nothing (weights summing below 1e-12) takes its nearest Gaussian's colour.

        Args:
            x: (K, 3) normalised positions.
            mode: one of :data:`COLOUR_MODES`.
            normals: (K, 3) unit outward normals (normalised frame), needed by "ray".
            batch_size: points per batch.

        Raises:
            ValueError: an unknown mode, "ray" without normals, or no Gaussians.
        """
        if mode not in COLOUR_MODES:
            raise ValueError(f"unknown colour mode {mode!r} (use one of {', '.join(COLOUR_MODES)})")
        if mode == "ray" and (normals is None or normals.shape != x.shape):
            raise ValueError("the 'ray' colour mode needs one normal per point")
        g = self.gaussians
        if len(g) == 0:
            raise ValueError("no Gaussians to take colours from")
        k = 1 if mode == "nearest" else min(COLOUR_NEIGHBOURS, len(g))
        tree = build_tree(g.means.detach().cpu().numpy().astype(np.float64))
        colours = g.colours()
        rot, inv_s, opa = g.rotations(), torch.exp(-g.log_scales), g.opacities()
        out = []
        for s in range(0, x.shape[0], batch_size):  # batches of points, all neighbours of a batch at once
            xb = x[s:s + batch_size].to(self.device).float()
            _, nn = tree.query(xb.cpu().numpy().astype(np.float64), k=k)
            idx = torch.from_numpy(np.asarray(nn, np.int64).reshape(xb.shape[0], k)).to(self.device)
            nearest = colours[idx[:, 0]]
            if k == 1:
                out.append(nearest)
                continue
            to_local = rot[idx].transpose(-1, -2) * inv_s[idx][..., None]             # (B, k, 3, 3) S^-1 R^T
            a = (to_local @ (xb[:, None, :] - g.means[idx])[..., None])[..., 0]      # (B, k, 3)
            if mode == "kernel":
                w = opa[idx] * torch.exp(-0.5 * (a * a).sum(-1))                        # density at x (B, k)
            else:  # the line x - t n (a camera outside looking in): peak of each Gaussian along it
                b = -(to_local @ normals[s:s + batch_size].to(self.device).float()[:, None, :, None])[..., 0]
                bb = (b * b).sum(-1).clamp_min(1e-30)
                ab = (a * b).sum(-1)
                q = ((a * a).sum(-1) - ab * ab / bb).clamp_min(0.0)
                alpha = (opa[idx] * torch.exp(-0.5 * q)).clamp_max(_ALPHA_MAX)
                alpha = torch.where((alpha >= _ALPHA_MIN) & (q <= 9.0), alpha, torch.zeros_like(alpha))
                order = torch.argsort(-ab / bb, dim=-1)                                # front (camera side) first
                alpha = torch.gather(alpha, 1, order)
                idx = torch.gather(idx, 1, order)
                trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
                w = alpha * trans
            total = w.sum(-1, keepdim=True)
            blend = (w[..., None] * colours[idx]).sum(1) / total.clamp_min(1e-30)
            out.append(torch.where(total > 1e-12, blend, nearest))
        res = torch.cat(out) if out else x.new_zeros(0, 3)
        return res.clamp(0.0, 1.0).float().to(x.device)
