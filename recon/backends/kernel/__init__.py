"""Kernel backend: training-free NKSR core (sparse voxel hierarchy, quadratic B-splines,
gradient fitting, PCG), with chunked mode and sparse meshing."""

from recon.backends.kernel.chunked import FusedField
from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.field import KernelField
from recon.backends.kernel.reconstructor import KernelReconstructor

__all__ = ["FusedField", "KernelConfig", "KernelField", "KernelReconstructor"]
