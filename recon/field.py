"""The implicit-field protocol shared by every backend that produces one.

Sign convention: a field is a signed distance-like function, **negative inside,
positive outside**, zero on the surface; its gradient points outward. Values and
gradients are in world units of the frame the field was built in.

A field is evaluated in batches on any device: :meth:`Field.evaluate` accepts a
numpy array or a torch tensor of shape (N, 3) and returns the same kind.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Field(Protocol):
    """An implicit surface f: R^3 -> R (negative inside)."""

    def evaluate(self, xyz: Any, grad: bool = False) -> Any:
        """Evaluate the field.

        Args:
            xyz: (N, 3) positions, numpy array or torch tensor.
            grad: also return gradients.

        Returns:
            values (N,) or, with ``grad=True``, a tuple (values (N,), gradients (N, 3)),
            of the same array kind as ``xyz``.
        """
        ...

    def bounds(self) -> np.ndarray:
        """(2, 3) float64 box outside which the field is undefined (or irrelevant)."""
        ...

    def extract_mesh(self, **kwargs: Any):  # -> recon.types.Mesh
        """Mesh the zero level set; keyword arguments are backend specific."""
        ...
