"""``recon info``: describe a point cloud, mesh or posed-image folder as a table (or ``--json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from recon.errors import InputError
from recon.io.formats import describe

from recon_apps.input_files import is_posed_images
from recon_apps.terminal import stdout


def format_value(value: Any) -> str:
    """One table cell: yes/no, thousands separators, 6 significant digits, tuples of numbers, '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "(" + ", ".join(format_value(v) for v in value) + ")"
        return ", ".join(format_value(v) for v in value)
    return str(value)


def info_rows(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``(key, text)`` rows of a :func:`recon.io.describe` dict: nested dicts flattened into dotted keys
    (``details.elements.vertex``), bounds split into ``bounds min`` / ``bounds max``."""
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            rows += info_rows(v, f"{key}.")
        elif k == "bounds" and isinstance(v, (list, tuple)) and len(v) == 2:
            rows += [(f"{key} min", format_value(v[0])), (f"{key} max", format_value(v[1]))]
        else:
            rows.append((key.replace("_", " "), format_value(v)))
    return rows


def describe_input(input: Path) -> dict[str, Any]:
    """:func:`recon.io.describe` of a file, or :func:`recon.io.cameras.describe_folder` of a posed-image set."""
    if is_posed_images(input):
        # the camera readers import PIL: +0.3 s of start-up that the other commands should not pay
        from recon.io.cameras import describe_folder, detect_format

        if input.is_dir():
            try:
                detect_format(input)
            except InputError:
                return describe_photos(input)
        return describe_folder(input)
    return describe(input)


def describe_photos(folder: Path) -> dict[str, Any]:
    """A folder of photos without a camera file: how many, and that structure-from-motion will pose them.

    Raises:
        InputError: no photos either (the one-line error of :func:`recon.sfm.images.list_photos`).
    """
    # recon.sfm loads pycolmap (+0.3 s), only for this kind of folder
    from recon.sfm.images import list_photos

    photos = list_photos(folder)
    return {"kind": "photos without cameras", "photos": len(photos),
            "cameras": "none: `recon reconstruct` runs structure-from-motion first "
                       "(or `recon sfm FOLDER -o MODEL` for the cameras alone)"}


def for_table(d: dict[str, Any]) -> dict[str, Any]:
    """The describe dict with words where a bare value would mislead: a mesh without stored normals."""
    attributes = d.get("attributes")
    if d.get("kind") == "mesh" and isinstance(attributes, dict) and attributes.get("normals") is False:
        return {**d, "attributes": {**attributes, "normals": "not stored (computed from the faces when used)"}}
    return d


def info(
    input: Path = typer.Argument(..., help="point cloud, mesh or posed-image folder"),
    json_out: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Describe a file (counts, bounds, attributes, a guess of its units) or a posed-image folder."""
    d = describe_input(input)
    if json_out:
        stdout.print_json(json.dumps(d, default=str))
        return
    table = Table(title=escape(str(input)), show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, text in info_rows(for_table(d)):
        table.add_row(escape(key), escape(text))
    stdout.print(table)


def register(app: typer.Typer) -> None:
    """Add ``info`` to ``app`` (a second call does nothing)."""
    if not any(getattr(c, "name", None) == "info" for c in app.registered_commands):
        app.command("info")(info)


__all__ = ["describe_input", "for_table", "format_value", "info", "info_rows", "register"]
