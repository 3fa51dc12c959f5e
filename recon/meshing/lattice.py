"""Integer lattice helpers: packing 3D integer coordinates into sortable int64 keys."""

from __future__ import annotations

import numpy as np

from recon.errors import ReconError

#: Bits per axis in a packed key; coordinates (after shifting by the set's minimum) must
#: fit in ``[0, 2**BITS)``.
BITS = 21
_MASK = (1 << BITS) - 1


class LatticeKeys:
    """Packs (K, 3) int64 lattice coordinates into (K,) int64 keys, ordered like (x, y, z).

    ``key = (x - lo_x) << 42 | (y - lo_y) << 21 | (z - lo_z)``. Keys sort lexicographically
    by (x, y, z), so ``np.unique`` / ``np.searchsorted`` on keys are set operations on
    points.

    Args:
        lo: (3,) int64 smallest coordinate that will be packed.
        hi: (3,) int64 largest coordinate that will be packed.

    Raises:
        ReconError: when the span exceeds ``2**21`` lattice steps on some axis.
    """

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.lo = np.asarray(lo, dtype=np.int64).reshape(3)
        span = np.asarray(hi, dtype=np.int64).reshape(3) - self.lo
        if np.any(span > _MASK):
            raise ReconError(
                f"meshing lattice too large ({int(span.max()) + 1} cells on one axis, at most {_MASK + 1})",
                fix="mesh with a larger cell size, fewer refinement levels, or split the scene into tiles",
            )

    def pack(self, coords: np.ndarray) -> np.ndarray:
        """(..., 3) int64 coordinates -> (...,) int64 keys."""
        c = np.asarray(coords, dtype=np.int64) - self.lo
        return (c[..., 0] << (2 * BITS)) | (c[..., 1] << BITS) | c[..., 2]

    def unpack(self, keys: np.ndarray) -> np.ndarray:
        """(...,) int64 keys -> (..., 3) int64 coordinates."""
        k = np.asarray(keys, dtype=np.int64)
        out = np.stack([(k >> (2 * BITS)) & _MASK, (k >> BITS) & _MASK, k & _MASK], axis=-1)
        return out + self.lo


def lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``keys`` in ``sorted_keys``.

    Args:
        sorted_keys: (K,) int64 sorted, unique.
        keys: (...,) int64 queries.

    Returns:
        ``(index, found)``: (...,) int64 positions (valid only where found) and (...,) bool.
    """
    if sorted_keys.size == 0:
        z = np.zeros(np.shape(keys), dtype=np.int64)
        return z, np.zeros(np.shape(keys), dtype=bool)
    idx = np.searchsorted(sorted_keys, keys)
    idx = np.minimum(idx, sorted_keys.size - 1)
    return idx, sorted_keys[idx] == keys
