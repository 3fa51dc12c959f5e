"""The one summary of a reconstruction run: the ``--json`` object and the 'wrote ...' lines.

Both ``recon reconstruct`` paths (point clouds and posed images) build a :class:`RunSummary`
from their result and hand it to :func:`print_summary`, so the two always report the same
keys in the same words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from recon_apps.terminal import console, stdout


@dataclass
class Written:
    """One more file a run wrote besides the mesh, and what it holds (one phrase, plain text)."""

    path: Path
    what: str


@dataclass
class RunSummary:
    """What one ``recon reconstruct`` run did.

    Attributes:
        input: the input file or folder.
        output: the mesh written.
        backend: the backend's registry name.
        source: what the input held, e.g. ``{"points": 25000}`` or ``{"views": 48}``.
        result: the pipeline's result (``mesh``, ``timings`` in seconds, ``notes``, ``config``, ``field``).
        seconds: wall time of the whole run, seconds.
        extra: more JSON keys (``checkpoints``, ``solver``).
        after_output: words after the mesh line, e.g. ``(checkpoints in X)``.
        written: other files written, each reported on its own 'wrote' line.
    """

    input: Path
    output: Path
    backend: str
    source: dict[str, int]
    result: Any
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    after_output: str = ""
    written: list[Written] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: input, output, backend, the source counts, vertices, faces,
        seconds, timings (seconds per stage), notes, config, then ``extra``."""
        r = self.result
        return {"input": str(self.input), "output": str(self.output), "backend": self.backend, **self.source,
                "vertices": r.mesh.n_vertices, "faces": r.mesh.n_faces, "seconds": round(self.seconds, 3),
                "timings": {k: round(v, 3) for k, v in r.timings.items()}, "notes": r.notes, "config": r.config,
                **self.extra}


def solver_info(result: Any) -> Any:
    """The kernel solver's report (iterations, residual, converged) as a dict, or None for other backends."""
    solver = getattr(result.field, "solver_info", None)
    if solver is None:
        return None
    return solver if isinstance(solver, dict) else getattr(solver, "__dict__", str(solver))


def print_summary(summary: RunSummary, *, json_out: bool, quiet: bool) -> None:
    """Print the JSON object on stdout (``json_out``), or the notes and 'wrote' lines on stderr (unless ``quiet``)."""
    if json_out:
        stdout.print_json(json.dumps(summary.to_dict(), default=str))
        return
    if quiet:
        return
    mesh = summary.result.mesh
    counts = ", ".join(f"{n:,} {what}" for what, n in summary.source.items())
    for note in summary.result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    tail = f" {summary.after_output}" if summary.after_output else ""
    console.print(f"[green]wrote[/green] {escape(str(summary.output))}: {mesh.n_vertices:,} vertices, "
                  f"{mesh.n_faces:,} faces from {counts} with '{escape(summary.backend)}' in "
                  f"{summary.seconds:.1f} s{escape(tail)}", highlight=False)
    for w in summary.written:
        console.print(f"[green]wrote[/green] {escape(str(w.path))}: {escape(w.what)}", highlight=False)


__all__ = ["RunSummary", "Written", "print_summary", "solver_info"]
