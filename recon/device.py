"""Choosing the torch device from ``--device auto|cpu|cuda``."""

from __future__ import annotations

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
