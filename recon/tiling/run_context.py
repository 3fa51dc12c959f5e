"""What the stages of one batch run share: :class:`BatchRun`, the :class:`BatchSummary` it fills,
and the progress :class:`Bars`.

:func:`recon.tiling.runner.run_batch` builds one :class:`BatchRun` when the Dask client is up and
fills it as the run goes: the lattice and plan key after pass 1, the manifest once the job folder
exists. Every stage (pass 1, pass 2, the tiles, stitching) is a function of the run and its own
few inputs. Nothing here is sent to the workers: tasks take small plain objects only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from recon.tiling.config import BatchConfig
from recon.tiling.lattice import Lattice
from recon.tiling.manifest import Manifest

Log = Callable[[str], None]
"""Receives one-line status messages."""

TileCallback = Callable[[str, str, dict], None]
"""``on_tile(phase, tile_id, result)``, called on the driver when a tile's fit or mesh has finished."""


@dataclass
class BatchSummary:
    """What a batch run did (also printed as JSON by ``recon batch --json``)."""

    output: str
    mesh: str | None = None
    index: str | None = None
    preview: str | None = None
    points: int = 0
    dropped: int = 0
    tiles: int = 0
    fitted: int = 0
    done: int = 0
    empty: int = 0
    reused_fits: int = 0
    reused_meshes: int = 0
    failed: list[dict] = field(default_factory=list)
    vertices: int = 0
    faces: int = 0
    welded: int = 0
    lattice: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    driver_rss_mib: float = 0.0
    dashboard: str | None = None

    @property
    def ok(self) -> bool:
        """No tile failed."""
        return not self.failed

    def to_dict(self) -> dict:
        """The summary as plain JSON-serialisable values."""
        return asdict(self)


class Bars:
    """Rich progress bars (tiles fitted / meshed, points) or nothing."""

    def __init__(self, console: Any, enabled: bool):
        self.p: Progress | None = None
        if enabled and console is not None:
            self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                              disable=not console.is_terminal)
            self.p.__enter__()
        self.tasks: dict[str, Any] = {}

    def add(self, name: str, total: int, info: str = "") -> None:
        """Start a bar of ``total`` steps."""
        if self.p is not None:
            self.tasks[name] = self.p.add_task(name, total=total, info=info)

    def advance(self, name: str, n: int = 1, info: str | None = None) -> None:
        """Advance bar ``name`` by ``n`` steps (and replace its info text when given)."""
        if self.p is not None and name in self.tasks:
            kw = {"info": info} if info is not None else {}
            self.p.update(self.tasks[name], advance=n, **kw)

    def close(self) -> None:
        """Stop drawing (idempotent)."""
        if self.p is not None:
            self.p.__exit__(None, None, None)
            self.p = None


@dataclass
class BatchRun:
    """One batch run, as every stage sees it.

    Attributes:
        cfg: the options.
        out: the job folder (absolute).
        client: the Dask client.
        bars: progress bars.
        summary: the summary the stages fill in.
        log: one-line status messages.
        on_tile: called as tiles finish (None: nobody listens).
        lattice: the tile lattice (set once pass 1 has planned it).
        plan_key: the plan's hash (set with ``lattice``).
        man: the job manifest (set once the job folder exists).
    """

    cfg: BatchConfig
    out: Path
    client: Any
    bars: Bars
    summary: BatchSummary
    log: Log
    on_tile: TileCallback | None = None
    lattice: Lattice | None = None
    plan_key: str = ""
    man: Manifest | None = None

    def planned(self) -> tuple[Lattice, Manifest]:
        """The lattice and the manifest, for the stages after pass 1.

        Raises:
            RuntimeError: called before pass 1 or before the manifest is open (a programming error).
        """
        if self.lattice is None or self.man is None:
            raise RuntimeError("batch stage called before the plan and the manifest exist")
        return self.lattice, self.man


__all__ = ["Bars", "BatchRun", "BatchSummary", "Log", "TileCallback"]
