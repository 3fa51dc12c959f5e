"""Choosing the torch device from ``--device auto|cpu|cuda``."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from recon.errors import ConfigError


def resolve_device(device: str = "auto") -> str:
    """Return "cpu" or "cuda" (or an explicit "cuda:N").

    Raises:
        ConfigError: an unknown name, or "cuda" asked for on a machine without a usable GPU.
    """
    name = (device or "auto").lower()
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device '{device}'", None, "use --device auto, cpu or cuda")
    if name == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if name == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise ConfigError("--device cuda was asked for but no CUDA GPU is usable here", None,
                          "use --device auto or --device cpu")
    return name


@contextlib.contextmanager
def torch_threads(n: int | None, device: Any = "cpu") -> Iterator[None]:
    """Temporarily set torch's intra-op CPU threads (``n`` None/0 or a CUDA device: unchanged).

    The backends' torch work is many medium-sized operations; on a small shared CPU the
    OpenMP synchronisation of each one dominated (kernel, 2 cores under load: one thread ran the
    200k-point bunny in 5.1 s, two threads in 8.6 s; 1M points 25 s vs 31 s).
    """
    import torch

    old = torch.get_num_threads()
    change = bool(n) and torch.device(device).type == "cpu" and n != old
    if change:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(old)
