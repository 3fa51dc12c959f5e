"""Saving and loading tile fields (one .npz per tile), optionally cropped to a box.

The format is :meth:`recon.backends.kernel.KernelField.save` (no pickles), written without the
input points: a tile's points live in its shards.
"""

from __future__ import annotations

import os

import numpy as np

from recon.backends.kernel.field import KernelField
from recon.backends.kernel.svh import VoxelLevel


def save_field(path: str | os.PathLike, field) -> None:
    """Write a :class:`recon.backends.kernel.KernelField` atomically (temporary name + rename)."""
    field.save(path, include_points=False)


def crop_field(field, crop: np.ndarray):
    """Keep only voxels whose basis support (centre +- 1.5 voxels of their level) reaches a box.

    Args:
        field: a KernelField (CPU).
        crop: (2, 3) world box; values inside it are unchanged, memory is a fraction of the field.

    Returns:
        The same field object with its levels and coefficients filtered (keys stay sorted).
    """
    h = field.voxel_size
    lo = (np.asarray(crop[0], dtype=np.float64) - field.offset) / h
    hi = (np.asarray(crop[1], dtype=np.float64) - field.offset) / h
    levels, alphas = [], []
    for lv, a in zip(field.levels, field.alphas):
        s = float(2 ** lv.level)
        centre = (lv.coords.numpy() + 0.5) * s
        keep = ((centre + 2.0 * s >= lo) & (centre - 2.0 * s <= hi)).all(1)
        levels.append(VoxelLevel(lv.keys[keep], lv.coords[keep], lv.level))
        alphas.append(a[keep])
    field.levels, field.alphas = levels, alphas
    return field


def load_field(path: str | os.PathLike, crop: np.ndarray | None = None):
    """Read a field saved by :func:`save_field`, optionally cropped (see :func:`crop_field`).

    Returns:
        A :class:`recon.backends.kernel.KernelField` on the CPU, single-threaded, no input points.
    """
    field = KernelField.load(path)
    field.threads = 1
    return crop_field(field, crop) if crop is not None else field
