"""``recon train normals``: train the HDFE normal-estimation head (resumable, seeded)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from recon.errors import ConfigError

from recon_apps.terminal import console


def train_normals(
    config: Path = typer.Option(Path("configs/train/normals-hdfe.yaml"), "--config", "-c", help="training config (YAML)"),
    fresh: bool = typer.Option(False, "--fresh", help="ignore an existing checkpoint and start over"),
) -> None:
    """Train the HDFE normal-estimation head; Ctrl-C checkpoints, re-running resumes."""
    # the trainer imports torch: +2 s of start-up that `recon --help` should not pay
    from recon.normals.hdfe.train import train

    if not config.is_file():
        raise ConfigError("training config not found", str(config), "pass --config configs/train/normals-hdfe.yaml")
    out = train(str(config), resume=not fresh,
                log=lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False))
    console.print(f"[green]wrote[/green] {escape(str(out))}", highlight=False)


def register(train_app: typer.Typer) -> None:
    """Add ``normals`` to the ``recon train`` group (a second call does nothing)."""
    if not any(getattr(c, "name", None) == "normals" for c in train_app.registered_commands):
        train_app.command("normals")(train_normals)


__all__ = ["register", "train_normals"]
