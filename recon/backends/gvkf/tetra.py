"""GVKF mesh extraction by marching tetrahedra (docs/gvkf_volsdf.md section 2.4).

Pipeline of :func:`extract_mesh`: 9 candidate points per Gaussian (centre and the 8 corners of
its oriented box of half-extent ``sigma * scale``), optional axis-aligned crop, the signed field
at the points (stop if it never changes sign), Delaunay tetrahedralisation
(``scipy.spatial.Delaunay``, Qhull), one vertex per sign-changing tetrahedron edge,
``bisection_steps`` bisections per crossing edge (all edges batched per step), then the
long-edge filter and removal of unreferenced vertices.

Sign convention: negative inside, positive outside; a value of exactly 0 counts as outside.
Triangles are wound counter-clockwise seen from the outside, so face normals
``(v1 - v0) x (v2 - v0)`` point towards increasing values.

Marching-tetrahedra case table (derived here, :func:`_build_case_table`)
------------------------------------------------------------------------
Local edges ``e = 0..5`` join tetra vertices ``TET_EDGES[e]``; case bit k is set when vertex k
is inside. One vertex separated from the other three (1 or 3 inside) gives one triangle on the
three edges at that vertex; two inside {a, b} and two outside {c, d} give the planar quad
``ac -> ad -> bd -> bc`` (consecutive points share a tetra face, so it is convex), split into
two triangles along ``ac - bd``. Each triangle is wound, on the positively oriented reference
tetrahedron, so that its normal points from the inside vertices' centroid to the outside
ones'; the zero set of the linear interpolant is a plane separating the two groups, so the
winding is right for any crossing positions on the edges, and an orientation-reversing tetra
(negative determinant) just swaps two triangle corners. Shared tetra faces produce the same
segment from both sides, so the surface is watertight inside the convex hull.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable

import numpy as np
import torch

from recon.backends.gvkf.gaussians import GaussianSet
from recon.errors import EmptyResultError

#: (6, 2) tetrahedron edges as local vertex pairs.
TET_EDGES = np.array(list(combinations(range(4), 2)), dtype=np.int64)
_BOX_SIGNS = np.array([[(k >> 0) & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], np.float32) * 2 - 1


class NoSurfaceError(EmptyResultError, ValueError):
    """Mesh extraction found no surface; the message starts with ``no surface:``."""

    def __init__(self, problem: str, fix: str | None = None):
        super().__init__(f"no surface: {problem}", fix=fix)


def _build_case_table() -> np.ndarray:
    """(16, 2, 3) int64 local edge ids of up to two triangles per case (-1 where absent).

    Windings are for a tetrahedron with positive orientation,
    ``det[p1 - p0, p2 - p0, p3 - p0] > 0``; see the module docstring for the rule.
    """
    ref = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float64)
    edge_of = {frozenset(map(int, e)): i for i, e in enumerate(TET_EDGES)}
    mids = ref[TET_EDGES].mean(1)
    table = np.full((16, 2, 3), -1, np.int64)
    for case in range(1, 15):
        inside = [k for k in range(4) if (case >> k) & 1]
        outside = [k for k in range(4) if not (case >> k) & 1]
        if len(inside) == 2:
            (a, b), (c, d) = inside, outside
            ring = [edge_of[frozenset(p)] for p in ((a, c), (a, d), (b, d), (b, c))]
            tris = [[ring[0], ring[1], ring[2]], [ring[0], ring[2], ring[3]]]
        else:
            lone = inside[0] if len(inside) == 1 else outside[0]
            tris = [[edge_of[frozenset((lone, o))] for o in range(4) if o != lone]]
        towards_out = ref[outside].mean(0) - ref[inside].mean(0)
        for t, tri in enumerate(tris):
            p = mids[tri]
            if np.dot(np.cross(p[1] - p[0], p[2] - p[0]), towards_out) < 0:
                tri = [tri[0], tri[2], tri[1]]
            table[case, t] = tri
    return table


#: (16, 2, 3) marching-tetrahedra triangle table (local edge ids, -1 padded).
CASE_TABLE = _build_case_table()


def candidate_points(gaussians: GaussianSet, sigma: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and the 8 oriented-box corners of every Gaussian.

    Args:
        gaussians: N Gaussians.
        sigma: half-extent of the box in standard deviations along each local axis.

    Returns:
        points (9N, 3) world units, Gaussian-major (rows 9i..9i+8 belong to Gaussian i, the
        centre first), and owner (9N,) int64 Gaussian index; on the Gaussians' device.
    """
    mu = gaussians.means.detach()
    R = gaussians.rotations().detach()
    half = sigma * gaussians.scales().detach()                              # (N, 3)
    signs = torch.as_tensor(_BOX_SIGNS, dtype=mu.dtype, device=mu.device)   # (8, 3)
    corners = mu[:, None, :] + torch.einsum("nij,nkj->nki", R, half[:, None, :] * signs)
    pts = torch.cat([mu[:, None, :], corners], 1).reshape(-1, 3)
    owner = torch.arange(mu.shape[0], device=mu.device).repeat_interleave(9)
    return pts, owner


def marching_tetrahedra(points: np.ndarray, tets: np.ndarray, values: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangulate the zero level set of a piecewise-linear field on a tetrahedral mesh.

    Args:
        points: (P, 3) vertex positions; tets: (T, 4) int vertex indices; values: (P,) field
            (negative inside; 0 counts as outside).

    Returns:
        vertices (E, 3) float64 on the sign-changing edges (linear interpolation), faces (F, 3)
        int64 wound so normals point towards positive values, and edges (E, 2) int64 endpoint
        indices (ascending) of the edge each vertex lies on. A tetra edge gives one vertex
        however many tetrahedra share it. Empty arrays when nothing changes sign.
    """
    points = np.asarray(points, np.float64)
    values = np.asarray(values, np.float64)
    tets = np.asarray(tets, np.int64)
    inside = values[tets] < 0                                               # (T, 4)
    case = inside @ (1 << np.arange(4))
    mixed = (case > 0) & (case < 15)
    tets, case = tets[mixed], case[mixed]
    if tets.shape[0] == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 2), np.int64)
    corner = points[tets]                                                   # (T, 4, 3)
    det = np.linalg.det(corner[:, 1:] - corner[:, :1])
    local = CASE_TABLE[case]                                                # (T, 2, 3)
    local = np.where((det < 0)[:, None, None], local[:, :, [0, 2, 1]], local)
    valid = local[:, :, 0] >= 0
    tet_of = np.broadcast_to(np.arange(tets.shape[0])[:, None], valid.shape)[valid]
    local = local[valid]                                                    # (F, 3)
    ends = tets[tet_of[:, None, None], TET_EDGES[local]]                    # (F, 3, 2)
    ends.sort(axis=-1)
    n = np.int64(points.shape[0])
    keys, faces = np.unique(ends[..., 0] * n + ends[..., 1], return_inverse=True)
    faces = faces.reshape(-1, 3).astype(np.int64)
    edges = np.stack([keys // n, keys % n], 1)
    va, vb = values[edges[:, 0]], values[edges[:, 1]]
    t = (va / (va - vb))[:, None]
    vertices = points[edges[:, 0]] + t * (points[edges[:, 1]] - points[edges[:, 0]])
    return vertices, faces, edges


def bisect_edges(sdf: Callable[[torch.Tensor], torch.Tensor], p_in: np.ndarray, v_in: np.ndarray,
                 p_out: np.ndarray, v_out: np.ndarray, steps: int, device: torch.device | str = "cpu"
                 ) -> np.ndarray:
    """Refine zero crossings on E edges by bisection, then interpolate linearly.

    Args:
        sdf: torch (M, 3) -> (M,) field (negative inside), evaluated once per step on all
            edges' midpoints together.
        p_in, p_out: (E, 3) endpoints with ``v_in < 0 <= v_out`` (their values, (E,)).
        steps: number of bisection steps.
        device: where the midpoints are sent for ``sdf``.

    Returns:
        (E, 3) float64 crossing points.
    """
    p_in, p_out = p_in.astype(np.float64).copy(), p_out.astype(np.float64).copy()
    v_in, v_out = v_in.astype(np.float64).copy(), v_out.astype(np.float64).copy()
    for _ in range(steps):
        mid = 0.5 * (p_in + p_out)
        vm = sdf(torch.as_tensor(mid, dtype=torch.float32, device=device)).detach().double().cpu().numpy()
        go_in = vm < 0
        p_in[go_in], v_in[go_in] = mid[go_in], vm[go_in]
        p_out[~go_in], v_out[~go_in] = mid[~go_in], vm[~go_in]
    t = (v_in / (v_in - v_out))[:, None]
    return p_in + t * (p_out - p_in)


def long_edge_keep(vertices: np.ndarray, faces: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Faces to keep under the long-edge filter.

    Args:
        vertices: (V, 3); faces: (F, 3) int; radius: (V,) allowed reach of each vertex
            (world units).

    Returns:
        (F,) bool: True where every edge (u, w) of the face has length <= radius[u] + radius[w].
    """
    a, b = faces, np.roll(faces, -1, axis=1)                                # (F, 3) edge ends
    length = np.linalg.norm(vertices[a] - vertices[b], axis=-1)
    return np.all(length <= radius[a] + radius[b], axis=1)


def _remove_unreferenced(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.zeros(vertices.shape[0], bool)
    used[faces.ravel()] = True
    new_index = np.cumsum(used) - 1
    return vertices[used], new_index[faces]


def extract_mesh(sdf: Callable[[torch.Tensor], torch.Tensor], gaussians: GaussianSet, *, sigma: float = 3.0,
                 bisection_steps: int = 3, filter_long_edges: bool = True,
                 bounds: tuple[np.ndarray, np.ndarray] | None = None,
                 progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mesh the zero level set of ``sdf`` by marching tetrahedra on points from the Gaussians.

    Args:
        sdf: torch (M, 3) world points (float32, on the Gaussians' device) -> (M,) values,
            negative inside (e.g. a closure over :func:`recon.backends.gvkf.surface.opacity_to_sdf`).
        gaussians: the N Gaussians that give the candidate points and the filter's reach.
        sigma: box half-extent in standard deviations (candidate points and filter reach).
        bisection_steps: bisection steps per crossing edge.
        filter_long_edges: drop faces with an edge longer than the sum of its two endpoints'
            reach; a mesh vertex's reach is ``sigma * max scale`` of the Gaussian that owns
            the nearer tetra vertex of the edge it lies on.
        bounds: optional (lo (3,), hi (3,)) box; candidate points outside it are dropped.
        progress: called with the fraction done.

    Returns:
        vertices (V, 3) float32 and faces (F, 3) int64, normals pointing outside.

    Raises:
        NoSurfaceError (a ValueError): no Gaussians, too few points, no sign change, or no
            face left after filtering.
    """
    from scipy.spatial import Delaunay
    from scipy.spatial import QhullError

    report = progress if progress is not None else (lambda fraction: None)
    if len(gaussians) == 0:
        raise NoSurfaceError("there are no Gaussians to mesh", fix="check that training kept some Gaussians")
    pts_t, owner_t = candidate_points(gaussians, sigma)
    pts = pts_t.double().cpu().numpy()
    owner = owner_t.cpu().numpy()
    if bounds is not None:
        lo, hi = (np.asarray(b, np.float64).reshape(3) for b in bounds)
        keep = np.all((pts >= lo) & (pts <= hi), axis=1)
        pts, owner = pts[keep], owner[keep]
    if pts.shape[0] < 4:
        raise NoSurfaceError(f"only {pts.shape[0]} candidate points (need 4 for a tetrahedron)",
                             fix="widen the bounds or train more Gaussians")
    device = gaussians.device
    values = sdf(torch.as_tensor(pts, dtype=torch.float32, device=device)).detach().double().cpu().numpy()
    report(0.4)
    n_in = int(np.count_nonzero(values < 0))
    if n_in == 0 or n_in == values.shape[0]:
        where = "outside" if n_in == 0 else "inside"
        raise NoSurfaceError(f"the field does not change sign at the {values.shape[0]} candidate points "
                             f"(all {where})", fix="check the cameras see the Gaussians and the bounds")
    try:
        tets = Delaunay(pts).simplices.astype(np.int64)
    except QhullError as exc:
        raise NoSurfaceError(f"Delaunay tetrahedralisation failed ({str(exc).splitlines()[0]})",
                             fix="the candidate points are degenerate (coplanar?)") from exc
    report(0.7)
    _, faces, edges = marching_tetrahedra(pts, tets, values)
    if faces.shape[0] == 0:
        raise NoSurfaceError("no tetrahedron edge changes sign", fix="check the bounds")
    inside_first = values[edges[:, 0]] < 0
    e_in = np.where(inside_first, edges[:, 0], edges[:, 1])
    e_out = np.where(inside_first, edges[:, 1], edges[:, 0])
    vertices = bisect_edges(sdf, pts[e_in], values[e_in], pts[e_out], values[e_out], bisection_steps, device)
    report(0.9)
    if filter_long_edges:
        near_in = (np.linalg.norm(vertices - pts[e_in], axis=1)
                   <= np.linalg.norm(vertices - pts[e_out], axis=1))
        near_owner = owner[np.where(near_in, e_in, e_out)]
        reach = sigma * gaussians.scales().detach().max(dim=1).values.double().cpu().numpy()
        faces = faces[long_edge_keep(vertices, faces, reach[near_owner])]
        if faces.shape[0] == 0:
            raise NoSurfaceError("the long-edge filter removed every face",
                                 fix="extract with filter_long_edges=False or train longer")
    vertices, faces = _remove_unreferenced(vertices, faces)
    report(1.0)
    return vertices.astype(np.float32), faces.astype(np.int64)


__all__ = ["CASE_TABLE", "TET_EDGES", "NoSurfaceError", "bisect_edges", "candidate_points", "extract_mesh",
           "long_edge_keep", "marching_tetrahedra"]
