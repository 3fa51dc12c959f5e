"""The committed learned-kernel weights reproduce a stored small reconstruction.

``reference_small.npz`` holds a fixed 2k-point input (a torus with a box, seed 0), 200 fixed
query points and the field values the committed weights gave there (plus the weights' hash).
Regenerate after retraining with::

    python tests/backends/kernel/learned/test_learned_reference.py --regenerate
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REF = HERE / "reference_small.npz"
WEIGHTS = HERE.parents[3] / "recon" / "backends" / "kernel" / "learned" / "weights" / "learned_kernel.pt"


def _input() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from recon import synthetic as S

    f = S.union(S.torus((0, 0, 0), 0.3, 0.1), S.box((0.0, 0.0, 0.25), (0.15, 0.15, 0.15), rounding=0.03))
    p, n = S.sample_sdf_surface(f, np.array([[-0.6] * 3, [0.6] * 3]), 2000, seed=0, resolution=96)
    q = np.random.default_rng(1).uniform(-0.45, 0.45, size=(200, 3))
    q[:100] = p[:100] + 0.01 * n[:100]  # half of them near the surface
    return p.astype(np.float32), n.astype(np.float32), q


def _reconstruct(p: np.ndarray, n: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from recon.backends.kernel import KernelConfig, KernelReconstructor

    field = KernelReconstructor(KernelConfig(model="learned", weights=str(WEIGHTS), device="cpu",
                                             voxel_size=1 / 48)).reconstruct(p, n)
    return field.evaluate(q), field.udf(q)


def _sha() -> str:
    return hashlib.sha1(WEIGHTS.read_bytes()).hexdigest()


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="no committed weights")
def test_committed_weights_reproduce_stored_reconstruction():
    with np.load(REF) as z:
        p, n, q = z["points"], z["normals"], z["queries"]
        f_ref, udf_ref, sha = z["values"], z["udf"], str(z["weights_sha1"])
    assert sha == _sha(), "weights changed: regenerate reference_small.npz (see the module docstring)"
    f, udf = _reconstruct(p, n, q)
    assert np.abs(f - f_ref).max() < 2e-4  # world units on a unit-size shape (solver tolerance 1e-4)
    assert np.abs(udf - udf_ref).max() < 1e-5
    # and it is a sensible field: near-surface queries (0.01 outside) are positive, small
    assert np.median(f[:100]) == pytest.approx(0.01, abs=0.01)


if __name__ == "__main__" and "--regenerate" in sys.argv:
    p, n, q = _input()
    f, udf = _reconstruct(p, n, q)
    np.savez(REF, points=p, normals=n, queries=q, values=f, udf=udf, weights_sha1=np.str_(_sha()))
    print(f"wrote {REF}: values in [{f.min():.4f}, {f.max():.4f}]")
