"""Saved implicit fields in the viewer: a mesh re-extracted at a chosen iso-level and trim distance.

``recon reconstruct ... --save-field F.npz`` writes a kernel field; ``recon view F.npz``
shows its zero level set and two sliders, iso-level (world units) and trimming distance
(finest voxels, 0 = no trimming), that re-mesh it. Picking a point shows the field value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recon.types import Mesh

FIELD_FORMAT_KEY = "format"


def is_saved_field(path: str | Path) -> bool:
    """Whether ``path`` is an .npz written by a field's ``save`` (cheap: reads one small entry)."""
    p = Path(path)
    if p.suffix.lower() != ".npz" or not p.is_file():
        return False
    try:
        with np.load(p, allow_pickle=False) as z:
            return FIELD_FORMAT_KEY in z.files and str(z[FIELD_FORMAT_KEY]).startswith("recon.kernel-field")
    except (OSError, ValueError):
        return False


def load_saved_field(path: str | Path) -> "FieldSource":
    """A :class:`FieldSource` for a saved kernel field (one-line InputError when unreadable)."""
    from recon.backends.kernel.field import KernelField

    return FieldSource(KernelField.load(path), source=str(path))


@dataclass
class FieldSource:
    """An implicit field and the meshing settings the viewer currently shows.

    Attributes:
        field: a field with ``extract_mesh(level=, trim=, trim_distance=)``, ``evaluate`` and ``voxel_size``.
        level: iso-level in world units.
        trim_distance: trimming distance in finest voxels; 0 turns trimming off.
        source: file it came from, for labels.
    """

    field: Any
    level: float = 0.0
    trim_distance: float | None = None
    source: str | None = None
    _cache: dict[tuple[float, float], Mesh] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.trim_distance is None:
            self.trim_distance = float(getattr(self.field, "trim_distance", 2.0))

    @property
    def voxel_size(self) -> float:
        return float(getattr(self.field, "voxel_size", 1.0))

    def level_range(self) -> tuple[float, float]:
        """Slider range for the iso-level: +-1 finest voxel (world units); beyond it the level set
        leaves the band of voxels the field was solved on."""
        return -1.0 * self.voxel_size, 1.0 * self.voxel_size

    def mesh(self, level: float | None = None, trim_distance: float | None = None) -> Mesh:
        """The level set at ``level`` trimmed at ``trim_distance`` (defaults: the current ones); cached."""
        level = self.level if level is None else float(level)
        trim = self.trim_distance if trim_distance is None else float(trim_distance)
        key = (round(level, 12), round(trim, 6))
        if key not in self._cache:
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = self.field.extract_mesh(level=level, trim=trim > 0,
                                                       trim_distance=trim if trim > 0 else None)
        return self._cache[key]

    def value_at(self, xyz: np.ndarray) -> float:
        """The field value (world units, negative inside) at one world point."""
        return float(np.asarray(self.field.evaluate(np.asarray(xyz, np.float64).reshape(1, 3))).reshape(-1)[0])


__all__ = ["FieldSource", "is_saved_field", "load_saved_field"]
