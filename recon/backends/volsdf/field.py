"""VolSDFField: the trained SDF network as a :class:`recon.field.Field` in world units.

The network lives in the normalised frame (scene inside the unit sphere); ``to_world`` (4, 4), a
similarity x_w = s R x_n + c, maps it to world units. Outside the unit sphere the field is
max(d, |x_n| - 1), so the surface never leaves the region the images constrained.

Vertex colours come from the colour network at the vertex (position, SDF gradient and feature there):
the network is view-dependent, so :meth:`VolSDFField.vertex_colours` asks it from several camera
directions around the surface normal and averages ("hemisphere", the default), or from the one camera
looking straight at the surface ("normal"). benchmarks/photos_colour.py measures both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon.backends.volsdf.networks import SDFNetwork
from recon.meshing.cleanup import remove_small_components
from recon.meshing.dense import mesh_field_dense
from recon.meshing.sparse import empty_mesh
from recon.ops.transforms import similarity_parts
from recon.types import Mesh

COLOUR_MODES = ("hemisphere", "normal")
"""How :meth:`VolSDFField.vertex_colours` asks the view-dependent colour network for one colour."""

#: Hemisphere directions as (polar angle from the inward normal, count): the straight-on view plus two
#: rings, each direction weighted by cos(angle) (a camera at a grazing angle sees less of the surface).
_HEMISPHERE_RINGS = ((0.0, 1), (np.radians(35.0), 6), (np.radians(65.0), 6))


def hemisphere_directions() -> tuple[np.ndarray, np.ndarray]:
    """Viewing directions in a local frame whose +z is the inward normal (camera looking at the surface).

    Returns:
        dirs: (M, 3) float64 unit vectors (z > 0), weights: (M,) float64 summing to 1.
    """
    dirs, w = [], []
    for k, (theta, count) in enumerate(_HEMISPHERE_RINGS):
        phi = 2 * np.pi * (np.arange(count) + 0.5 * k) / count
        dirs.append(np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                              np.full(count, np.cos(theta))], -1))
        w.append(np.full(count, np.cos(theta)))
    d, wt = np.concatenate(dirs), np.concatenate(w)
    return d, wt / wt.sum()


def tangent_frames(n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit tangents (K, 3) each, orthogonal to the unit normals ``n`` (K, 3) and to each other."""
    helper = torch.zeros_like(n)
    use_x = n[:, 0].abs() < 0.9
    helper[:, 0] = use_x.to(n.dtype)
    helper[:, 1] = (~use_x).to(n.dtype)
    t1 = torch.linalg.cross(n, helper)
    t1 = t1 / t1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return t1, torch.linalg.cross(n, t1)


class VolSDFField:
    """The trained SDF (negative inside, world units).

    Attributes:
        sdf_net: the geometry network (normalised frame).
        to_world: (4, 4) float64 normalised -> world similarity.
        scale: its scale factor s (world units per normalised unit).
        mesh_resolution: default marching-cubes resolution of :meth:`extract_mesh`.
        color_fn: optional colour network ``(x (K, 3) normalised, view_dir (K, 3), grad (K, 3), z (K, F)) ->
            (K, 3)`` in [0, 1] (view_dir: unit ray direction, camera to point), used for vertex colours.
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

    def to(self, device: str | torch.device) -> VolSDFField:
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
                     colors: bool = True, color_mode: str = "hemisphere", batch_size: int = 65536) -> Mesh:
        """Marching cubes of the SDF in world units, keeping the main component.

        A coarse 64^3 pass over the unit sphere's cube finds the surface's box; the fine grid then has
        ``resolution`` cells along that box's longest side.

        Args:
            resolution: cells along the longest side of the surface box (default ``mesh_resolution``).
            level: iso-value in world units.
            keep_largest: keep only the largest connected component.
            colors: add vertex colours from the colour network (when the field has one).
            color_mode: one of :data:`COLOUR_MODES` (see :meth:`vertex_colours`).
            batch_size: points per network call.

        Returns:
            The mesh in world units (empty when the field has no zero crossing).
        """
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
            x = torch.from_numpy(mesh.vertices.astype(np.float32)).to(self.device)
            vc = self.colours_normalised(x, color_mode, batch_size).cpu().numpy()
        faces = mesh.faces if np.linalg.det(self._A) > 0 else mesh.faces[:, ::-1].copy()
        return Mesh(self.normalised_to_world(mesh.vertices), faces, vertex_colors=vc)

    def vertex_colours(self, xyz: np.ndarray, mode: str = "hemisphere", batch_size: int = 65536) -> np.ndarray:
        """View-independent colours of surface points given in world units.

        Args:
            xyz: (K, 3) world positions (on or near the zero level set).
            mode: "hemisphere" (the cos-weighted mean over 13 camera directions within 65 degrees of the
                inward normal) or "normal" (the camera looking along the inward normal).
            batch_size: points per network call.

        Returns:
            (K, 3) float32 linear RGB in [0, 1].

        Raises:
            ValueError: no colour network, or an unknown mode.
        """
        x = torch.from_numpy(self.world_to_normalised(xyz).astype(np.float32)).to(self.device)
        return self.colours_normalised(x, mode, batch_size).cpu().numpy()

    def colours_normalised(self, x: torch.Tensor, mode: str = "hemisphere", batch_size: int = 65536) -> torch.Tensor:
        """(K, 3) float32 colours in [0, 1] at (K, 3) normalised positions on the field's device.

        The position, the SDF gradient and the feature vector are computed once per point; only the
        viewing direction changes across the hemisphere's directions (see :meth:`vertex_colours`).
        """
        if self.color_fn is None:
            raise ValueError("this field has no colour network")
        if mode not in COLOUR_MODES:
            raise ValueError(f"unknown colour mode {mode!r} (use one of {', '.join(COLOUR_MODES)})")
        local, weights = hemisphere_directions() if mode == "hemisphere" else (np.array([[0.0, 0.0, 1.0]]), np.ones(1))
        loc = torch.as_tensor(local, dtype=torch.float32, device=x.device)             # (M, 3)
        wt = torch.as_tensor(weights, dtype=torch.float32, device=x.device)            # (M,)
        m = loc.shape[0]
        step = max(1, int(batch_size) // m)
        out = []
        for s in range(0, x.shape[0], step):  # batches of points, every direction of a batch in one call
            xb = x[s:s + step]
            _, z, g = self.sdf_net.with_gradient(xb, create_graph=False)
            with torch.no_grad():
                z, g = z.detach(), g.detach()
                n = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-9)
                t1, t2 = tangent_frames(n)
                # camera rays point into the surface: local +z is -n
                v = (loc[None, :, 0:1] * t1[:, None] + loc[None, :, 1:2] * t2[:, None]
                     - loc[None, :, 2:3] * n[:, None])                                     # (B, M, 3)
                k = xb.shape[0]
                xr, gr, zr = (a[:, None].expand(k, m, a.shape[-1]).reshape(k * m, -1) for a in (xb, g, z))
                c = self.color_fn(xr, v.reshape(k * m, 3), gr, zr).reshape(k, m, 3)
                out.append((c * wt[None, :, None]).sum(1).clamp(0.0, 1.0).float())
        return torch.cat(out) if out else x.new_zeros(0, 3)
