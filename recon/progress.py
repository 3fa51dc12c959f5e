"""Progress reporting that the library uses without depending on a terminal.

Long-running code calls ``progress.update(stage, fraction)``; the CLI passes a
rich-backed reporter, tests and the Python API get :data:`NULL_PROGRESS`.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
        """Report that ``stage`` is running; ``fraction`` in [0, 1] when known."""
        ...


class _NullProgress:
    def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
        pass


NULL_PROGRESS: Progress = _NullProgress()
