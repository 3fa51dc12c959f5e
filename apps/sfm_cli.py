"""``recon sfm PHOTOS/ -o MODEL/``: structure-from-motion alone, the sparse model written as a folder.

The model folder (COLMAP text model, the photos' working copies in ``images/``, ``sfm.json``) loads
with ``recon view MODEL/`` and ``recon reconstruct MODEL/ -o mesh.ply``. It is written under a
temporary name and renamed when complete, so a failed run leaves nothing behind.
:func:`register` adds the command; pycolmap is imported only when it runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from recon_apps.checks import check_range
from recon_apps.terminal import RichProgress, console

from recon.errors import ConfigError, InputError
from recon.io.outputs import check_output_folder, is_inside

#: the largest working-copy size and feature count the options accept
MAX_SIZE, MAX_FEATURES = 8192, 65536


def check_sfm_locations(photos: Path, output: Path, force: bool) -> Path:
    """Before any work: the photo folder exists; the model folder is not the photo folder, neither holds the
    other, its location is writable, and it is empty unless ``force``.

    Raises:
        InputError: the photo folder is missing or a file.
        ConfigError: the model folder is misplaced, not writable, or not empty without ``force``.
    """
    if not photos.exists():
        raise InputError("photo folder not found", photos, "pass the folder that holds the photos")
    if not photos.is_dir():
        raise InputError("not a folder", photos, "pass the folder that holds the photos, not one photo")
    if is_inside(output, photos):
        raise ConfigError("the model folder would be inside the photo folder", output,
                          "give -o a folder outside the photos, e.g. -o photos.sfm")
    out = check_output_folder(output, [photos])
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError("output folder exists and is not empty", out, "choose another folder or pass --force")
    return out


def sfm(photos: Path, output: Path, *, force: bool = False, max_size: int = 1600, max_features: int = 8192,
        quiet: bool = False) -> list[str]:
    """Run structure-from-motion on ``photos`` into the folder ``output``.

    Returns:
        the summary lines (registered N of M, points, reprojection error, downscale, time per stage).

    Raises:
        ConfigError: bad options or output location (before any work).
        InputError: unreadable photos or too few registered (no output is left).
    """
    check_range("--max-size", max_size, 64, MAX_SIZE, "1600")
    check_range("--max-features", max_features, 256, MAX_FEATURES, "8192")
    out = check_sfm_locations(photos, output, force)
    # pycolmap (+0.3 s) and PIL: only for this command, not for `recon --help`
    from recon.sfm import SfmOptions, solve_model

    t0 = time.perf_counter()
    with RichProgress(enabled=not quiet) as progress:
        report = solve_model(photos, out, SfmOptions(max_size=max_size, max_features=max_features), progress,
                             replace=force)
    return [f"wrote {out} in {time.perf_counter() - t0:.1f} s", *report.summary_lines(),
            f"view it with `recon view {out}`, mesh it with `recon reconstruct {out} -o mesh.ply`"]


def register(app: typer.Typer) -> None:
    """Add the ``sfm`` command to ``app`` (a second call does nothing)."""
    if any(getattr(c, "name", None) == "sfm" for c in app.registered_commands):
        return

    @app.command("sfm")
    def sfm_command(
        photos: Path = typer.Argument(..., help="folder of photos (JPEG, PNG, TIFF...; EXIF focal length and orientation are used)"),
        output: Path = typer.Option(..., "-o", "--output", help="model folder to write (COLMAP text model, images/, sfm.json)"),
        force: bool = typer.Option(False, "--force", help="replace a non-empty output folder"),
        max_size: int = typer.Option(1600, "--max-size", help="longest side of the working copies in pixels (photos are scaled down, never up)"),
        max_features: int = typer.Option(8192, "--max-features", help="SIFT features per photo"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress or summary"),
    ) -> None:
        """Structure-from-motion: camera poses and sparse points from a folder of photos (pycolmap, CPU)."""
        lines = sfm(photos, output, force=force, max_size=max_size, max_features=max_features, quiet=quiet)
        if not quiet:
            for line in lines:
                console.print(line, highlight=False, soft_wrap=True)


__all__ = ["check_sfm_locations", "register", "sfm"]
