"""The photos of a structure-from-motion run: listing, EXIF focal length and orientation, working copies.

Structure-from-motion and the image backends both read the *working copies* that
:func:`write_working_images` makes in the model folder, so they see the same pixels:

* EXIF orientation is applied (a portrait phone photo stands upright), grayscale and palette
  images become RGB, an alpha channel is kept (PNG) because it is the image's mask; copies of
  lossless photos (PNG, TIFF, BMP) are PNG, the others JPEG at quality 95;
* every copy has one size (the library holds one resolution per scene): the most common
  oriented size, scaled down so its longest side is at most ``max_size`` pixels. A photo of
  another size is scaled to cover that size and centre-cropped, which keeps it a pinhole camera
  (its focal length is scaled, its principal point shifted);
* a focal-length prior in pixels comes from EXIF (the 35 mm equivalent, or the focal length and
  the focal-plane resolution) and follows the same scaling.

The photos themselves are never written.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from recon.errors import InputError
from recon.io.image_files import open_image

#: Extensions read as photos (what Pillow decodes; case-insensitive).
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
#: EXIF tags: orientation (IFD0), and in the Exif IFD focal length (mm), its 35 mm equivalent, and the
#: focal-plane resolution (pixels per unit) with its unit (2 inch, 3 cm, 4 mm, 5 um).
_ORIENTATION, _EXIF_IFD, _MAKE, _MODEL = 0x0112, 0x8769, 0x010F, 0x0110
_FOCAL, _FOCAL_35, _FPX_RES, _FP_UNIT = 0x920A, 0xA405, 0xA20E, 0xA210
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
#: The 35 mm equivalent focal length refers to a 36 mm wide frame.
_FRAME_MM = 36.0
#: Photos in these formats get lossless (PNG) working copies; the others JPEG at quality 95.
_LOSSLESS = (".png", ".tif", ".tiff", ".bmp")
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass
class Photo:
    """One input photo as its header describes it.

    Attributes:
        path: the file.
        width, height: size in pixels after the EXIF orientation is applied.
        orientation: the EXIF orientation tag (1 = as stored; 5 to 8 swap width and height).
        focal_px: focal length prior in pixels of the oriented photo, or None without EXIF focal data.
        camera: "make model" from EXIF ("" when absent): photos share intrinsics only with the same camera.
        alpha: the photo has an alpha channel (kept: it is the mask).
        nbytes: file size in bytes (part of the fingerprint that decides when a model can be reused).
    """

    path: Path
    width: int
    height: int
    orientation: int
    focal_px: float | None
    camera: str
    alpha: bool
    nbytes: int

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class WorkingImage:
    """A working copy: its name in the model's ``images/`` folder and how it maps the oriented photo.

    Attributes:
        photo: the source photo.
        name: file name inside ``images/``.
        scale: pixels of the copy per pixel of the oriented photo.
        focal_px: the focal prior scaled to the copy (pixels), or None.
        group: the camera group; photos of one group share intrinsics.
    """

    photo: Photo
    name: str
    scale: float
    focal_px: float | None
    group: int


def list_photos(folder: str | os.PathLike) -> list[Path]:
    """Photos directly inside ``folder`` (:data:`PHOTO_EXTENSIONS`), sorted by name (capture order for most cameras).

    Raises:
        InputError: the folder is missing or holds no photo.
    """
    p = Path(folder)
    if not p.is_dir():
        raise InputError("photo folder not found", p, "pass the folder that holds the photos")
    photos = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in PHOTO_EXTENSIONS)
    if not photos:
        raise InputError("no photos (and no camera file) in this folder", p,
                         f"put the photos ({', '.join(PHOTO_EXTENSIONS)}) directly in the folder")
    return photos


def _ratio(v: object) -> float | None:
    """An EXIF rational (Pillow's IFDRational, a tuple or a number) as a finite positive float, else None."""
    try:
        f = float(v[0]) / float(v[1]) if isinstance(v, tuple) else float(v)  # type: ignore[index, arg-type]
    except (TypeError, ValueError, ZeroDivisionError, IndexError):
        return None
    return f if np.isfinite(f) and f > 0 else None


def exif_focal_px(exif: Image.Exif, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF, or None.

    Args:
        exif: the photo's EXIF.
        width, height: the oriented size in pixels.

    Returns:
        From the 35 mm equivalent: ``f35 / 36 mm * max(width, height)``; else from the focal length
        (mm) times the focal-plane X resolution (pixels per mm), valid only for photos that were not
        resized after capture. None when neither is present or plausible (0.1 to 10 times the size).
    """
    ifd = exif.get_ifd(_EXIF_IFD)
    size = float(max(width, height))
    f = None
    f35 = _ratio(ifd.get(_FOCAL_35))
    if f35 is not None:
        f = f35 / _FRAME_MM * size
    else:
        fmm, res = _ratio(ifd.get(_FOCAL)), _ratio(ifd.get(_FPX_RES))
        unit = _UNIT_MM.get(int(ifd.get(_FP_UNIT, 2) or 2))
        if fmm is not None and res is not None and unit is not None:
            f = fmm * res / unit
    if f is None or not (0.1 * size <= f <= 10 * size):
        return None
    return float(f)


def inspect_photo(path: Path) -> Photo:
    """Read a photo's header and EXIF (no pixels are decoded).

    Raises:
        InputError: unreadable or not an image (names the file).
    """
    with open_image(path, decode=False) as im:
        w, h = int(im.size[0]), int(im.size[1])
        exif = im.getexif()
        orientation = int(exif.get(_ORIENTATION, 1) or 1)
        if orientation not in range(1, 9):
            orientation = 1
        ow, oh = (h, w) if orientation >= 5 else (w, h)
        make = " ".join(str(exif.get(t, "")).strip("\0 ") for t in (_MAKE, _MODEL)).strip()
        alpha = im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)
        focal = exif_focal_px(exif, ow, oh)
    return Photo(path, ow, oh, orientation, focal, make, alpha, path.stat().st_size)


def common_size(photos: list[Photo]) -> tuple[int, int]:
    """The most common oriented (width, height) of the photos in pixels (ties: the larger)."""
    counts = Counter((p.width, p.height) for p in photos)
    return max(counts, key=lambda s: (counts[s], s[0] * s[1]))


def working_size(photos: list[Photo], max_size: int) -> tuple[int, int]:
    """The one size of every working copy: :func:`common_size` with its longest side scaled down to
    ``max_size`` pixels (never up).

    Returns:
        (width, height) in pixels.
    """
    w, h = common_size(photos)
    s = min(1.0, max_size / max(w, h))
    return max(1, round(w * s)), max(1, round(h * s))


def plan_working_images(photos: list[Photo], width: int, height: int) -> list[WorkingImage]:
    """Names, scales, scaled focal priors and camera groups of the working copies.

    A photo is scaled by ``max(width / w, height / h)`` so that it covers the working size, then
    centre-cropped. Photos share a camera group when their oriented size, EXIF camera and focal prior agree.
    """
    stems = Counter(p.path.stem for p in photos)
    groups: dict[tuple, int] = {}
    out = []
    for p in photos:  # a loop over files
        s = max(width / p.width, height / p.height)
        ext = ".png" if p.alpha or p.path.suffix.lower() in _LOSSLESS else ".jpg"
        name = (p.path.stem if stems[p.path.stem] == 1 else p.path.name.replace(".", "_")) + ext
        focal = None if p.focal_px is None else p.focal_px * s
        key = (p.width, p.height, p.camera, None if focal is None else round(focal, 1))
        out.append(WorkingImage(p, name, s, focal, groups.setdefault(key, len(groups))))
    return out


def write_working_image(item: WorkingImage, folder: Path, width: int, height: int) -> None:
    """Decode, orient, convert to RGB(A), scale, centre-crop and write one working copy into ``folder``.

    JPEG copies are written at quality 95, PNG copies (photos with alpha or from a lossless format) losslessly.

    Raises:
        InputError: the photo cannot be decoded (names the file).
    """
    p = item.photo
    with open_image(p.path, decode=False) as im:
        # JPEG: decode at a power-of-two reduction that still covers the target (much faster for big photos)
        need = (int(np.ceil(p.width * item.scale)), int(np.ceil(p.height * item.scale)))
        im.draft("RGB", need[::-1] if p.orientation >= 5 else need)
        try:
            im.load()
            im = ImageOps.exif_transpose(im)
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"cannot decode image ({type(exc).__name__}: {str(exc)[:120]})", p.path,
                             "re-export the photo or remove it from the folder") from None
        if im.mode.startswith("I;16") or im.mode in ("I", "F"):  # 16-bit or float: to 8 bits before RGB
            a = np.asarray(im, np.float64)
            top = 65535.0 if im.mode.startswith("I;16") else max(float(np.nanmax(a)), 1e-12)
            im = Image.fromarray(np.round(np.clip(np.nan_to_num(a) / top, 0, 1) * 255).astype(np.uint8))
        im = im.convert("RGBA" if p.alpha else "RGB")
        sw, sh = max(width, round(p.width * item.scale)), max(height, round(p.height * item.scale))
        if (sw, sh) != im.size:
            im = im.resize((sw, sh), Image.Resampling.LANCZOS, reducing_gap=3.0)
        left, top = (sw - width) // 2, (sh - height) // 2
        if (sw, sh) != (width, height):
            im = im.crop((left, top, left + width, top + height))
        target = folder / item.name
        if target.suffix == ".png":
            im.save(target, format="PNG")
        else:
            im.save(target, format="JPEG", quality=95)


__all__ = [
    "PHOTO_EXTENSIONS", "Photo", "WorkingImage", "common_size", "exif_focal_px", "inspect_photo", "list_photos",
    "plan_working_images", "working_size", "write_working_image",
]
