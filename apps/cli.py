"""The ``recon`` command line: the typer app, its commands and :func:`main`.

Every command lives in a module of its own (``recon_apps.<command>_cli``) with a ``register``
function; this module builds the app from them. User mistakes raise
:class:`recon.errors.ReconError`; :func:`main` prints them as one line on stderr and exits with
status 2, without a traceback and without writing any output file.

Start-up: ``python -m recon_apps.cli --help`` takes about 0.35 s on the 2-core CPU machine
(typer, rich, numpy and recon.io; ``python -X importtime``). Imported at module top, torch would add
2 s, open3d 1 s, recon.pipeline 0.7 s, recon.normals 0.4 s, recon.eval (scipy) 0.4 s and
recon.io.cameras 0.3 s, so those (and pyvista, dask) are imported inside the commands that use
them, each with a comment; everything else is imported at module top.
"""

from __future__ import annotations

import typer

from recon_apps import backends_cli, config_cli, eval_cli, info_cli, normals_cli, reconstruct_cli, train_normals_cli
from recon_apps.batch_cli import register as register_batch
from recon_apps.entry import INTERRUPTED, run
from recon_apps.render_cli import register as register_render
from recon_apps.sfm_cli import register as register_sfm
from recon_apps.train_kernel_cli import register as register_train_kernel
from recon_apps.viewer.cli import register as register_view

__all__ = ["INTERRUPTED", "app", "main", "train_app"]

app = typer.Typer(
    name="recon",
    help="3D surface reconstruction from point clouds (and posed images) with pluggable backends.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
train_app = typer.Typer(help="Train the project's learned components (resumable, seeded).", no_args_is_help=True)

reconstruct_cli.register(app)
normals_cli.register(app)
info_cli.register(app)
eval_cli.register(app)
backends_cli.register(app)
config_cli.register(app)
app.add_typer(train_app, name="train")
register_view(app)
register_render(app)
register_sfm(app)
register_batch(app)
register_train_kernel(train_app)
train_normals_cli.register(train_app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``recon``: run the app; user errors are one line and exit status 2 (see
    :func:`recon_apps.entry.run`)."""
    run(app, argv)


if __name__ == "__main__":
    main()
