"""Fractional power encoding (FPE) of point patches, the HDFE function vector.

A patch of points p_i (unit-ball coordinates, see :mod:`recon.normals.hdfe.patches`)
is encoded as the normalised weighted superposition

    F = normalize( sum_i w_i exp(i p_i^T Theta) ),    Theta = alpha * G,  G_jk ~ N(0, 1),

with Theta a fixed (3, N) random phase matrix drawn from a seed. The normalised
inner product of two single-point encodings approximates the Gaussian kernel
exp(-alpha^2 |x - x'|^2 / 2), so ``alpha`` sets the receptive field (bandwidth about
1 / alpha in patch units).

Weights: ``uniform`` (w_i = 1) or ``refine``, the sample-density-invariant weighting
of docs/hdfe.md section 1: the minimum-enclosing-ball centre of the point encodings,
found by Badoiu-Clarkson iterations. Convention used here (the method leaves it
open): weights start uniform and sum to 1; each iteration renormalises the centre
c = sum w_i z_i / |sum w_i z_i|, finds the point least similar to it
(similarity Re<c, z_i>), and moves the weights towards it,
w <- (1 - eta_t) w + eta_t e_far with eta_t = 1 / (t + 2); a patch stops (keeps its
previous weights) as soon as its minimum similarity fails to increase over the
previous iteration. Everything is vectorised over patches; only the iterations loop.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Weighting = Literal["uniform", "refine"]

#: Patch rows per batch of :func:`encode_features` (phase buffers ~ 2 x 21 MB at 1024 x 80 x 64).
FAST_CHUNK = 1024
#: Patch rows per batch: bounds the (B, k, N) float32 phase arrays (~ 50 MB at B=512, k=96, N=256).
CHUNK = 512


def make_theta(n_dims: int, alpha: float, seed: int, dim: int = 3) -> np.ndarray:
    """(dim, n_dims) float32 phase matrix alpha * N(0, 1), fixed by ``seed``.

    Args:
        n_dims: N, the number of complex dimensions.
        alpha: phase scale, in radians per patch unit (patches live in the unit ball).
        seed: seed of the numpy Generator that draws G.
        dim: input dimension d (3 for points).
    """
    rng = np.random.default_rng(int(seed))
    return (float(alpha) * rng.standard_normal((dim, int(n_dims)))).astype(np.float32)


def point_encodings(points: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Unit-modulus encodings exp(i x^T Theta).

    Args:
        points: (..., d) float positions in patch units.
        theta: (d, N) phase matrix.

    Returns:
        (..., N) complex64.
    """
    ph = np.asarray(points, dtype=np.float32) @ theta
    return (np.cos(ph) + 1j * np.sin(ph)).astype(np.complex64)


def density_weights(patches: np.ndarray, theta: np.ndarray, iters: int = 32,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Sample-density-invariant weights by minimum-enclosing-ball refinement.

    Args:
        patches: (M, k, d) float32 patch points in patch units.
        theta: (d, N) phase matrix.
        iters: maximum Badoiu-Clarkson iterations.
        valid: optional (M, k) bool mask of real (not padded) points.

    Returns:
        (M, k) float32 non-negative weights, each row summing to 1.
    """
    m, k, _ = patches.shape
    valid = np.ones((m, k), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    w = valid.astype(np.float64)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    z = point_encodings(patches, theta)  # (M, k, N)
    rows = np.arange(m)
    g = np.einsum("mk,mkn->mn", w, z)
    best = np.full(m, -np.inf)
    active = np.ones(m, dtype=bool)
    for t in range(int(iters)):  # iterations, vectorised over patches
        norm = np.sqrt((np.abs(g) ** 2).sum(axis=1, keepdims=True))
        c = g / np.maximum(norm, 1e-30)
        sim = np.einsum("mn,mkn->mk", np.conj(c), z).real  # (M, k)
        sim = np.where(valid, sim, np.inf)
        far = np.argmin(sim, axis=1)
        smin = sim[rows, far]
        active &= smin > best + 1e-9
        best = np.where(active, smin, best)
        if not active.any():
            break
        eta = 1.0 / (t + 2)
        upd = np.flatnonzero(active)
        w[upd] *= 1.0 - eta
        w[upd, far[upd]] += eta
        g[upd] = (1.0 - eta) * g[upd] + eta * z[upd, far[upd]]
    return w.astype(np.float32)


def encode(patches: np.ndarray, theta: np.ndarray, weights: np.ndarray | None = None,
           weighting: Weighting = "uniform", valid: np.ndarray | None = None, refine_iters: int = 32,
           chunk: int = CHUNK) -> np.ndarray:
    """HDFE function vectors F = normalize(sum_i w_i exp(i p_i^T Theta)) of patches.

    Args:
        patches: (M, k, d) patch points in patch units (float32 recommended).
        theta: (d, N) float32 phase matrix from :func:`make_theta`.
        weights: optional explicit (M, k) weights; overrides ``weighting``.
        weighting: "uniform" (w_i = 1) or "refine" (:func:`density_weights`).
        valid: optional (M, k) bool mask; padded points get weight 0.
        refine_iters: iterations for "refine".
        chunk: patches per batch (bounds memory to about chunk * k * N * 12 bytes).

    Returns:
        (M, N) complex64 unit-norm encodings.
    """
    p = np.asarray(patches, dtype=np.float32)
    m, k, _ = p.shape
    n = theta.shape[1]
    out = np.empty((m, n), dtype=np.complex64)
    for s in range(0, m, chunk):  # batches of patches
        e = min(m, s + chunk)
        pb = p[s:e]
        vb = None if valid is None else valid[s:e]
        if weights is not None:
            wb = np.asarray(weights[s:e], dtype=np.float32)
        elif weighting == "refine":
            wb = density_weights(pb, theta, refine_iters, vb)
        elif weighting == "uniform":
            wb = None if vb is None else vb.astype(np.float32)
        else:
            raise ValueError(f"unknown weighting {weighting!r}")
        ph = pb @ theta  # (B, k, N)
        if wb is None:
            re = np.cos(ph).sum(axis=1)
            im = np.sin(ph).sum(axis=1)
        else:
            re = np.einsum("bk,bkn->bn", wb, np.cos(ph))
            im = np.einsum("bk,bkn->bn", wb, np.sin(ph))
        norm = np.maximum(np.sqrt((re * re + im * im).sum(axis=1, keepdims=True)), 1e-20)
        out[s:e].real = re / norm
        out[s:e].imag = im / norm
    return out


def encode_features(patches: list[np.ndarray], theta: np.ndarray, out: np.ndarray | None = None,
                    chunk: int = FAST_CHUNK) -> np.ndarray:
    """Uniform-weight encodings of S patch sets at once, as real network features.

    Equal to ``as_real_features(encode(patches[j], theta))`` for every scale j, but the
    phases of all scales come from one (B, sum m_s, 3) @ (3, N) float32 product per
    batch, and cos/sin are evaluated once, in place, on that buffer.

    Args:
        patches: S arrays (M, m_s, 3) float32 patch points in patch units.
        theta: (3, N) float32 phase matrix.
        out: optional (M, S, 2N) float32 output (a view into a larger array is fine).
        chunk: patches per batch (the phase buffers are 2 * chunk * sum m_s * N * 4 bytes).

    Returns:
        (M, S, 2N) float32: per scale [Re F, Im F] * sqrt(N) with F of unit norm.
    """
    th = np.asarray(theta, dtype=np.float32)
    n = th.shape[1]
    m = patches[0].shape[0]
    sizes = [p.shape[1] for p in patches]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = np.empty((m, len(patches), 2 * n), dtype=np.float32) if out is None else out
    root_n = np.float32(np.sqrt(n))
    seg = np.zeros((len(patches), int(bounds[-1])), dtype=np.float32)  # (S, K) scale indicator
    for j in range(len(patches)):  # a few scales
        seg[j, bounds[j]:bounds[j + 1]] = 1.0
    pb = np.empty((min(chunk, m), int(bounds[-1]), 3), dtype=np.float32)
    for s in range(0, m, chunk):  # batches of patches
        e = min(m, s + chunk)
        for j, p in enumerate(patches):  # a few scales
            pb[:e - s, bounds[j]:bounds[j + 1]] = p[s:e]
        ph = np.matmul(pb[:e - s], th)  # (B, K, N) phases
        sn = np.sin(ph)
        np.cos(ph, out=ph)
        re = np.matmul(seg, ph)  # (B, S, N) per-scale sums
        im = np.matmul(seg, sn)
        inv = root_n / np.maximum(np.sqrt((re * re + im * im).sum(axis=2, keepdims=True)), 1e-20)
        out[s:e, :, :n] = re * inv
        out[s:e, :, n:] = im * inv
    return out


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|<a, b>| / (|a| |b|) along the last axis (complex cosine magnitude), shape (...)."""
    num = np.abs(np.sum(a * np.conj(b), axis=-1))
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return num / np.maximum(den, 1e-30)


def as_real_features(f: np.ndarray) -> np.ndarray:
    """(M, N) complex -> (M, 2N) float32 [real parts, imaginary parts], scaled by sqrt(N)."""
    scale = np.float32(np.sqrt(f.shape[1]))
    return np.concatenate([f.real, f.imag], axis=1).astype(np.float32) * scale


__all__ = ["make_theta", "point_encodings", "density_weights", "encode", "encode_features", "similarity",
           "as_real_features"]
