"""``recon train kernel``: train the learned neural kernel (resumable, seeded)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from recon.errors import ConfigError

from recon_apps.terminal import console


def train_kernel(
    config: Path = typer.Option(Path("configs/train/kernel-train.yaml"), "--config", "-c", help="training config (YAML)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the checkpoint in cache_dir"),
    steps: Optional[int] = typer.Option(None, "--steps", help="total training steps (overrides train.steps)"),
    out: Optional[Path] = typer.Option(None, "--out", help="folder for the weights (default: the config's output)"),
) -> None:
    """Train the learned kernel through the sparse solve; Ctrl-C checkpoints, --resume continues."""
    if not config.is_file():
        raise ConfigError("training config not found", str(config), "pass --config configs/train/kernel-train.yaml")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}", None, "pass a positive number of steps")
    # the trainer imports torch: +2 s of start-up that `recon --help` should not pay
    from recon.backends.kernel.learned.train import train

    command = "recon " + " ".join(sys.argv[1:]) if sys.argv and "train" in sys.argv else \
        f"recon train kernel --config {config}"
    try:
        path = train(str(config), resume=resume, steps=steps, out_dir=None if out is None else str(out),
                     log=lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False),
                     command=command)
    except SystemExit as e:  # Ctrl-C inside training: checkpoint written
        raise typer.Exit(int(e.code) if isinstance(e.code, int) else 130) from None
    console.print(f"[green]wrote[/green] {escape(str(path))}", highlight=False)


def register(train_app: typer.Typer) -> None:
    """Add the ``kernel`` command to the ``recon train`` group (a second call does nothing)."""
    if not any(getattr(c, "name", None) == "kernel" for c in train_app.registered_commands):
        train_app.command("kernel")(train_kernel)


__all__ = ["register", "train_kernel"]
