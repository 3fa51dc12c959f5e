"""Chunked (tiled) reconstruction and the FusedField that blends the tiles."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.field import KernelField
from recon.backends.kernel.field_meshing import mesh_field
from recon.backends.kernel.frontend import fit_checked
from recon.device import torch_threads
from recon.progress import NULL_PROGRESS, Progress
from recon.types import Mesh


def tile_boxes(points: np.ndarray, chunk_size: float, align: float) -> np.ndarray:
    """Core boxes of the cubic tiles that hold points.

    Args:
        points: (N, 3) positions, world units (local frame).
        chunk_size: tile edge, world units (rounded up to a multiple of ``align``).
        align: tile corners are multiples of this (the coarsest voxel) so lattices agree.

    Returns:
        (T, 2, 3) float64 [lo, hi] of every non-empty tile.
    """
    edge = max(align, np.ceil(chunk_size / align) * align)
    ijk = np.floor(points / edge).astype(np.int64)
    tiles = np.unique(ijk, axis=0)
    lo = tiles * edge
    return np.stack([lo, lo + edge], 1).astype(np.float64)


def blend_weights(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, margin: float) -> torch.Tensor:
    """Partition-of-unity tile weights: product of linear ramps 0 at lo-m .. 1 at lo+m (and mirrored).

    Args:
        x: (K, 3) positions; lo, hi: (3,) tile core box; margin: half-width m of the ramp.

    Returns:
        (K,) weights in [0, 1]; adjacent tiles' weights sum to one in their overlap.
    """
    a = (x - (lo - margin)) / (2 * margin)
    b = ((hi + margin) - x) / (2 * margin)
    return torch.minimum(a, b).clamp(0, 1).prod(1)


class FusedField:
    """Blend of per-tile :class:`KernelField` objects (Field protocol, negative inside).

    Attributes:
        fields: the tile fields (each with its own lattice-aligned local frame).
        boxes: (T, 2, 3) tile core boxes in the fused local frame (world units).
        margin: blending half-width m, world units.
        offset: (3,) float64 world position of the fused local frame's origin.
        voxel_size: shared finest voxel edge h.
        points: (N, 3) float32 input points in the fused local frame (for trimming).
    """

    def __init__(self, fields: list[KernelField], boxes: np.ndarray, margin: float, offset: np.ndarray,
                 points: np.ndarray, *, mise_iter: int = 0, upsample: int = 1, trim_distance: float = 2.0):
        self.fields = fields
        self.boxes = np.asarray(boxes, dtype=np.float64)
        self.margin = float(margin)
        self.offset = np.asarray(offset, dtype=np.float64)
        self.voxel_size = fields[0].voxel_size if fields else 1.0
        self.points = points
        self.mise_iter, self.upsample, self.trim_distance = mise_iter, upsample, trim_distance

    @property
    def solver_info(self) -> list:
        return [f.solver_info for f in self.fields]

    def evaluate(self, xyz: Any, grad: bool = False) -> Any:
        """Weighted mean of the tiles' values (and gradients) at world positions (see Field)."""
        was_np = not isinstance(xyz, torch.Tensor)
        x64 = torch.as_tensor(np.asarray(xyz, dtype=np.float64) if was_np else xyz, dtype=torch.float64)
        dev_in = x64.device
        x64 = x64.reshape(-1, 3).cpu()
        loc = x64 - torch.as_tensor(self.offset)
        num = torch.zeros(len(loc), dtype=torch.float64)
        den = torch.zeros(len(loc), dtype=torch.float64)
        gnum = torch.zeros(len(loc), 3, dtype=torch.float64) if grad else None
        for f, (lo, hi) in zip(self.fields, self.boxes):
            lo_t, hi_t = torch.as_tensor(lo), torch.as_tensor(hi)
            inside = ((loc > lo_t - self.margin) & (loc < hi_t + self.margin)).all(1)
            idx = torch.nonzero(inside).squeeze(1)
            if len(idx) == 0:
                continue
            w = blend_weights(loc[idx], lo_t, hi_t, self.margin)
            out = f.evaluate(x64[idx].numpy(), grad=grad)
            if grad:
                num[idx] += w * torch.from_numpy(out[0])
                gnum[idx] += w[:, None] * torch.from_numpy(out[1])
            else:
                num[idx] += w * torch.from_numpy(out)
            den[idx] += w
        den = den.clamp_min(1e-12)
        val = num / den
        g = gnum / den[:, None] if grad else None
        if was_np:
            return (val.numpy(), g.numpy()) if grad else val.numpy()
        val = val.to(torch.float32).to(dev_in)
        return (val, g.to(torch.float32).to(dev_in)) if grad else val

    def cells(self) -> np.ndarray:
        """(M, 3) int64 finest cells (fused local frame) of all tiles, each within its blend region."""
        out = []
        h = self.voxel_size
        for f, (lo, hi) in zip(self.fields, self.boxes):
            shift = np.rint((f.offset - self.offset) / h).astype(np.int64)
            c = f.cells() + shift
            centre = (c + 0.5) * h
            keep = ((centre > lo - self.margin) & (centre < hi + self.margin)).all(1)
            out.append(c[keep])
        return np.unique(np.concatenate(out), axis=0) if out else np.zeros((0, 3), np.int64)

    def bounds(self) -> np.ndarray:
        """(2, 3) world box of the tiles' blend regions."""
        lo = self.boxes[:, 0].min(0) - self.margin
        hi = self.boxes[:, 1].max(0) + self.margin
        return np.stack([lo, hi]) + self.offset

    def extract_mesh(self, mise_iter: int | None = None, upsample: int | None = None, trim: bool = True,
                     level: float = 0.0, trim_distance: float | None = None) -> Mesh:
        """Mesh once over the union of the tiles' finest cells (see KernelField.extract_mesh)."""
        with torch_threads(getattr(self.fields[0], "threads", None) if self.fields else None):
            return mesh_field(self, self.cells(), mise_iter=self.mise_iter if mise_iter is None else mise_iter,
                              upsample=self.upsample if upsample is None else upsample, trim=trim, level=level,
                              trim_distance=self.trim_distance if trim_distance is None else trim_distance)


class ChunkProgress:
    """A :class:`recon.progress.Progress` for one chunk of ``n``: stages read "kernel: chunk i/n",
    the fraction counts finished chunks and the chunk's own stage becomes the info text, so a
    log gets one line per chunk."""

    def __init__(self, inner: Progress, i: int, n: int):
        self.inner, self.i, self.n = inner, i, n

    def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
        step = stage.removeprefix("kernel: ")
        self.inner.update(f"kernel: chunk {self.i}/{self.n}", (self.i - 1 + (fraction or 0.0)) / self.n,
                          f"{step} ({info})" if info else step)


def fit_chunked(points: np.ndarray, normals: np.ndarray, voxel_size: float, offset: np.ndarray,
                config: KernelConfig, device: torch.device, progress: Progress = NULL_PROGRESS) -> FusedField:
    """Solve every non-empty tile independently (:func:`recon.backends.kernel.frontend.fit_checked`)
    and fuse them.

    Args:
        points, normals: (N, 3) float64 / float32 in the fused local frame (world units).
        voxel_size: shared finest voxel edge h.
        offset: (3,) world position of the fused local frame.
        config: ``chunk_size`` (tile edge, world units), ``overlap`` (ratio), ``depth`` (tile corners
            align to the coarsest voxel 2**(depth-1) h), the meshing defaults and the solve options.
        device: where each tile is solved.
        progress: gets one "kernel: chunk i/N" stage per tile (N: tiles holding points).
    """
    align = voxel_size * 2 ** (config.depth - 1)
    boxes = tile_boxes(points, config.chunk_size, align)
    edge = boxes[0, 1, 0] - boxes[0, 0, 0]
    margin = max(config.overlap * edge, 4 * voxel_size)
    fields, kept = [], []
    for i, (lo, hi) in enumerate(boxes, 1):
        sel = np.nonzero(((points > lo - 2 * margin) & (points < hi + 2 * margin)).all(1))[0]
        if len(sel) < 10:
            continue
        centre = np.rint(0.5 * (lo + hi) / align) * align
        tile = torch.from_numpy((points[sel] - centre).astype(np.float32)).to(device)
        fields.append(fit_checked(tile, normals[sel], voxel_size, config, offset=offset + centre,
                                  progress=ChunkProgress(progress, i, len(boxes))))
        kept.append((lo, hi))
    return FusedField(fields, np.array(kept).reshape(-1, 2, 3), margin, offset, points.astype(np.float32),
                      mise_iter=config.mise_iter, upsample=config.upsample, trim_distance=config.trim_distance)


__all__ = ["ChunkProgress", "FusedField", "blend_weights", "fit_chunked", "tile_boxes"]
