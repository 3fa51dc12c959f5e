"""GVKF's opacity -> signed distance query (docs/gvkf_volsdf.md section 2.3).

For a world point x and a training view v with camera centre c, the ray is
``r(t) = c + t (x - c)``, so x sits at ``t_x = 1`` exactly. In Gaussian i's scaled local frame
``p(t) = S_i^-1 R_i^T (r(t) - mu_i) = a + t b`` and ``q(t) = |p(t)|^2 = A t^2 + B t + C``
(the Mahalanobis distance squared), with ``t* = -B / 2A`` its minimum. The model (shared by the
fast path and the dense reference, which the tests compare):

- x *votes* in view v when its camera depth is > 0 and its projection (u, v) lies in
  ``[0, width) x [0, height)`` pixels (pixel centres at +0.5, OpenCV camera);
- Gaussian i takes part in view v when its centre's camera depth is > 0 and the ray's line
  passes through its 3-sigma ellipsoid (``min_t q(t) <= 9``: its footprint covers the ray);
- its alpha is ``o_i exp(-q(t_e) / 2)`` with ``t_e = clamp(t*, 0, t_x)`` (the Gaussian's value at
  its peak along the ray, or at x if the peak lies behind x; never behind the camera), clamped
  to 0.99, and skipped below 1/255 as in the rasteriser;
- ``O_v(x) = 1 - prod_i (1 - alpha_i)``, ``D_v = ln(1/O_v - 1) - shift`` clipped to
  ``[-clamp, clamp]`` (``+clamp`` where nothing contributes);
- ``D(x) = max_v D_v(x)`` over the voting views (freespace seen by any camera is outside);
  ``+clamp`` where no view votes.

D is in logit units (not metres): positive outside, negative inside, zero where ``O ~ 0.46``.

Fast path (:func:`opacity_to_sdf`), per view: each Gaussian's silhouette (the projected
3-sigma ellipsoid, exact, from the dual quadric) and its bounding box; a screen tile size
(power of 2, usually 1 px) picked to minimise work; (Gaussian, tile) records for the tiles the
silhouette meets, sorted by tile; each query takes its tile's list, a 2-D point-in-silhouette
test drops most candidates, and the survivors are evaluated exactly in 3-D in chunks, summing
``log(1 - alpha)`` per query with ``index_add_``. Queries already at ``+clamp`` skip later
views (the max cannot change). :func:`opacity_to_sdf_reference` evaluates every pair densely
in float64; the tests hold the two to 1e-5.
"""

from __future__ import annotations

from typing import Callable

import torch

from recon.backends.gvkf.gaussians import GaussianSet

SIGMA_CUT = 3.0          # footprint: the ray must pass within this many standard deviations
ALPHA_MIN = 1.0 / 255.0  # contributions below this alpha are skipped (as in the rasteriser)
ALPHA_MAX = 0.99         # alpha clamp


def _check_inputs(gaussians: GaussianSet, K: torch.Tensor, cam_to_world: torch.Tensor,
                  points: torch.Tensor) -> None:
    if K.ndim != 3 or K.shape[1:] != (3, 3):
        raise ValueError(f"K must be (V, 3, 3), got {tuple(K.shape)}")
    if cam_to_world.ndim != 3 or cam_to_world.shape[1:] != (4, 4) or cam_to_world.shape[0] != K.shape[0]:
        raise ValueError(f"cam_to_world must be (V, 4, 4) with V = {K.shape[0]}, got {tuple(cam_to_world.shape)}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (Q, 3), got {tuple(points.shape)}")


def _world_to_cam(cam_to_world: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(4, 4) camera-to-world -> world-to-camera rotation (3, 3), translation (3,), centre (3,)."""
    R = cam_to_world[:3, :3]
    c = cam_to_world[:3, 3]
    Rw = R.T
    return Rw, -(Rw @ c), c


def _project_queries(K: torch.Tensor, cam_to_world: torch.Tensor, width: int, height: int,
                     points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image coordinates (Q,), (Q,) in pixels and the (Q,) bool voting mask of world points."""
    Rw, tw, _ = _world_to_cam(cam_to_world)
    pc = points @ Rw.T + tw
    z = pc[:, 2]
    safe_z = torch.where(z > 0, z, torch.ones_like(z))
    x, y = pc[:, 0] / safe_z, pc[:, 1] / safe_z
    u = K[0, 0] * x + K[0, 1] * y + K[0, 2]
    v = K[1, 1] * y + K[1, 2]
    votes = (z > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    return u, v, votes


def _logit_distance(log_t: torch.Tensor, shift: float, clamp: float) -> torch.Tensor:
    """D = ln(1/O - 1) - shift from S = ln(1 - O) = sum log(1 - alpha) <= 0, clipped to +-clamp.

    Written as ``S - ln(-expm1(S))`` so that O -> 0 (S -> 0) gives +inf before the clip and
    O -> 1 stays accurate; no NaN for any S <= 0.
    """
    d = log_t - torch.log(-torch.expm1(log_t)) - shift
    return d.clamp(-clamp, clamp)


# ----------------------------------------------------------------------------------------------
# Reference: all pairs, dense, float64
# ----------------------------------------------------------------------------------------------

@torch.no_grad()
def opacity_to_sdf_reference(gaussians: GaussianSet, K: torch.Tensor, cam_to_world: torch.Tensor,
                             width: int, height: int, points: torch.Tensor, *, shift: float = 0.15,
                             clamp: float = 20.0, chunk: int = 1 << 20,
                             progress: Callable[[float], None] | None = None) -> torch.Tensor:
    """Slow, obviously correct :func:`opacity_to_sdf`: every (query, Gaussian) pair, in float64.

    Memory is (queries per block) x N with blocks of about ``chunk`` pairs. For tests.

    Returns:
        (Q,) D in the dtype of ``points``.
    """
    _check_inputs(gaussians, K, cam_to_world, points)
    f64 = torch.float64
    x = points.to(f64)
    mu = gaussians.means.detach().to(f64)
    prec = torch.linalg.inv(gaussians.covariances().detach().to(f64))      # (N, 3, 3)
    opac = gaussians.opacities().detach().to(f64)
    n, q_total = mu.shape[0], x.shape[0]
    best = torch.full((q_total,), -float("inf"), dtype=f64, device=x.device)
    voted = torch.zeros(q_total, dtype=torch.bool, device=x.device)
    block = max(1, chunk // max(n, 1))
    n_views = K.shape[0]
    for view in range(n_views):
        Kv, c2w = K[view].to(f64), cam_to_world[view].to(f64)
        _, _, votes = _project_queries(Kv, c2w, width, height, x)
        Rw, tw, c = _world_to_cam(c2w)
        g_front = (mu @ Rw.T + tw)[:, 2] > 0                              # (N,)
        m = c - mu                                                          # (N, 3)
        C = torch.einsum("ni,nij,nj->n", m, prec, m)
        d_v = torch.full((q_total,), clamp, dtype=f64, device=x.device)
        for s in range(0, q_total, block):
            d = x[s:s + block] - c                                          # (q, 3): t_x = 1
            A = torch.einsum("qi,nij,qj->qn", d, prec, d)
            B = 2.0 * torch.einsum("ni,nij,qj->qn", m, prec, d)
            t_star = -B / (2.0 * A)
            q_min = C - B * B / (4.0 * A)
            t_e = t_star.clamp(0.0, 1.0)
            q_e = A * t_e * t_e + B * t_e + C
            alpha = (opac * torch.exp(-0.5 * q_e)).clamp_max(ALPHA_MAX)
            use = (q_min <= SIGMA_CUT ** 2) & (alpha >= ALPHA_MIN) & g_front
            trans = torch.where(use, 1.0 - alpha, torch.ones_like(alpha)).prod(dim=1)
            opacity = (1.0 - trans).clamp(1e-15, 1.0 - 1e-15)
            d_v[s:s + block] = (torch.log(1.0 / opacity - 1.0) - shift).clamp(-clamp, clamp)
        best = torch.where(votes, torch.maximum(best, d_v), best)
        voted |= votes
        if progress is not None:
            progress((view + 1) / n_views)
    out = torch.where(voted, best, torch.full_like(best, clamp))
    return out.to(points.dtype)


# ----------------------------------------------------------------------------------------------
# Fast path: screen binning + chunked segment sums
# ----------------------------------------------------------------------------------------------

def _screen_footprints(means_cam: torch.Tensor, cov_cam: torch.Tensor, K: torch.Tensor, width: int,
                       height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Conservative screen footprints of the Gaussians' 3-sigma ellipsoids (their silhouettes).

    The silhouette of the ellipsoid ``{X : (X - m)^T E^-1 (X - m) <= 1}``, ``E = 9 Sigma`` (camera
    frame), is the ellipse whose dual conic is ``K (m m^T - E) K^T``; a pixel ray meets the
    ellipsoid exactly when the pixel lies in it (for an ellipsoid entirely in front of the
    camera). Normalising the dual so that its (2, 2) entry is -1 reads off the centre ``c`` and
    the shape ``W`` of the ellipse ``(p - c)^T W^-1 (p - c) <= 1``. ``W`` is then widened to
    ``1.01 W + 0.0101 I``, which contains the ellipse grown by 0.01 px (margin for rounding).
    Gaussians reaching the camera plane get the whole image and a test that always passes.

    Args:
        means_cam: (N, 3) camera-frame centres (depth > 0); cov_cam: (N, 3, 3); K: (3, 3).

    Returns:
        lo (N, 2), hi (N, 2) float64 bounding boxes (u, v) in pixels; centre (N, 2) float64 and
        (N, 3) float64 ``[S00, S01, S11]`` of ``S = W^-1`` (zeros for the whole-image case).
        Float64 throughout: the centre and shape cancel badly for small, distant Gaussians.
    """
    f64 = torch.float64
    m = means_cam.to(f64)
    E = cov_cam.to(f64) * SIGMA_CUT ** 2
    Kd = K.to(f64)
    dual = Kd @ (m[:, :, None] * m[:, None, :] - E) @ Kd.T                # (N, 3, 3)
    c22 = dual[:, 2, 2]                                                     # m_z^2 - E_zz
    in_front = (m[:, 2] > 0) & (c22 > 0)
    safe = torch.where(in_front, c22, torch.ones_like(c22))
    centre = dual[:, :2, 2] / safe[:, None]
    W = centre[:, :, None] * centre[:, None, :] - dual[:, :2, :2] / safe[:, None, None]
    W = 1.01 * W + 0.0101 * torch.eye(2, dtype=f64, device=m.device)
    det = (W[:, 0, 0] * W[:, 1, 1] - W[:, 0, 1] ** 2).clamp_min(1e-300)
    shape = torch.stack([W[:, 1, 1], -W[:, 0, 1], W[:, 0, 0]], 1) / det[:, None]
    half = torch.diagonal(W, dim1=1, dim2=2).clamp_min(0.0).sqrt()
    whole_lo = torch.tensor([-1.0, -1.0], dtype=f64, device=m.device)
    whole_hi = torch.tensor([width + 1.0, height + 1.0], dtype=f64, device=m.device)
    front = in_front[:, None]
    lo = torch.where(front, centre - half, whole_lo)
    hi = torch.where(front, centre + half, whole_hi)
    return lo, hi, torch.where(front, centre, 0.0), torch.where(front, shape, 0.0)


def _tile_ranges(lo: torch.Tensor, hi: torch.Tensor, tile: int, n_tx: int, n_ty: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inclusive tile index rectangles (x0, x1, y0, y1), each (N,) int64, clipped to the grid."""
    t0 = torch.floor(lo / tile).clamp(-1, max(n_tx, n_ty)).long()
    t1 = torch.floor(hi / tile).clamp(-1, max(n_tx, n_ty)).long()
    return (t0[:, 0].clamp(0, n_tx - 1), t1[:, 0].clamp(0, n_tx - 1),
            t0[:, 1].clamp(0, n_ty - 1), t1[:, 1].clamp(0, n_ty - 1))


def _tile_counts(x0: torch.Tensor, x1: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor,
                 n_tx: int, n_ty: int) -> torch.Tensor:
    """(n_ty * n_tx,) number of rectangles covering each tile (2-D difference array + cumsum)."""
    diff = torch.zeros((n_ty + 1) * (n_tx + 1), dtype=torch.int64, device=x0.device)
    w = n_tx + 1
    ones = torch.ones_like(x0)
    diff.index_add_(0, y0 * w + x0, ones)
    diff.index_add_(0, y0 * w + x1 + 1, -ones)
    diff.index_add_(0, (y1 + 1) * w + x0, -ones)
    diff.index_add_(0, (y1 + 1) * w + x1 + 1, ones)
    grid = diff.reshape(n_ty + 1, n_tx + 1).cumsum(0).cumsum(1)
    return grid[:n_ty, :n_tx].reshape(-1)


def _choose_tile(lo: torch.Tensor, hi: torch.Tensor, qu: torch.Tensor, qv: torch.Tensor, width: int,
                 height: int, max_entries: int) -> int:
    """Tile size in pixels (a power of 2) minimising pairs + entries for this view.

    pairs = sum over queries of the number of Gaussians binned to the query's tile; entries =
    number of (Gaussian, tile) records. Sizes whose entries exceed ``max_entries`` are
    skipped unless none fits.
    """
    best, best_cost = None, None
    tile = 1
    while True:
        n_tx, n_ty = -(-width // tile), -(-height // tile)
        x0, x1, y0, y1 = _tile_ranges(lo, hi, tile, n_tx, n_ty)
        entries = int(((x1 - x0 + 1) * (y1 - y0 + 1)).sum())
        if entries <= max_entries or tile >= max(width, height):
            counts = _tile_counts(x0, x1, y0, y1, n_tx, n_ty)
            qt = (qv / tile).long().clamp(0, n_ty - 1) * n_tx + (qu / tile).long().clamp(0, n_tx - 1)
            pairs = int(counts[qt].sum())
            cost = pairs + 4 * entries
            if best_cost is None or cost < best_cost:
                best, best_cost = tile, cost
        if tile >= max(width, height):
            return best
        tile *= 2


def _gaussian_table(gaussians: GaussianSet, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World-to-scaled-local maps M = S^-1 R^T (N, 3, 3), means (N, 3), opacities (N,)."""
    R = gaussians.rotations().detach().to(dtype)
    inv_s = 1.0 / gaussians.scales().detach().to(dtype)
    M = R.transpose(1, 2) * inv_s[:, :, None]
    return M, gaussians.means.detach().to(dtype), gaussians.opacities().detach().to(dtype)


def _pair_log_transmittance(cols: list[torch.Tensor], d: list[torch.Tensor]) -> torch.Tensor:
    """log(1 - alpha) for a batch of P pairs (0 where the pair does not contribute).

    Args:
        cols: 13 (P,) per-pair Gaussian columns [a (3) = M (c - mu), M (9, row-major), opacity],
            with M = S^-1 R^T the world -> scaled local map.
        d: 3 (P,) columns of the ray vectors x - c (world units), so that x is at t = 1.

    Returns:
        (P,) log(1 - alpha) <= 0. The line's closest approach is ``q_min = |a + t* b|^2``
        (no cancellation) and ``q(t_e) = q_min + |b|^2 (t_e - t*)^2``. In-place arithmetic:
        the pair batches are large.
    """
    a0, a1, a2 = cols[0], cols[1], cols[2]
    m = cols[3:12]
    d0, d1, d2 = d[0], d[1], d[2]
    b = []
    for r in range(3):
        br = m[3 * r] * d0
        br.addcmul_(m[3 * r + 1], d1).addcmul_(m[3 * r + 2], d2)
        b.append(br)
    b0, b1, b2 = b
    bb = b0 * b0
    bb.addcmul_(b1, b1).addcmul_(b2, b2)
    t_star = a0 * b0
    t_star.addcmul_(a1, b1).addcmul_(a2, b2).div_(bb).neg_()
    q_min = torch.addcmul(a0, t_star, b0).square_()
    q_min.add_(torch.addcmul(a1, t_star, b1).square_()).add_(torch.addcmul(a2, t_star, b2).square_())
    q_e = t_star.clamp(0.0, 1.0).sub_(t_star).square_().mul_(bb).add_(q_min)
    alpha = q_e.mul_(-0.5).exp_().mul_(cols[12]).clamp_max_(ALPHA_MAX)
    keep = (q_min <= SIGMA_CUT ** 2) & (alpha >= ALPHA_MIN)               # False for NaN too
    return alpha.neg_().log1p_().masked_fill_(~keep, 0.0)


def ellipse_meets_boxes(centre: torch.Tensor, shape: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
                        ) -> torch.Tensor:
    """Whether ellipses ``(p - c)^T S (p - c) <= 1`` meet axis-aligned boxes, exactly.

    The convex quadratic's minimum over a box is 0 when the centre is inside, otherwise it lies
    on one of the 4 edges, where it is a clamped 1-D quadratic minimum.

    Args:
        centre: (B, 2); shape: (B, 3) ``[S00, S01, S11]`` (all zero: always meets);
        lo, hi: (B, 2) box corners.

    Returns:
        (B,) bool.
    """
    cu, cv = centre[:, 0], centre[:, 1]
    s00, s01, s11 = shape.unbind(1)
    inside = (cu >= lo[:, 0]) & (cu <= hi[:, 0]) & (cv >= lo[:, 1]) & (cv <= hi[:, 1])
    best = torch.where(inside, 0.0, float("inf")).to(centre.dtype)
    for fixed_u in (True, False):
        # edges u = const (v varies) or v = const (u varies)
        a_fix, b_fix = (s00, s11) if fixed_u else (s11, s00)
        c_fix, c_var = (cu, cv) if fixed_u else (cv, cu)
        lo_var, hi_var = (lo[:, 1], hi[:, 1]) if fixed_u else (lo[:, 0], hi[:, 0])
        for side in (lo, hi):
            df = (side[:, 0] if fixed_u else side[:, 1]) - c_fix
            dv = torch.where(b_fix > 0, -s01 * df / torch.where(b_fix > 0, b_fix, 1.0), 0.0)
            dv = torch.minimum(torch.maximum(dv, lo_var - c_var), hi_var - c_var)
            best = torch.minimum(best, a_fix * df * df + 2.0 * s01 * df * dv + b_fix * dv * dv)
    return best <= 1.0


def _bin_gaussians(g_lo: torch.Tensor, g_hi: torch.Tensor, centre: torch.Tensor, shape: torch.Tensor,
                   tile: int, n_tx: int, n_ty: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-tile Gaussian lists: every tile of a Gaussian's bounding box that its silhouette meets.

    Args:
        g_lo, g_hi: (G, 2) bounding boxes; centre (G, 2), shape (G, 3): silhouette ellipses
            (see :func:`_screen_footprints`); tile: tile size in pixels; n_tx, n_ty: grid size.

    Returns:
        tile_gauss (E,) int32 Gaussian indices sorted by tile, tile_start (T,) int64 and
        tile_count (T,) int64 for the T = n_tx * n_ty tiles (row-major).
    """
    dev = g_lo.device
    x0, x1, y0, y1 = _tile_ranges(g_lo, g_hi, tile, n_tx, n_ty)
    w = x1 - x0 + 1
    per_g = w * (y1 - y0 + 1)
    n_entries = int(per_g.sum())
    gid = torch.repeat_interleave(torch.arange(g_lo.shape[0], device=dev), per_g)
    k = torch.arange(n_entries, device=dev) - (torch.cumsum(per_g, 0) - per_g)[gid]
    wg = w[gid]
    tx, ty = x0[gid] + k % wg, y0[gid] + k // wg
    corner = torch.stack([tx, ty], 1).to(centre.dtype) * tile
    meets = ellipse_meets_boxes(centre[gid], shape[gid], corner, corner + tile)
    gid, tile_of = gid[meets], (ty * n_tx + tx)[meets]
    order = torch.argsort(tile_of, stable=True)
    tile_gauss = gid[order].to(torch.int32)
    tile_count = torch.bincount(tile_of, minlength=n_tx * n_ty)
    return tile_gauss, torch.cumsum(tile_count, 0) - tile_count, tile_count


def _chunk_edges(cum: torch.Tensor, chunk: int) -> list[int]:
    """Query index boundaries [0, ..., Q] so that each slice holds about ``chunk`` pairs.

    ``cum`` (Q,) is the inclusive cumulative pair count; a single query with more pairs than
    ``chunk`` gets a slice of its own.
    """
    n_q, total = cum.shape[0], int(cum[-1])
    if total <= chunk:
        return [0, n_q]
    targets = torch.arange(chunk, total, chunk, device=cum.device)
    bounds = torch.unique(torch.searchsorted(cum, targets, right=True).clamp(1, n_q))
    return [0] + [b for b in bounds.tolist() if b < n_q] + [n_q]


def _view_log_transmittance(table: torch.Tensor, centre: torch.Tensor, shape: torch.Tensor,
                            g_lo: torch.Tensor, g_hi: torch.Tensor, d: torch.Tensor, qu: torch.Tensor, qv: torch.Tensor,
                            width: int, height: int, chunk: int, max_entries: int) -> torch.Tensor:
    """Sum of log(1 - alpha) per query for one view.

    Candidate pairs come from the query's tile list; a 2-D test against the Gaussian's
    (slightly widened) silhouette ellipse drops most of them before the exact 3-D evaluation.

    Args:
        table: (13, G) columns of the Gaussians that may contribute in this view (see
            :func:`_pair_log_transmittance`).
        centre: (G, 2), shape: (G, 3) float64 silhouette ellipses (see :func:`_screen_footprints`).
        g_lo, g_hi: (G, 2) their screen bounding boxes (pixels).
        d: (Q, 3) ray vectors of the voting queries; qu, qv: (Q,) their image coordinates.

    Returns:
        (Q,) S = sum_i log(1 - alpha_i) <= 0.
    """
    dev = d.device
    n_q = d.shape[0]
    out = torch.zeros(n_q, dtype=d.dtype, device=dev)
    if n_q == 0 or table.shape[1] == 0:
        return out
    tile = _choose_tile(g_lo, g_hi, qu, qv, width, height, max_entries)
    n_tx, n_ty = -(-width // tile), -(-height // tile)
    tile_gauss, tile_start, tile_count = _bin_gaussians(g_lo, g_hi, centre, shape, tile, n_tx, n_ty)
    q_tile = (qv / tile).long().clamp(0, n_ty - 1) * n_tx + (qu / tile).long().clamp(0, n_tx - 1)
    # visit queries tile by tile so that consecutive pairs read nearby table entries
    q_order = torch.argsort(q_tile)
    n_pairs = tile_count[q_tile[q_order]]                                   # (Q,) in visiting order
    cum = torch.cumsum(n_pairs, 0)
    if int(cum[-1]) == 0:
        return out
    # per query: where its list starts in tile_gauss, minus where its pairs start in the batch
    list_shift = tile_start[q_tile[q_order]] - (cum - n_pairs)
    d_t = d[q_order].T.contiguous()                                         # (3, Q)
    qu_s, qv_s = qu[q_order], qv[q_order]
    conic = torch.cat([centre, shape], 1).to(d.dtype)[tile_gauss.long()].T  # per tile-list entry
    cu, cv, s00, s01, s11 = (row.contiguous() for row in conic)
    sums = torch.zeros(n_q, dtype=d.dtype, device=dev)
    edges = _chunk_edges(cum, chunk)
    for s, e in zip(edges[:-1], edges[1:]):
        first = int(cum[s - 1]) if s > 0 else 0
        p = int(cum[e - 1]) - first
        if p == 0:
            continue
        local = torch.repeat_interleave(torch.arange(e - s, device=dev, dtype=torch.int32), n_pairs[s:e])
        qi = local + s
        entry = torch.arange(first, first + p, device=dev) + list_shift.index_select(0, qi)
        du = qu_s.index_select(0, qi).sub_(cu.index_select(0, entry))
        dv = qv_s.index_select(0, qi).sub_(cv.index_select(0, entry))
        off = s01.index_select(0, entry)
        quad = s00.index_select(0, entry).mul_(du).addcmul_(off, dv).mul_(du)
        quad.add_(s11.index_select(0, entry).mul_(dv).addcmul_(off, du).mul_(dv))
        hit = torch.nonzero(quad <= 1.0).squeeze(1)
        if hit.numel() == 0:
            continue
        local, qi = local.index_select(0, hit), qi.index_select(0, hit)
        g = tile_gauss.index_select(0, entry.index_select(0, hit))
        cols = [row.index_select(0, g) for row in table]
        rays = [row.index_select(0, qi) for row in d_t]
        sums[s:e].index_add_(0, local, _pair_log_transmittance(cols, rays))
    out[q_order] = sums
    return out


@torch.no_grad()
def opacity_to_sdf(gaussians: GaussianSet, K: torch.Tensor, cam_to_world: torch.Tensor, width: int,
                   height: int, points: torch.Tensor, *, shift: float = 0.15, clamp: float = 20.0,
                   chunk: int = 1 << 20, progress: Callable[[float], None] | None = None,
                   max_entries: int = 1 << 23) -> torch.Tensor:
    """GVKF signed distance of world points from the Gaussians' opacity seen by training views.

    Args:
        gaussians: N Gaussians (any device; the computation runs on ``points.device``).
        K: (V, 3, 3) intrinsics in pixels; cam_to_world: (V, 4, 4) OpenCV camera-to-world.
        width, height: image size in pixels (the same for every view).
        points: (Q, 3) world query points (float32 or float64).
        shift: logistic shift u in ``D = ln(1/O - 1) - u``.
        clamp: D is clipped to ``[-clamp, clamp]``; ``+clamp`` where no view sees the point.
        chunk: candidate (query, Gaussian) pairs per batch (memory about 100 bytes per pair).
        progress: called with the fraction of views done.
        max_entries: cap on (Gaussian, tile) records per view when choosing the tile size.

    Returns:
        (Q,) D in logit units, dtype of ``points``: positive outside, negative inside.
        Identical (up to rounding) to :func:`opacity_to_sdf_reference`.
    """
    _check_inputs(gaussians, K, cam_to_world, points)
    dev, dtype = points.device, points.dtype
    M, mu, opac = (t.to(dev) for t in _gaussian_table(gaussians, dtype))
    cov = gaussians.covariances().detach().to(device=dev, dtype=torch.float64)
    live = opac >= ALPHA_MIN                                                # others never contribute
    M, mu, opac, cov = M[live], mu[live], opac[live], cov[live]
    q_total = points.shape[0]
    best = torch.full((q_total,), -float("inf"), dtype=dtype, device=dev)
    voted = torch.zeros(q_total, dtype=torch.bool, device=dev)
    n_views = K.shape[0]
    for view in range(n_views):
        Kv = K[view].to(device=dev, dtype=dtype)
        c2w = cam_to_world[view].to(device=dev, dtype=dtype)
        qu, qv, votes = _project_queries(Kv, c2w, width, height, points)
        voted |= votes
        # queries already at +clamp cannot change: the max is saturated
        active = torch.nonzero(votes & (best < clamp)).squeeze(1)
        if active.numel() > 0:
            Rw, tw, c = _world_to_cam(c2w.to(torch.float64))
            mu_cam = mu.to(torch.float64) @ Rw.T + tw
            front = mu_cam[:, 2] > 0
            cov_cam = Rw @ cov[front] @ Rw.T
            g_lo, g_hi, centre, shape = _screen_footprints(mu_cam[front], cov_cam, Kv, width, height)
            on_screen = (g_hi[:, 0] >= 0) & (g_lo[:, 0] < width) & (g_hi[:, 1] >= 0) & (g_lo[:, 1] < height)
            idx = torch.nonzero(front).squeeze(1)[on_screen]
            c_t = c.to(dtype)
            a = torch.einsum("nij,nj->ni", M[idx], c_t - mu[idx])
            table = torch.cat([a, M[idx].reshape(-1, 9), opac[idx, None]], 1).T.contiguous()
            log_t = _view_log_transmittance(table, centre[on_screen], shape[on_screen], g_lo[on_screen],
                                            g_hi[on_screen], points[active] - c_t, qu[active], qv[active],
                                            width, height, chunk, max_entries)
            best[active] = torch.maximum(best[active], _logit_distance(log_t, shift, clamp))
        if progress is not None:
            progress((view + 1) / n_views)
    return torch.where(voted, best, torch.full_like(best, clamp))


__all__ = ["ALPHA_MAX", "ALPHA_MIN", "SIGMA_CUT", "ellipse_meets_boxes", "opacity_to_sdf", "opacity_to_sdf_reference"]
