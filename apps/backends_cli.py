"""``recon backends``: the reconstruction backends, what each needs and whether it can run here."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from recon.registry import backends as all_backends

from recon_apps.terminal import stdout


def backend_rows() -> list[dict]:
    """One dict per registered backend: name, needs (sorted), available, reason (why not), description."""
    rows = []
    for name, spec in all_backends().items():
        ok, why = spec.available()
        rows.append({"name": name, "needs": sorted(spec.requires), "available": ok, "reason": why,
                     "description": spec.description})
    return rows


def backends(json_out: bool = typer.Option(False, "--json", help="print as JSON")) -> None:
    """List the reconstruction backends, what each needs and whether it can run here."""
    rows = backend_rows()
    if json_out:
        stdout.print_json(json.dumps(rows))
        return
    table = Table(title="backends", title_justify="left")
    for col in ("name", "needs", "runs here", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["name"]), ", ".join(r["needs"]),
                      "yes" if r["available"] else f"no: {escape(r['reason'])}", escape(r["description"]))
    stdout.print(table)


def register(app: typer.Typer) -> None:
    """Add ``backends`` to ``app`` (a second call does nothing)."""
    if not any(getattr(c, "name", None) == "backends" for c in app.registered_commands):
        app.command("backends")(backends)


__all__ = ["backend_rows", "backends", "register"]
