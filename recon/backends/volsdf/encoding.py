"""Input encodings of the geometry network: NeRF frequencies and a multiresolution grid.

Positions are in the normalised frame (the scene inside the unit sphere), so the grid covers the
cube [-1, 1]^3. Both encodings are pure torch and twice differentiable with respect to the input
(the eikonal loss and the normal fed to the colour network need d(grad d)/d(params)).

The grid's fast path for densely stored levels is ``torch.nn.functional.grid_sample`` (a fused
trilinear kernel); :func:`trilinear_reference` is the plain gather implementation it is tested
against, and the hashed levels use it directly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Primes of instant-NGP's spatial hash (the first is 1 so coherent rows stay coherent).
_PRIMES = (1, 2654435761, 805459861)


def frequency_encoding(x: torch.Tensor, levels: int, include_input: bool = True) -> torch.Tensor:
    """NeRF positional encoding [x, sin(2^k x), cos(2^k x)] for k = 0..levels-1.

    Args:
        x: (N, D) inputs.
        levels: number of octaves L.
        include_input: prepend x itself.

    Returns:
        (N, D * (2 L + include_input)) features, ordered [x, sin(x), cos(x), sin(2x), cos(2x), ...].
    """
    parts = [x] if include_input else []
    for k in range(levels):
        xk = x * (2.0 ** k)
        parts += [torch.sin(xk), torch.cos(xk)]
    return torch.cat(parts, -1) if parts else x[:, :0]


def frequency_dim(d_in: int, levels: int, include_input: bool = True) -> int:
    """Width of :func:`frequency_encoding` for ``d_in`` inputs."""
    return d_in * (2 * levels + int(include_input))


def _corner_offsets(device: torch.device) -> torch.Tensor:
    """(8, 3) int64 offsets of a cell's corners, bit b of the corner index is axis b."""
    c = torch.arange(8, device=device)
    return torch.stack([(c >> 0) & 1, (c >> 1) & 1, (c >> 2) & 1], -1)


def hash_index(ijk: torch.Tensor, table_size: int) -> torch.Tensor:
    """Spatial hash of integer vertex coordinates (instant-NGP: xor of coordinate * prime).

    Args:
        ijk: (..., 3) int64 vertex coordinates (>= 0).
        table_size: number of table entries T.

    Returns:
        (...,) int64 indices in [0, T).
    """
    h = ijk[..., 0] * _PRIMES[0]
    h = torch.bitwise_xor(h, ijk[..., 1] * _PRIMES[1])
    h = torch.bitwise_xor(h, ijk[..., 2] * _PRIMES[2])
    return torch.remainder(h, table_size)


def dense_index(ijk: torch.Tensor, n: int) -> torch.Tensor:
    """Row-major index i + n * (j + n * k) of vertex (i, j, k) in an n^3 lattice ((..., 3) -> (...))."""
    return ijk[..., 0] + n * (ijk[..., 1] + n * ijk[..., 2])


def trilinear_reference(table: torch.Tensor, x: torch.Tensor, res: int, hashed: bool) -> torch.Tensor:
    """Trilinear interpolation of vertex features by explicit corner gathers (the reference path).

    Args:
        table: (T, F) vertex features; vertex (i, j, k) of the (res + 1)^3 lattice over [-1, 1]^3 is row
            ``i + (res + 1) * (j + (res + 1) * k)`` when dense, ``hash_index((i, j, k), T)`` when hashed.
        x: (N, 3) positions in [-1, 1]^3 (clamped to it).
        res: cells per axis.
        hashed: whether the table is indexed by the spatial hash.

    Returns:
        (N, F) interpolated features; differentiable (twice) in ``x`` and in ``table``.
    """
    u = (x.clamp(-1.0, 1.0) + 1.0) * (0.5 * res)  # vertex units in [0, res]
    base = torch.floor(u.detach()).clamp(0, res - 1)
    frac = u - base  # (N, 3), carries the gradient in x
    base = base.long()
    off = _corner_offsets(x.device)  # (8, 3)
    ijk = base[:, None, :] + off[None]  # (N, 8, 3)
    idx = hash_index(ijk, table.shape[0]) if hashed else dense_index(ijk, res + 1)
    feats = table[idx]  # (N, 8, F)
    offf = off.to(x.dtype)
    w = (offf[None] * frac[:, None, :] + (1 - offf[None]) * (1 - frac[:, None, :])).prod(-1)  # (N, 8)
    return (w[..., None] * feats).sum(1)


class GridEncoding(nn.Module):
    """Multiresolution feature grid over [-1, 1]^3 (instant-NGP layout, dense levels where they fit).

    Level l has ``resolutions[l]`` cells per axis; a level with at most ``2**log2_size`` vertices is a
    dense (F, n, n, n) volume read with ``grid_sample``; a finer one is a hashed (2**log2_size, F) table.

    Attributes:
        resolutions: cells per axis of each level.
        n_features: features per level F.
        level_mask: (L,) float buffer; level l contributes only where it is 1 (coarse-to-fine schedule).
    """

    def __init__(self, resolutions: list[int], n_features: int = 2, log2_size: int = 21, init_scale: float = 1e-4,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.resolutions = [int(r) for r in resolutions]
        self.n_features = int(n_features)
        self.hashed = [(r + 1) ** 3 > 2 ** log2_size for r in self.resolutions]
        tables = []
        for r, h in zip(self.resolutions, self.hashed):
            shape = (2 ** log2_size, n_features) if h else (1, n_features, r + 1, r + 1, r + 1)
            t = (torch.rand(shape, generator=generator) * 2 - 1) * init_scale
            tables.append(nn.Parameter(t))
        self.tables = nn.ParameterList(tables)
        self.register_buffer("level_mask", torch.ones(len(self.resolutions)))

    @property
    def out_dim(self) -> int:
        return len(self.resolutions) * self.n_features

    def set_active_levels(self, n: int) -> None:
        """Use only the ``n`` coarsest levels (the others output zeros and get no gradient)."""
        n = max(1, min(int(n), len(self.resolutions)))
        self.level_mask.zero_()
        self.level_mask[:n] = 1.0

    def active_levels(self) -> int:
        return int(self.level_mask.sum().item())

    def level_table(self, level: int) -> torch.Tensor:
        """(T, F) view of a level's table in the reference layout (see :func:`trilinear_reference`)."""
        t = self.tables[level]
        if self.hashed[level]:
            return t
        return t[0].permute(1, 2, 3, 0).reshape(-1, self.n_features)  # (z, y, x, F) -> row i + n(j + n k)

    def forward(self, x: torch.Tensor, reference: bool = False) -> torch.Tensor:
        """(N, 3) positions in [-1, 1]^3 -> (N, L * F) features; ``reference`` uses gathers for every level."""
        outs = []
        n_active = self.active_levels()
        for lvl, (r, h) in enumerate(zip(self.resolutions, self.hashed)):
            if lvl >= n_active:
                outs.append(x.new_zeros(x.shape[0], self.n_features))
                continue
            if h or reference:
                outs.append(trilinear_reference(self.level_table(lvl), x, r, h))
            else:
                g = x.clamp(-1.0, 1.0).view(1, -1, 1, 1, 3)
                y = F.grid_sample(self.tables[lvl], g, mode="bilinear", padding_mode="border", align_corners=True)
                outs.append(y.view(self.n_features, -1).t())
        return torch.cat(outs, -1)

