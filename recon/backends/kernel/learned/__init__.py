"""Learned neural kernel for the kernel backend (NKSR sections 1.2-1.6, 2, 6).

The training-free backend is the special case ``kernel_dim = 0``; this package adds a point
encoder, a sparse U-Net with a structure head, per-level kernel features F_d with the MLP
psi_d (K(x, v) = B((x - c_v)/s_d) <psi_d(x), F_v>), predicted normals, a UDF head for
trimming, and training through the sparse solve (adjoint method).

Entry points: :class:`recon.backends.kernel.learned.model.LearnedKernelModel` (network +
save/load), :func:`recon.backends.kernel.learned.infer.reconstruct_learned` (inference) and
:func:`recon.backends.kernel.learned.train.train` (``recon train kernel``).
"""
