"""Running a typer app as a command: user errors as one line on stderr, and the exit statuses.

:func:`run` is the body of every ``main`` (``recon`` itself and the single-command entry points
such as ``python -m recon_apps.batch_cli``), so each reports errors the same way.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer
from rich.markup import escape

from recon.errors import ReconError

from recon_apps.terminal import console

#: the exit status of a run stopped with Ctrl-C (128 + SIGINT)
INTERRUPTED = 130
#: the exit status of a usage error (bad option, bad input), as click uses it
USAGE_ERROR = 2


def _interrupted() -> None:
    console.print("[bold red]interrupted[/bold red]: no output was written", highlight=False)


def run(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run ``app`` with ``argv`` (None: ``sys.argv``), turning user errors into one line and exit status 2.

    Raises:
        SystemExit: with the command's non-zero status, 2 for user errors, 130 for Ctrl-C.
    """
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # worker processes (Dask) inherit this
    if not sys.warnoptions:  # numeric RuntimeWarnings are not for users; `python -W` still shows them
        warnings.simplefilter("ignore")
    try:
        code = app(args=argv, standalone_mode=False)  # typer.Exit(n) comes back as n here
        if code == INTERRUPTED:  # typer turns Ctrl-C into Exit(130)
            _interrupted()
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except ReconError as e:
        console.print(f"[bold red]error:[/bold red] {escape(e.one_line())}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _interrupted()
        sys.exit(INTERRUPTED)
    except Exception as e:  # click's own exceptions (typer vendors click, so match by name)
        names = {c.__name__ for c in type(e).__mro__}
        if "Abort" in names:
            _interrupted()
            sys.exit(INTERRUPTED)
        if "Exit" in names and hasattr(e, "exit_code"):
            sys.exit(e.exit_code)
        if "ClickException" in names:
            msg = e.format_message()
            if not msg.strip():  # `recon` alone: help was printed
                sys.exit(USAGE_ERROR)
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            console.print(f"[bold red]error:[/bold red] {escape(msg + hint)}", highlight=False, soft_wrap=True)
            sys.exit(USAGE_ERROR)
        raise


__all__ = ["INTERRUPTED", "USAGE_ERROR", "run"]
