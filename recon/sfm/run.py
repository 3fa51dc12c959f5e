"""The structure-from-motion stages, with pycolmap: working copies, SIFT features, matching, incremental mapping.

:func:`run_sfm` fills an empty folder with a COLMAP text model (``cameras.txt``, ``images.txt``,
``points3D.txt``) and the working copies of the photos it was computed from (``images/``), so the
folder loads with :func:`recon.io.cameras.load_views` like any COLMAP project. Stages:

1. **photos**: headers and EXIF read, working copies written (:mod:`recon.sfm.images`);
2. **features**: CPU SIFT, one pycolmap call per camera group (a group shares one SIMPLE_RADIAL
   camera, seeded with the EXIF focal length when there is one);
3. **matching**: exhaustive for up to :attr:`SfmOptions.exhaustive_limit` photos, else sequential
   (each photo against the next ``overlap`` ones and those at power-of-two distances: the photos'
   name order must be their capture order, as camera file names are);
4. **mapping**: incremental mapping with local and global bundle adjustment (focal length, radial
   distortion and, from :data:`PRINCIPAL_POINT_MIN_PHOTOS` photos on, the principal point refined);
   the largest model is kept.

``import zlib`` comes before ``import pycolmap`` on purpose: the pycolmap 4.2 wheel carries its own
zlib, and when it loads first the system ``libz.so.1`` it pulls in binds to those copies, so every
later zlib user (Pillow's PNG writer, ``np.savez_compressed``) aborts the process with a double free.
With ``libz.so.1`` loaded first (by Python's zlib module), its bindings are its own.

Fewer than :attr:`SfmOptions.min_fraction` of the photos (or fewer than
:attr:`SfmOptions.min_registered`) registered is an :class:`~recon.errors.InputError`.
"""

from __future__ import annotations

import math
import shutil
import time
import zlib  # noqa: F401 - loaded before pycolmap on purpose: see the module docstring
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pycolmap

from recon.errors import InputError
from recon.progress import NULL_PROGRESS, Progress
from recon.sfm.images import (
    Photo,
    WorkingImage,
    common_size,
    inspect_photo,
    list_photos,
    plan_working_images,
    working_size,
    write_working_image,
)

#: Folder names inside the model folder.
IMAGES, DATABASE = "images", ".sfm-database"
#: With at least this many photos bundle adjustment refines the principal point (unless told otherwise).
PRINCIPAL_POINT_MIN_PHOTOS = 20
#: Photos per feature-extraction call (progress is reported between calls).
_CHUNK = 8
_TRY = "take the photos from different positions with more overlap (each spot in 3+ photos, <= 30 degrees " \
       "apart), of a textured subject, without motion blur"


@dataclass(frozen=True)
class SfmOptions:
    """What a structure-from-motion run does (the fields that change its result are in the model's fingerprint).

    Attributes:
        max_size: longest side of the working copies in pixels (photos are scaled down, never up).
        max_features: SIFT features kept per image.
        exhaustive_limit: up to this many photos every pair is matched; above, sequential matching.
        overlap: sequential matching: each photo is matched with this many following ones.
        min_fraction: the fraction of photos that must register.
        min_registered: the number of photos that must register.
        refine_principal_point: let bundle adjustment move the principal point off the image centre; None:
            when there are at least :data:`PRINCIPAL_POINT_MIN_PHOTOS` photos (with fewer views it is poorly
            constrained). On the temple and fox captures it halves the median rotation error.
        threads: CPU threads (-1: all).
        seed: random seed of pycolmap's RANSAC and mapper.
    """

    max_size: int = 1600
    max_features: int = 8192
    exhaustive_limit: int = 50
    overlap: int = 15
    min_fraction: float = 0.6
    min_registered: int = 8
    refine_principal_point: bool | None = None
    threads: int = -1
    seed: int = 0

    def fingerprint(self) -> dict[str, int | bool | None]:
        """The options a reused model must have been computed with."""
        return {"max_size": self.max_size, "max_features": self.max_features,
                "exhaustive_limit": self.exhaustive_limit, "overlap": self.overlap,
                "refine_principal_point": self.refine_principal_point}


@dataclass
class SfmReport:
    """What a run found.

    Attributes:
        photos: every input photo (M).
        registered: names of the registered working copies (N of M), sorted.
        points: number of sparse 3D points.
        reprojection_px: mean reprojection error in working-copy pixels.
        stage_seconds: wall time per stage (photos, features, matching, mapping, writing).
        source_size: the most common oriented photo size (width, height) in pixels.
        working_size: the size of every working copy (width, height) in pixels.
        matcher: "exhaustive" or "sequential".
        cameras: number of camera groups (shared intrinsics).
        exif_focal: number of photos with an EXIF focal length.
    """

    photos: list[Photo]
    registered: list[str]
    points: int
    reprojection_px: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    source_size: tuple[int, int] = (0, 0)
    working_size: tuple[int, int] = (0, 0)
    matcher: str = "exhaustive"
    cameras: int = 1
    exif_focal: int = 0

    @property
    def downscale(self) -> float:
        """Working-copy pixels per photo pixel along the longest side (1 = full size)."""
        return max(self.working_size) / max(max(self.source_size), 1)

    def summary_lines(self) -> list[str]:
        """Plain-text lines for a terminal summary."""
        m, n = len(self.photos), len(self.registered)
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.stage_seconds.items())
        sw, sh = self.source_size
        ww, wh = self.working_size
        return [(f"registered {n} of {m} photos ({100 * n / max(m, 1):.0f} %), {self.points:,} points, "
                 f"mean reprojection error {self.reprojection_px:.2f} px"),
                (f"photos {sw}x{sh} -> working copies {ww}x{wh} (x{self.downscale:.2f}), {self.cameras} camera(s), "
                 f"EXIF focal length in {self.exif_focal}, {self.matcher} matching"),
                f"time: {times}"]


def _stage(times: dict[str, float], name: str, t0: float) -> float:
    """Record ``name``'s wall time since ``t0`` in ``times``; return now (``time.perf_counter`` seconds)."""
    now = time.perf_counter()
    times[name] = now - t0
    return now


def prepare_photos(photo_folder: Path, images: Path, options: SfmOptions,
                   progress: Progress) -> tuple[list[WorkingImage], tuple[int, int], tuple[int, int]]:
    """Stage 1: read the photos' headers and write their working copies into ``images``.

    Returns:
        the working images, the working size and the most common oriented photo size (pixels).

    Raises:
        InputError: too few photos, or an unreadable one (names it).
    """
    paths = list_photos(photo_folder)
    if len(paths) < options.min_registered:
        raise InputError(f"only {len(paths)} photos; structure-from-motion needs at least {options.min_registered}",
                         photo_folder, "add photos of the subject from more viewpoints (20 to 100 work well)")
    photos = []
    for k, p in enumerate(paths):  # a loop over files: headers only
        photos.append(inspect_photo(p))
        progress.update("sfm: reading photos", (k + 1) / (2 * len(paths)), p.name)
    width, height = working_size(photos, options.max_size)
    plan = plan_working_images(photos, width, height)
    images.mkdir(parents=True, exist_ok=True)
    for k, item in enumerate(plan):  # a loop over files
        write_working_image(item, images, width, height)
        progress.update("sfm: reading photos", 0.5 + (k + 1) / (2 * len(plan)), item.photo.name)
    return plan, (width, height), common_size(photos)


def extract_features(database: Path, images: Path, plan: list[WorkingImage], size: tuple[int, int],
                     options: SfmOptions, progress: Progress) -> None:
    """Stage 2: SIFT features on the CPU, one shared SIMPLE_RADIAL camera per camera group.

    Photos go to pycolmap :data:`_CHUNK` at a time (for progress); a group's first call creates its
    camera (seeded with the EXIF focal length when known), the following ones reuse it.
    """
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = options.threads
    extraction.max_image_size = max(size)
    extraction.sift.max_num_features = options.max_features
    done = 0
    for g in sorted({w.group for w in plan}):  # a loop over camera groups (usually one)
        members = [w.name for w in plan if w.group == g]
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "SIMPLE_RADIAL"
        focal = next(w.focal_px for w in plan if w.group == g)
        if focal is not None:
            reader.camera_params = f"{focal!r},{size[0] / 2!r},{size[1] / 2!r},0"
        for start in range(0, len(members), _CHUNK):  # a loop over chunks of photos
            progress.update("sfm: features", done / len(plan), f"{done} of {len(plan)} photos")
            chunk = members[start:start + _CHUNK]
            pycolmap.extract_features(database, images, image_names=chunk, camera_mode=pycolmap.CameraMode.SINGLE,
                                      reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
            if start == 0:
                with pycolmap.Database.open(str(database)) as db:
                    reader.existing_camera_id = db.read_image_with_name(chunk[0]).camera_id
            done += len(chunk)
    progress.update("sfm: features", 1.0, f"{len(plan)} photos")


def match_features(database: Path, n_images: int, options: SfmOptions, progress: Progress) -> str:
    """Stage 3: match features and verify the pairs' two-view geometry.

    Returns:
        the matcher used: "exhaustive" or "sequential".
    """
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = options.threads
    if n_images <= options.exhaustive_limit:
        progress.update("sfm: matching", None, f"all {n_images * (n_images - 1) // 2:,} pairs")
        pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
        return "exhaustive"
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = options.overlap
    pairing.quadratic_overlap = True
    progress.update("sfm: matching", None, f"sequential, {options.overlap} neighbours each")
    pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu)
    return "sequential"


def map_images(database: Path, images: Path, scratch: Path, n_images: int, options: SfmOptions,
               progress: Progress) -> pycolmap.Reconstruction | None:
    """Stage 4: incremental mapping with bundle adjustment; the model with the most registered images, or None."""
    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = options.threads
    mapping.random_seed = options.seed
    mapping.min_model_size = min(options.min_registered, 10)
    mapping.extract_colors = True
    refine = options.refine_principal_point
    mapping.ba_refine_principal_point = n_images >= PRINCIPAL_POINT_MIN_PHOTOS if refine is None else refine
    count = [0]

    def next_image() -> None:
        count[0] += 1
        progress.update("sfm: mapping", min(count[0] / n_images, 1.0), f"{count[0]} of {n_images} photos registered")

    progress.update("sfm: mapping", 0.0, f"0 of {n_images} photos registered")
    scratch.mkdir(parents=True, exist_ok=True)
    models = pycolmap.incremental_mapping(database, images, scratch, options=mapping, next_image_callback=next_image)
    if not models:
        return None
    return max(models.values(), key=lambda r: (r.num_reg_images(), r.num_points3D()))


def check_registration(photo_folder: Path, n_photos: int, n_registered: int, options: SfmOptions) -> None:
    """Refuse a model that registered too few photos.

    Raises:
        InputError: fewer than ``min_fraction`` of ``n_photos`` or fewer than ``min_registered`` registered.
    """
    need = max(options.min_registered, math.ceil(options.min_fraction * n_photos))
    if n_registered < need:
        raise InputError(f"structure-from-motion registered only {n_registered} of {n_photos} photos "
                         f"({n_photos - n_registered} failed; at least {need} must register)", photo_folder, _TRY)


def run_sfm(photo_folder: str | Path, folder: str | Path, options: SfmOptions | None = None,
            progress: Progress = NULL_PROGRESS) -> SfmReport:
    """Structure-from-motion of the photos in ``photo_folder``, written into the empty folder ``folder``.

    Args:
        photo_folder: the photos (read only).
        folder: an existing, empty folder (the caller renames it into place when this returns).
        options: see :class:`SfmOptions` (None: the defaults).
        progress: stage reports "sfm: reading photos", "sfm: features", "sfm: matching", "sfm: mapping".

    Returns:
        the run's report; ``folder`` holds ``cameras.txt``, ``images.txt``, ``points3D.txt`` (and
        pycolmap's rig and frame files) and ``images/`` with the registered working copies.

    Raises:
        InputError: too few or unreadable photos, or too few registered (the message says what to try).
    """
    level = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 3  # pycolmap's log lines are for developers; failures come back as InputError
    try:
        return _run(Path(photo_folder), Path(folder), options or SfmOptions(), progress)
    finally:
        pycolmap.logging.minloglevel = level


def _run(src: Path, out: Path, options: SfmOptions, progress: Progress) -> SfmReport:
    """The body of :func:`run_sfm`."""
    images, database = out / IMAGES, out / DATABASE
    database.mkdir()
    times: dict[str, float] = {}
    pycolmap.set_random_seed(options.seed)
    t = time.perf_counter()
    plan, size, common = prepare_photos(src, images, options, progress)
    t = _stage(times, "photos", t)
    db = database / "database.db"
    extract_features(db, images, plan, size, options, progress)
    t = _stage(times, "features", t)
    matcher = match_features(db, len(plan), options, progress)
    t = _stage(times, "matching", t)
    model = map_images(db, images, database / "models", len(plan), options, progress)
    t = _stage(times, "mapping", t)
    n_reg = 0 if model is None else int(model.num_reg_images())
    check_registration(src, len(plan), n_reg, options)
    assert model is not None
    progress.update("sfm: writing", None, f"{n_reg} cameras, {model.num_points3D():,} points")
    model.write_text(out)
    registered = sorted(model.image(i).name for i in model.reg_image_ids())
    keep = set(registered)
    for w in plan:  # a loop over files: drop the copies of photos that did not register
        if w.name not in keep:
            (images / w.name).unlink(missing_ok=True)
    shutil.rmtree(database, ignore_errors=True)
    _stage(times, "writing", t)
    return SfmReport(photos=[w.photo for w in plan], registered=registered, points=int(model.num_points3D()),
                     reprojection_px=float(model.compute_mean_reprojection_error()), stage_seconds=times,
                     source_size=common, working_size=size, matcher=matcher,
                     cameras=len({w.group for w in plan}), exif_focal=sum(w.focal_px is not None for w in plan))


__all__ = ["DATABASE", "IMAGES", "SfmOptions", "SfmReport", "check_registration", "run_sfm"]
