"""Choosing the torch device from ``--device auto|cpu|cuda``: the one home of the device rules.

torch is imported inside the functions: the CLI imports this module at start-up, before it knows
whether the command needs torch (importing torch costs about a second).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator

from recon.errors import ConfigError

if TYPE_CHECKING:
    import torch


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


def backend_device(config_device: str, device: str | None) -> str:
    """The device a backend runs on: its config's ``device`` unless that is "auto", then the
    caller's (the pipeline's ``--device``; None meaning "auto"), resolved by :func:`resolve_device`."""
    if config_device != "auto":
        return resolve_device(config_device)
    return resolve_device(device or "auto")


def resolve_torch_device(name: str, hint: Any = None) -> torch.device:
    """A torch device for a backend whose config says ``name`` ("auto", "cpu", "cuda" or "cuda:N").

    Args:
        name: the config's device.
        hint: for "auto" only: a CUDA tensor (its device wins: inputs already on a GPU stay there)
            or the caller's device name (see :func:`backend_device`); anything else is ignored.

    Raises:
        ConfigError: see :func:`resolve_device`.
    """
    import torch

    if name == "auto" and isinstance(hint, torch.Tensor) and hint.device.type == "cuda":
        return hint.device
    return torch.device(backend_device(name, hint if isinstance(hint, str) else None))


@contextlib.contextmanager
def torch_threads(n: int | None, device: Any = "cpu") -> Iterator[None]:
    """Temporarily set torch's intra-op CPU threads (``n`` None/0 or a CUDA device: unchanged).

    The backends' torch work is many medium-sized operations; on a small shared CPU the OpenMP
    synchronisation of each one can dominate, so fewer threads than cores can be faster.
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
