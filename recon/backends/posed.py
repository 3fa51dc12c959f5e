"""Pieces the posed-image backends (VolSDF, GVKF) share: picking the device and the views."""

from __future__ import annotations

from typing import Any

import numpy as np

from recon.types import Cameras, Views


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


def check_image_arrays(images: Any, masks: Any, cameras: Cameras) -> tuple[np.ndarray, np.ndarray | None]:
    """Images (C, H, W, 3) and optional masks (C, H, W) as float32, checked against the C cameras.

    Raises:
        ValueError: shapes that do not match each other or the cameras.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (C, H, W, 3), got {images.shape}")
    C, H, W, _ = images.shape
    if len(cameras) != C or cameras.width != W or cameras.height != H:
        raise ValueError(f"{len(cameras)} cameras of {cameras.width}x{cameras.height} for {C} images of {W}x{H}")
    if masks is not None:
        masks = np.asarray(masks, np.float32)
        if masks.size != C * H * W:
            raise ValueError(f"masks must be (C, H, W) = ({C}, {H}, {W}), got {masks.shape}")
        masks = masks.reshape(C, H, W)
    return images, masks
