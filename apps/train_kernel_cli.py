"""``recon train kernel``: train the learned neural kernel (resumable, seeded).

The lead wires :func:`register` into ``apps/cli.py`` (``register(train_app)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(train_app: typer.Typer) -> None:
    """Add the ``kernel`` command to the ``recon train`` group."""

    @train_app.command("kernel")
    def train_kernel(
        config: Path = typer.Option(Path("configs/kernel-train.yaml"), "--config", "-c", help="training config (YAML)"),
        resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint in cache_dir"),
        steps: Optional[int] = typer.Option(None, "--steps", help="total training steps (overrides train.steps)"),
        out: Optional[Path] = typer.Option(None, "--out", help="folder for the weights (default: the config's output)"),
    ) -> None:
        """Train the learned kernel through the sparse solve; Ctrl-C checkpoints, --resume continues."""
        import sys

        from rich.console import Console

        from recon.errors import ConfigError

        console = Console(stderr=True)
        if not config.is_file():
            raise ConfigError("training config not found", str(config), "pass --config configs/kernel-train.yaml")
        if steps is not None and steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {steps}", None, "pass a positive number of steps")
        from recon.backends.kernel.learned.train import train

        command = "recon " + " ".join(sys.argv[1:]) if sys.argv and "train" in sys.argv else \
            f"recon train kernel --config {config}"
        try:
            path = train(str(config), resume=resume, steps=steps, out_dir=None if out is None else str(out),
                         log=lambda line: console.print(line, highlight=False, soft_wrap=True), command=command)
        except SystemExit as e:  # Ctrl-C inside training: checkpoint written
            raise typer.Exit(int(e.code) if isinstance(e.code, int) else 130) from None
        console.print(f"[green]wrote[/green] {path}", highlight=False)
