"""Reading what the viewer shows, and telling whether a window can be opened."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recon.errors import InputError, ReconError
from recon.types import Cameras, Mesh, PointCloud, Views
from recon_apps.input_files import is_posed_images, load_mesh_or_cloud
from recon_apps.viewer.display import has_display

# Objects that can be passed to the viewer instead of a path.
def _viewable_types() -> tuple[type, ...]:
    from recon_apps.viewer.fields import FieldSource
    from recon_apps.viewer.gaussians import GaussianSource
    from recon_apps.viewer.posed import PosedImageSet

    return (PointCloud, Mesh, Cameras, Views, FieldSource, PosedImageSet, GaussianSource)


VIEWABLE_TYPES = _viewable_types()


def load_input(path: str | os.PathLike) -> Any:
    """A posed-image folder, a saved field (``--save-field`` .npz), saved Gaussians (``--save-gaussians``
    .npz), a mesh if the file has faces,
    otherwise a validated point cloud.

    Raises:
        InputError: the file is missing, a folder, of an unknown kind or unreadable
            (the message names the file).
    """
    from recon.io import SUPPORTED_MESH_EXTENSIONS, SUPPORTED_POINT_EXTENSIONS
    from recon_apps.viewer.posed import load_posed_images

    p = Path(path)
    if not p.exists():
        raise InputError("no such file", p, "check the path")
    if is_posed_images(p):
        return load_posed_images(p)
    from recon_apps.viewer.fields import is_saved_field, load_saved_field

    if is_saved_field(p):
        return load_saved_field(p)
    from recon_apps.viewer.gaussians import is_saved_gaussians, load_saved_gaussians

    if is_saved_gaussians(p):
        return load_saved_gaussians(p)
    ext = p.suffix.lower()
    if ext not in SUPPORTED_POINT_EXTENSIONS and ext not in SUPPORTED_MESH_EXTENSIONS:
        raise InputError(f"the viewer cannot show '{ext or '(no extension)'}' files", p,
                         f"pass one of {', '.join(sorted(set(SUPPORTED_POINT_EXTENSIONS) | set(SUPPORTED_MESH_EXTENSIONS)))}")
    try:
        return load_mesh_or_cloud(p)
    except ReconError:
        raise
    except Exception as e:  # a reader bug must still name the file
        raise InputError(f"the viewer cannot read this file ({type(e).__name__}: {e})", p,
                         "check the file opens in another viewer") from None


def resolve(item: Any) -> tuple[str, Any]:
    """``(label, object)`` for a path, an already loaded recon object or a ``(label, object)`` pair."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        label, obj = item
        return (label, obj) if isinstance(obj, VIEWABLE_TYPES) else (label, load_input(obj))
    if isinstance(item, VIEWABLE_TYPES):
        label = getattr(item, "source", None) or type(item).__name__
        return str(label), item
    return Path(item).name, load_input(item)


__all__ = ["VIEWABLE_TYPES", "has_display", "load_input", "resolve"]
