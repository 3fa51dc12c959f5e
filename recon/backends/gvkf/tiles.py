"""Vectorised tile binning: which Gaussians touch which screen tiles, front to back.

The image is cut into ``tile_size`` x ``tile_size`` pixel tiles, ``ntx = ceil(W / ts)`` columns
and ``nty = ceil(H / ts)`` rows; tile id ``ty * ntx + tx``. Each Gaussian covers the rectangle of
tiles holding a pixel centre inside its screen box. Binning expands every (Gaussian, tile) pair
with ``repeat_interleave`` over the rectangles, sorts the pairs once by a single int64 key
``tile_id * N + depth_rank`` (so by tile, then front to back) and pads each tile's run into a
``[tiles, K]`` table. Only tiles touched by at least one Gaussian get a row; rows are ordered by
decreasing count so the first rows are the busiest (the compositor drops finished rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TileTable:
    """Per-tile front-to-back Gaussian lists.

    tile_ids (T,) int64 ids of the non-empty tiles, busiest first; counts (T,) int64 list
    lengths (after the optional cap); table (T, Kmax) int64 Gaussian indices front to back,
    padded with ``pad`` (= N, an index one past the last Gaussian); n_tiles_x, n_tiles_y the grid;
    n_pairs the number of (Gaussian, tile) pairs before capping.
    """

    tile_ids: torch.Tensor
    counts: torch.Tensor
    table: torch.Tensor
    pad: int
    n_tiles_x: int
    n_tiles_y: int
    n_pairs: int


def tile_rects(bbox: torch.Tensor, valid: torch.Tensor, width: int, height: int,
               tile_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive tile rectangles of pixel boxes.

    Args:
        bbox: (N, 4) (u_min, v_min, u_max, v_max) image coordinates (pixel centres at +0.5).
        valid: (N,) bool; invalid or empty rectangles get zero tiles.

    Returns:
        rect (N, 4) int64 (tx0, ty0, tx1, ty1) and n_tiles (N,) int64 tiles covered.
    """
    # Pixel column i is covered when i + 0.5 lies in [u_min, u_max].
    lo = torch.ceil(bbox[:, :2] - 0.5)
    hi = torch.floor(bbox[:, 2:] - 0.5)
    lim = torch.tensor([width - 1, height - 1], dtype=bbox.dtype, device=bbox.device)
    lo = torch.maximum(lo, torch.zeros_like(lo))
    hi = torch.minimum(hi, lim)
    ok = valid & (lo <= hi).all(-1)
    lo_t = torch.div(lo.clamp_min(0).long(), tile_size, rounding_mode="floor")
    hi_t = torch.div(hi.clamp_min(0).long(), tile_size, rounding_mode="floor")
    n = ((hi_t - lo_t + 1).clamp_min(0)).prod(-1)
    n = torch.where(ok, n, torch.zeros_like(n))
    return torch.cat([lo_t, hi_t], -1), n


def bin_gaussians(rect: torch.Tensor, n_tiles: torch.Tensor, depths: torch.Tensor, n_tiles_x: int,
                  n_tiles_y: int, max_per_tile: int | None = None) -> TileTable:
    """Sort (Gaussian, tile) pairs by (tile, depth) and pad them into a table.

    Args:
        rect: (N, 4) int64 tile rectangles from :func:`tile_rects`; n_tiles (N,) tiles each covers.
        depths: (N,) sort key (mean camera z), front = smallest; ties keep index order.
        max_per_tile: keep only the first (front-most) ``max_per_tile`` of each tile; None keeps all.

    Returns:
        :class:`TileTable`.
    """
    dev = rect.device
    N = rect.shape[0]
    order = torch.sort(depths.detach(), stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(N, device=dev)
    total = int(n_tiles.sum())
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return TileTable(empty, empty, torch.zeros(0, 0, dtype=torch.long, device=dev), N,
                         n_tiles_x, n_tiles_y, 0)
    gid = torch.repeat_interleave(torch.arange(N, device=dev), n_tiles)
    start = torch.cumsum(n_tiles, 0) - n_tiles
    local = torch.arange(total, device=dev) - start[gid]
    r = rect[gid]
    wr = r[:, 2] - r[:, 0] + 1
    tx = r[:, 0] + local % wr
    ty = r[:, 1] + torch.div(local, wr, rounding_mode="floor")
    tile = ty * n_tiles_x + tx
    key = tile * N + rank[gid]
    key, perm = torch.sort(key)
    gid = gid[perm]
    tile = torch.div(key, N, rounding_mode="floor")
    n_all = n_tiles_x * n_tiles_y
    counts_all = torch.bincount(tile, minlength=n_all)
    first = torch.cumsum(counts_all, 0) - counts_all
    pos = torch.arange(total, device=dev) - first[tile]
    if max_per_tile is not None:
        keep = pos < max_per_tile
        tile, gid, pos = tile[keep], gid[keep], pos[keep]
        counts_all = counts_all.clamp_max(max_per_tile)
    # Non-empty tiles, busiest first; row of each tile in the table.
    tile_ids = torch.nonzero(counts_all > 0).squeeze(1)
    counts = counts_all[tile_ids]
    srt = torch.sort(counts, descending=True, stable=True)
    counts, tile_ids = srt.values, tile_ids[srt.indices]
    row_of = torch.full((n_all,), -1, dtype=torch.long, device=dev)
    row_of[tile_ids] = torch.arange(tile_ids.shape[0], device=dev)
    kmax = int(counts[0])
    table = torch.full((tile_ids.shape[0], kmax), N, dtype=torch.long, device=dev)
    table[row_of[tile], pos] = gid
    return TileTable(tile_ids, counts, table, N, n_tiles_x, n_tiles_y, total)


__all__ = ["TileTable", "bin_gaussians", "tile_rects"]
