"""The terminal side of the commands: the two rich consoles and the progress reporter.

Messages, notes and progress go to stderr (:data:`console`); results that a script may
parse (``--json`` summaries, ``recon info`` tables) go to stdout (:data:`stdout`).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

#: progress, notes, 'wrote ...' lines and errors
console = Console(stderr=True)
#: machine-readable results (JSON) and tables
stdout = Console()


class RichProgress:
    """A :class:`recon.progress.Progress` shown as a rich status line with a bar when fractions are known.

    On a terminal the current stage is one transient line with a bar; otherwise (a pipe or a
    log file) each new stage prints one line with the elapsed seconds, and a long stage (training,
    a solve) prints another line with its fraction and info at most every :attr:`log_every` seconds.
    """

    #: seconds between two log lines of the same stage when the output is not a terminal
    log_every = 30.0

    def __init__(self, enabled: bool = True) -> None:
        self.quiet = not enabled
        self.enabled = enabled and console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None
        self._stage: str | None = None
        self._t0 = time.perf_counter()
        self._last_line = self._t0

    def __enter__(self) -> "RichProgress":
        if self.enabled:
            self._progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                                      transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
        """Show ``stage`` (with ``fraction`` in [0, 1] as a bar when known, ``info`` as text)."""
        if self.quiet:
            return
        if self._progress is None:
            now = time.perf_counter()
            if stage != self._stage or now - self._last_line >= self.log_every:
                done = f" {100 * min(max(fraction, 0.0), 1.0):.0f} %" if fraction is not None else ""
                console.print(f"[dim]{now - self._t0:7.1f}s[/dim] {escape(stage)}{done}"
                              + (f" ({escape(info)})" if info else ""), highlight=False, soft_wrap=True)
                self._stage = stage
                self._last_line = now
            return
        if stage != self._stage or self._task is None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(escape(stage), total=None if fraction is None else 1.0,
                                                 info=escape(info or ""))
            self._stage = stage
        if fraction is not None:
            self._progress.update(self._task, total=1.0, completed=min(max(fraction, 0.0), 1.0),
                                  info=escape(info or ""))
        elif info is not None:
            self._progress.update(self._task, info=escape(info))


__all__ = ["RichProgress", "console", "stdout"]
