"""Pieces the posed-image backends (VolSDF, GVKF) share: picking the device and the views."""

from __future__ import annotations

from typing import Any

from recon.types import Views


def backend_device(config_device: str, device: str | None) -> str:
    """The torch device to train on: the backend config's ``device`` unless it is "auto", then the
    caller's (``None`` meaning "auto"), resolved by :func:`recon.device.resolve_device`."""
    from recon.device import resolve_device

    if config_device != "auto":
        return resolve_device(config_device)
    return resolve_device(device or "auto")


def require_views(scene: Any, backend: str) -> Views:
    """``scene`` itself when it is :class:`~recon.types.Views`, else its ``views`` attribute.

    Raises:
        InputError: there are no posed images (a point cloud was passed).
    """
    views = scene if isinstance(scene, Views) else getattr(scene, "views", None)
    if views is None:
        from recon.errors import InputError

        raise InputError(f"the {backend} backend needs posed images, not a point cloud",
                         getattr(scene, "source", None), "pass a folder of posed images")
    return views
