"""3D Gaussian primitives: the parameters GVKF trains and everything else reads.

A :class:`GaussianSet` holds N anisotropic Gaussians as raw (unconstrained) torch tensors so
an optimiser can update them directly; the constrained values come from the accessors:

- ``means`` (N, 3) world units;
- ``log_scales`` (N, 3): standard deviations along the local axes are ``exp(log_scales)``;
- ``quats`` (N, 4) rotation quaternions (w, x, y, z), not necessarily unit length;
- ``opacity_logits`` (N,): peak opacity ``sigmoid(opacity_logits)`` in (0, 1);
- ``colour_logits`` (N, 3): linear RGB ``sigmoid(colour_logits)`` in (0, 1).

The density of Gaussian i at x is ``o_i * exp(-0.5 (x - mu_i)^T Sigma_i^-1 (x - mu_i))`` with
``Sigma_i = R_i S_i^2 R_i^T``. Saved files are ``.npz`` with ``format = recon.gaussians.v1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

FORMAT = "recon.gaussians.v1"


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from (N, 4) quaternions (w, x, y, z), normalised first -> (N, 3, 3)."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (w, x, y, z) with w >= 0."""
    m = R.reshape(-1, 3, 3)
    t = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = torch.stack([
        torch.stack([1 + t, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2], m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1),
    ], 1)                                                     # (N, 4 candidates, 4)
    best = torch.stack([t, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1).argmax(-1)
    q = cands[torch.arange(m.shape[0]), best]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q).reshape(*R.shape[:-2], 4)


@dataclass
class GaussianSet:
    """N Gaussians as raw parameters (see the module docstring for units and meaning)."""

    means: torch.Tensor
    log_scales: torch.Tensor
    quats: torch.Tensor
    opacity_logits: torch.Tensor
    colour_logits: torch.Tensor

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def scales(self) -> torch.Tensor:
        """(N, 3) standard deviations along the local axes, world units."""
        return self.log_scales.exp()

    def rotations(self) -> torch.Tensor:
        """(N, 3, 3) local-to-world rotations (columns are the local axes)."""
        return quat_to_rotmat(self.quats)

    def opacities(self) -> torch.Tensor:
        """(N,) peak opacities in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    def colours(self) -> torch.Tensor:
        """(N, 3) linear RGB in (0, 1)."""
        return torch.sigmoid(self.colour_logits)

    def covariances(self) -> torch.Tensor:
        """(N, 3, 3) world covariances ``R S^2 R^T``."""
        R = self.rotations()
        return (R * self.scales()[:, None, :] ** 2) @ R.transpose(1, 2)

    def parameters(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in fields(self)]

    def to(self, device: str | torch.device) -> "GaussianSet":
        return GaussianSet(*(p.detach().to(device) for p in self.parameters()))

    def detach(self) -> "GaussianSet":
        return GaussianSet(*(p.detach() for p in self.parameters()))

    def subset(self, keep: torch.Tensor) -> "GaussianSet":
        """The Gaussians selected by a (N,) bool mask or an index tensor (detached copies)."""
        return GaussianSet(*(p.detach()[keep].clone() for p in self.parameters()))

    @staticmethod
    def from_values(means: torch.Tensor | np.ndarray, scales: torch.Tensor | np.ndarray,
                    quats: torch.Tensor | np.ndarray | None = None,
                    opacities: torch.Tensor | np.ndarray | float = 0.5,
                    colours: torch.Tensor | np.ndarray | float = 0.5) -> "GaussianSet":
        """Build from constrained values: means (N, 3), scales (N, 3) or (N,) std devs > 0,
        quats (N, 4) (identity if None), opacities (N,) and colours (N, 3) in (0, 1)."""
        means_t = torch.as_tensor(np.asarray(means) if not isinstance(means, torch.Tensor) else means,
                                  dtype=torch.float32)
        n, dev = means_t.shape[0], means_t.device
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)  # noqa: E731
        sc = as_t(scales)
        sc = sc[:, None].expand(n, 3) if sc.ndim == 1 else sc
        q = torch.tensor([1.0, 0.0, 0.0, 0.0], device=dev).expand(n, 4) if quats is None else as_t(quats)
        op = as_t(opacities).expand(n).clamp(1e-6, 1 - 1e-6)
        col = as_t(colours).expand(n, 3).clamp(1e-6, 1 - 1e-6)
        return GaussianSet(means_t.clone(), sc.log().clone(), q.clone(), torch.logit(op).clone(),
                           torch.logit(col).clone())

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` (atomic: temporary name, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        arrays = {f.name: getattr(self, f.name).detach().cpu().numpy().astype(np.float32) for f in fields(self)}
        np.savez_compressed(tmp, format=np.array(FORMAT), **arrays)
        os.replace(tmp, path)
        return path

    @staticmethod
    def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> "GaussianSet":
        """Read a file written by :meth:`save`; ValueError if it is not one."""
        with np.load(path, allow_pickle=False) as data:
            if "format" not in data or str(data["format"]) != FORMAT:
                raise ValueError(f"{path}: not a recon Gaussians file (expected format {FORMAT}); "
                                 "write one with `recon reconstruct DIR --backend gvkf --save-gaussians F.npz`")
            return GaussianSet(*(torch.from_numpy(data[f.name]).to(device) for f in fields(GaussianSet)))
