"""VolSDFField: the trained SDF network as a :class:`recon.field.Field` in world units.

The network lives in the normalised frame (scene inside the unit sphere); ``to_world`` (4, 4), a
similarity x_w = s R x_n + c, maps it to world units. Outside the unit sphere the field is
max(d, |x_n| - 1), so the surface never leaves the region the images constrained.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon.backends.volsdf.networks import SDFNetwork
from recon.ops.transforms import similarity_parts
from recon.types import Mesh


class VolSDFField:
    """The trained SDF (negative inside, world units).

    Attributes:
        sdf_net: the geometry network (normalised frame).
        to_world: (4, 4) float64 normalised -> world similarity.
        scale: its scale factor s (world units per normalised unit).
        mesh_resolution: default marching-cubes resolution of :meth:`extract_mesh`.
        color_fn: optional colour network ``(x (K, 3) normalised, view_dir (K, 3), grad (K, 3), z (K, F)) ->
            (K, 3)`` in [0, 1], used for vertex colours (seen head-on, view_dir = -normal).
        info: training summary (steps, seconds, beta, ...).
    """

    def __init__(self, sdf_net: SDFNetwork, to_world: np.ndarray | None = None, *, mesh_resolution: int = 256,
                 color_fn: Any = None, info: dict[str, Any] | None = None):
        self.sdf_net = sdf_net.eval()
        self.to_world = np.eye(4) if to_world is None else np.asarray(to_world, dtype=np.float64).reshape(4, 4)
        self.scale, self._A, self._c = similarity_parts(self.to_world)
        self._A_inv = np.linalg.inv(self._A)
        self.mesh_resolution = int(mesh_resolution)
        self.color_fn = color_fn
        self.info = dict(info or {})

    @property
    def device(self) -> torch.device:
        return next(self.sdf_net.parameters()).device

    def to(self, device: str | torch.device) -> "VolSDFField":
        """Move the network to another device (in place); returns self."""
        self.sdf_net.to(device)
        return self

    # ------------------------------------------------------------------ normalised frame

    def sdf_normalised(self, x: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
        """(K, 3) normalised positions (on the field's device) -> (K,) distances in normalised units, clamped
        by the unit sphere (no gradient)."""
        out = []
        with torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                xb = x[s:s + batch_size]
                out.append(torch.maximum(self.sdf_net.sdf(xb), xb.norm(dim=-1) - 1.0))
        return torch.cat(out) if out else x.new_zeros(0)

    def world_to_normalised(self, xyz: np.ndarray) -> np.ndarray:
        """(K, 3) world -> normalised positions (float64)."""
        return (np.asarray(xyz, dtype=np.float64).reshape(-1, 3) - self._c) @ self._A_inv.T

    def normalised_to_world(self, x: np.ndarray) -> np.ndarray:
        """(K, 3) normalised -> world positions (float64)."""
        return np.asarray(x, dtype=np.float64).reshape(-1, 3) @ self._A.T + self._c

    # ------------------------------------------------------------------ Field protocol

    def evaluate(self, xyz: Any, grad: bool = False, batch_size: int = 65536) -> Any:
        """Signed distance (world units) and optionally its world gradient at world positions.

        Args:
            xyz: (K, 3) world positions, numpy or torch (any device).
            grad: also return (K, 3) gradients.
            batch_size: points per network call.

        Returns:
            f (K,) or (f, g); numpy float64 for numpy input, torch float32 on the input's device otherwise.
        """
        was_np = not isinstance(xyz, torch.Tensor)
        src_dev = None if was_np else xyz.device
        pts = xyz if was_np else xyz.detach().cpu().double().numpy()
        xn = torch.from_numpy(self.world_to_normalised(pts).astype(np.float32)).to(self.device)
        if not grad:
            f = self.sdf_normalised(xn, batch_size) * self.scale
            g = None
        else:
            fs, gs = [], []
            for s in range(0, xn.shape[0], batch_size):
                xb = xn[s:s + batch_size].clone().requires_grad_(True)
                with torch.enable_grad():
                    val = torch.maximum(self.sdf_net.sdf(xb), xb.norm(dim=-1) - 1.0)
                    (gb,) = torch.autograd.grad(val.sum(), xb)
                fs.append(val.detach())
                gs.append(gb)
            f = (torch.cat(fs) if fs else xn.new_zeros(0)) * self.scale
            gn = torch.cat(gs) if gs else xn.new_zeros(0, 3)
            # d_w(x) = s d_n(A^-1 (x - c))  =>  grad_w = s A^-T grad_n
            M = torch.as_tensor(self.scale * self._A_inv.T, dtype=gn.dtype, device=gn.device)
            g = gn @ M.T
        if was_np:
            f = f.cpu().double().numpy()
            g = None if g is None else g.cpu().double().numpy()
        else:
            f = f.to(src_dev)
            g = None if g is None else g.to(src_dev)
        return (f, g) if grad else f

    def bounds(self) -> np.ndarray:
        """(2, 3) world box of the unit sphere (where the surface can lie)."""
        return np.stack([self._c - self.scale, self._c + self.scale])

    def surface_box(self, resolution: int = 64) -> np.ndarray | None:
        """(2, 3) normalised box around the zero level set found on a coarse grid over [-1, 1]^3
        (padded by two coarse cells), or None when the coarse grid sees no surface."""
        n = int(resolution) + 1
        ax = torch.linspace(-1.0, 1.0, n, device=self.device)
        g = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
        v = self.sdf_normalised(g).reshape(n, n, n)
        inside = v < 0
        if not bool(inside.any()) or bool(inside.all()):
            return None
        h = 2.0 / resolution
        near = v.abs() < 1.8 * h  # crossing cells have a corner within a cell diagonal of the surface
        idx = torch.nonzero(near | inside)
        lo = ax[idx.min(0).values] - 2 * h
        hi = ax[idx.max(0).values] + 2 * h
        return np.stack([lo.clamp(-1, 1).cpu().numpy(), hi.clamp(-1, 1).cpu().numpy()]).astype(np.float64)

    def extract_mesh(self, resolution: int | None = None, level: float = 0.0, keep_largest: bool = True,
                     colors: bool = False, batch_size: int = 65536) -> Mesh:
        """Marching cubes of the SDF in world units, keeping the main component.

        A coarse 64^3 pass over the unit sphere's cube finds the surface's box; the fine grid then has
        ``resolution`` cells along that box's longest side.

        Args:
            resolution: cells along the longest side of the surface box (default ``mesh_resolution``).
            level: iso-value in world units.
            keep_largest: keep only the largest connected component.
            colors: add vertex colours from the colour network (seen along the normal).
            batch_size: points per network call.

        Returns:
            The mesh in world units (empty when the field has no zero crossing).
        """
        from recon.meshing.cleanup import remove_small_components
        from recon.meshing.dense import mesh_field_dense
        from recon.meshing.sparse import empty_mesh

        res = int(resolution or self.mesh_resolution)
        box = self.surface_box()
        if box is None:
            return empty_mesh()
        lvl = float(level) / self.scale

        def ev(p: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(p.astype(np.float32)).to(self.device)
            return self.sdf_normalised(x, batch_size).double().cpu().numpy()

        mesh = mesh_field_dense(ev, box, res, level=lvl, batch_size=4 * batch_size)
        if mesh.is_empty():
            return mesh
        if keep_largest:
            mesh = remove_small_components(mesh, keep_largest=True)
        vc = None
        if colors and self.color_fn is not None:
            vc = self._vertex_colors(mesh.vertices, batch_size)
        faces = mesh.faces if np.linalg.det(self._A) > 0 else mesh.faces[:, ::-1].copy()
        return Mesh(self.normalised_to_world(mesh.vertices), faces, vertex_colors=vc)

    def _vertex_colors(self, v: np.ndarray, batch_size: int) -> np.ndarray:
        out = []
        for s in range(0, v.shape[0], batch_size):
            xb = torch.from_numpy(v[s:s + batch_size].astype(np.float32)).to(self.device)
            d, z, g = self.sdf_net.with_gradient(xb, create_graph=False)
            n = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-9)
            with torch.no_grad():
                out.append(self.color_fn(xb, -n, g, z).cpu().numpy())
        return np.concatenate(out).astype(np.float32)
