"""KernelBackend: the registry entry ("kernel") used by the pipeline."""

from __future__ import annotations

from recon.backends.kernel.config import KernelConfig
from recon.backends.kernel.reconstructor import KernelReconstructor
from recon.progress import NULL_PROGRESS, Progress
from recon.types import PointCloud


class KernelBackend:
    """Builds a kernel field from a (recentred, oriented) point cloud."""

    def __init__(self, config: KernelConfig | None = None):
        self.config = config or KernelConfig()

    def fit(self, cloud: PointCloud, *, device: str = "cpu", progress: Progress = NULL_PROGRESS):
        """Reconstruct ``cloud`` (local frame, world units); returns a KernelField or FusedField.

        ``device`` is used when the config says "auto" (:func:`recon.device.backend_device`).
        Normals are estimated when missing (oriented towards ``cloud.sensors`` when present).
        """
        return KernelReconstructor(self.config).reconstruct(cloud.points, cloud.normals, cloud.sensors,
                                                            progress=progress, device=device)
