"""The HDFE normal head: encoder settings, the small MLP, features, checkpoints.

The network input for one query point is, for each scale s, the HDFE function
vector of its aligned patch (N complex dims -> 2N reals) followed by the patch's
normalised covariance eigenvalues (3 reals, scaled by 10) and its own PCA normal in
the patch frame (3 reals, z >= 0): S * (2N + 6) values (402 with the v2 weights).
An MLP maps it to a 3-vector delta and the predicted unoriented normal in the patch frame is
normalize(e_z + delta): e_z is the PCA normal, so the network learns a correction.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recon.errors import InputError
from recon.io.torch_files import describe_error, load_tensors, to_plain
from recon.normals.hdfe.encoder import as_real_features, encode, encode_features, make_theta
from recon.normals.hdfe.patches import PatchSet

#: The committed weights.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "hdfe_v2.pt"
TRAIN_COMMAND = "python -m recon.normals.hdfe.train --config configs/train/normals-hdfe.yaml"
#: Checkpoint format tag; 2 = nested-moment patches, evenly spaced subsampling, fused encoding.
FORMAT = "recon-hdfe-2"
#: Surface variation (lambda_min / sum) below which a patch is treated as exactly planar.
PLANAR_EPS = 1e-7


@dataclass
class EncoderSpec:
    """How patches are built and encoded (stored with the weights)."""

    n_dims: int = 64  # N, complex dimensions of the encoding
    alpha: float = 8.0  # phase scale of Theta = alpha * N(0, 1), radians per patch unit (unit ball)
    seed: int = 0  # seed of Theta
    scales: list[int] = field(default_factory=lambda: [16, 48, 128])  # patch sizes k (query included)
    frame_k: int = 48  # neighbourhood size of the PCA frame
    max_points: int = 32  # points encoded per patch (larger patches: evenly spaced ranks)
    weighting: str = "uniform"  # "uniform" or "refine" (density-invariant, docs/hdfe.md section 1)
    refine_iters: int = 16  # iterations of the "refine" weighting


@dataclass
class HeadSpec:
    """MLP widths."""

    hidden: list[int] = field(default_factory=lambda: [256, 128])


def feature_dim(enc: EncoderSpec) -> int:
    """Length of one feature row: S * (2N + 6)."""
    return len(enc.scales) * (2 * enc.n_dims + 6)


def patch_features(ps: PatchSet, theta: np.ndarray, enc: EncoderSpec) -> np.ndarray:
    """(M, S * (2N + 6)) float32 network inputs of a patch set.

    Per scale: the encoding as [Re, Im] * sqrt(N) (2N), 10 x the normalised covariance
    eigenvalues (3) and the scale's PCA normal in the patch frame (3).
    """
    m, n_s, n = ps.frames.shape[0], len(ps.patches), theta.shape[1]
    out = np.empty((m, n_s, 2 * n + 6), dtype=np.float32)
    if enc.weighting == "uniform":
        encode_features(ps.patches, theta, out=out[:, :, :2 * n])
    else:
        for j, p in enumerate(ps.patches):  # a few scales
            f = encode(p, theta, weighting=enc.weighting, refine_iters=enc.refine_iters)  # type: ignore[arg-type]
            out[:, j, :2 * n] = as_real_features(f)
    out[:, :, 2 * n:2 * n + 3] = 10.0 * ps.eig
    out[:, :, 2 * n + 3:] = ps.normal
    return out.reshape(m, n_s * (2 * n + 6))


class HDFEHead(nn.Module):
    """MLP from features (B, D) to unit normals (B, 3) in the patch frame."""

    def __init__(self, in_dim: int, hidden: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        last = nn.Linear(d, 3)
        nn.init.zeros_(last.weight)  # start at the PCA normal
        nn.init.zeros_(last.bias)
        layers.append(last)
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.mlp(x)
        ez = torch.zeros_like(delta)
        ez[:, 2] = 1.0
        return nn.functional.normalize(ez + delta, dim=1, eps=1e-12)


@dataclass
class HDFEModel:
    """A loaded model: encoder settings, Theta and the head."""

    enc: EncoderSpec
    head_spec: HeadSpec
    theta: np.ndarray
    head: HDFEHead
    meta: dict[str, Any]

    @classmethod
    def new(cls, enc: EncoderSpec, head_spec: HeadSpec, seed: int = 0) -> "HDFEModel":
        torch.manual_seed(seed)
        theta = make_theta(enc.n_dims, enc.alpha, enc.seed)
        return cls(enc, head_spec, theta, HDFEHead(feature_dim(enc), list(head_spec.hidden)), {})

    def state(self) -> dict[str, Any]:
        """What :meth:`save` writes: tensors and plain values only (``meta`` must be JSON-like)."""
        return {"format": FORMAT, "encoder": dataclasses.asdict(self.enc),
                "head_spec": dataclasses.asdict(self.head_spec), "theta": torch.from_numpy(self.theta),
                "state_dict": self.head.state_dict(), "meta": self.meta}

    def save(self, path: str | os.PathLike) -> None:
        """Write the model (atomically) to ``path``."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        torch.save(to_plain(self.state()), tmp)
        os.replace(tmp, p)

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> "HDFEModel":
        enc = EncoderSpec(**st["encoder"])
        hs = HeadSpec(**st["head_spec"])
        head = HDFEHead(feature_dim(enc), list(hs.hidden))
        head.load_state_dict(st["state_dict"])
        head.eval()
        return cls(enc, hs, st["theta"].numpy().astype(np.float32), head, dict(st.get("meta", {})))

    def predict_local(self, feats: np.ndarray, batch: int = 65536) -> np.ndarray:
        """(M, 3) float32 unit normals in the patch frames from (M, D) features."""
        out = np.empty((feats.shape[0], 3), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, feats.shape[0], batch):  # batches
                out[s:s + batch] = self.head(torch.from_numpy(feats[s:s + batch])).numpy()
        return out


_CACHE: dict[str, HDFEModel] = {}


def load_model(path: str | os.PathLike | None = None) -> HDFEModel:
    """Load (and cache) the HDFE weights.

    Raises:
        InputError: the file is missing or not an HDFE checkpoint; the fix names the
            training command.
    """
    p = Path(DEFAULT_WEIGHTS if path is None else path)
    key = str(p.resolve())
    if key in _CACHE:
        return _CACHE[key]
    if not p.is_file():
        raise InputError("HDFE normal weights not found", p,
                         f"train them with `{TRAIN_COMMAND}` (writes {DEFAULT_WEIGHTS.name}), or pass weights=PATH")
    st = load_tensors(p, what="HDFE weights file", fix=f"retrain with `{TRAIN_COMMAND}`")
    if st.get("format") != FORMAT:
        raise InputError(f"not HDFE weights (format {str(st.get('format'))[:40]!r}, expected {FORMAT})", p,
                         f"retrain with `{TRAIN_COMMAND}`")
    try:
        model = HDFEModel.from_state(st)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise InputError(f"HDFE weights do not fit the model ({describe_error(e)})", p,
                         f"retrain with `{TRAIN_COMMAND}`") from None
    _CACHE[key] = model
    return model


__all__ = ["EncoderSpec", "HeadSpec", "HDFEHead", "HDFEModel", "feature_dim", "patch_features", "load_model",
           "DEFAULT_WEIGHTS", "TRAIN_COMMAND", "PLANAR_EPS"]
