"""Opening untrusted image files with Pillow: header checks before any pixel is decoded.

* Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is an error here, not a
  warning, so nothing reaches stderr;
* the header's ``width x height x bytes per pixel`` must pass
  :func:`recon.io._common.check_image_pixels` against the file size (at most 20x, or 128 MiB
  whatever the size): a small file that claims a huge image is refused before decoding.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from recon.errors import InputError
from recon.io._common import check_image_pixels


def open_image(path: str | os.PathLike, decode: bool = True) -> Any:
    """Open an image (a ``PIL.Image.Image``), checking its header first.

    Args:
        path: the image file.
        decode: also decode the pixels (``Image.load``); False reads the header only.

    Raises:
        InputError: missing, unreadable, not an image, or a decompression bomb.
    """
    from PIL import Image  # Pillow is imported only when images are read

    im = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            depth = 4 if im.mode in ("I", "F") else 2 if im.mode.startswith("I;16") else 1  # bytes per band
            check_image_pixels(path, int(im.size[0]), int(im.size[1]), depth * len(im.getbands()), os.path.getsize(path))
            if decode:
                im.load()
        return im
    except Exception as exc:  # noqa: BLE001 - Pillow raises several types
        if im is not None:
            im.close()
        if isinstance(exc, InputError):
            raise
        if isinstance(exc, FileNotFoundError):
            raise InputError("missing image", path, "check the file exists") from exc
        detail = str(exc).splitlines()[0][:160] if str(exc).strip() else ""
        if isinstance(exc, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
            raise InputError(f"image too large to decode safely ({detail})", path,
                             f"resize it below {Image.MAX_IMAGE_PIXELS // 1_000_000} megapixels") from None
        raise InputError(f"cannot read image ({type(exc).__name__}: {detail})", path, "check the file is a valid image") from exc


__all__ = ["open_image"]
