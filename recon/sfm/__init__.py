"""Structure-from-motion for photos without camera files (pycolmap: CPU SIFT, matching, incremental mapping).

* :func:`views_for_folder` / :func:`load_or_solve_views`: posed views of a photo folder, the sparse
  model kept in a folder of its own and reused while the photos stay the same (``folder.py``);
* :func:`solve_model`: the model folder, written atomically (``model.py``);
* :func:`run_sfm` and :class:`SfmOptions`: the stages (``run.py``), the photos' working copies (``images.py``);
* :func:`similarity`: aligning recovered camera centres to known ones (``align.py``).

Importing this package imports pycolmap (0.3 s): the command line imports it only in the commands
that run structure-from-motion.
"""

from __future__ import annotations

from recon.sfm.align import centre_errors, rig_extent, rotation_errors_deg, similarity
from recon.sfm.folder import has_camera_format, load_or_solve_views, views_for_folder
from recon.sfm.model import (
    MANIFEST,
    model_state,
    photo_fingerprint,
    read_manifest,
    solve_model,
)
from recon.sfm.run import SfmOptions, SfmReport, run_sfm

__all__ = [
    "MANIFEST", "SfmOptions", "SfmReport", "centre_errors", "has_camera_format", "load_or_solve_views", "model_state",
    "photo_fingerprint", "read_manifest", "rig_extent", "rotation_errors_deg", "run_sfm", "similarity", "solve_model",
    "views_for_folder",
]
