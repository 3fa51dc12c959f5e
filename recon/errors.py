"""User-facing errors.

Every problem a user can fix (bad file, bad option, bad config) is raised as a
:class:`ReconError`. Front ends print ``str(error)`` as one line and exit with
status 2; no traceback is shown and no output file is written.
"""

from __future__ import annotations

import os


class ReconError(Exception):
    """An error the user can fix.

    Args:
        problem: what is wrong, in a few words ("truncated binary body").
        path: the file (or config key source) concerned, if any.
        fix: what the user should do about it ("re-export the scan as PLY").
    """

    exit_code = 2

    def __init__(self, problem: str, path: str | os.PathLike | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}: ")
        parts.append(self.problem.rstrip("."))
        if self.fix:
            parts.append(f". Fix: {self.fix.rstrip('.')}")
        return "".join(parts).replace("\n", " ")


class InputError(ReconError):
    """An input file is missing, unreadable, corrupt or unusable."""


class ConfigError(ReconError):
    """A configuration key, value or preset is invalid."""


class DependencyError(ReconError):
    """An optional dependency is missing; the message names the package to install."""


class EmptyResultError(ReconError):
    """A backend produced nothing (for example an empty mesh) and refuses to write it."""
