"""``recon render``: posed test images of a mesh, written as a multi-format camera folder.

:func:`register` adds the command to a typer app; the heavy imports happen when it runs.
"""

from __future__ import annotations

from pathlib import Path
import typer

from recon.errors import ConfigError


def render(mesh: Path, output: Path, views: int = 48, size: int = 128, seed: int = 0, fov: float = 40.0,
           supersample: int = 2, force: bool = False) -> Path:
    """Render ``mesh`` into the folder ``output`` (see :func:`recon.render.write_render_folder`).

    Raises:
        ConfigError: bad option values, or a non-empty output folder without ``force``.
        InputError: the mesh cannot be read.
    """
    if views < 1:
        raise ConfigError(f"--views {views} must be at least 1", None, "e.g. --views 48")
    if size < 2:
        raise ConfigError(f"--size {size} is too small", None, "e.g. --size 128")
    if not 1.0 <= fov <= 170.0:
        raise ConfigError(f"--fov {fov} is out of range", None, "give a field of view between 1 and 170 degrees")
    if supersample < 1:
        raise ConfigError(f"--supersample {supersample} must be at least 1", None, "e.g. --supersample 2")
    out = Path(output)
    if out.is_dir() and any(out.iterdir()) and not force:  # fail before the (slow) rendering
        raise ConfigError("output folder exists and is not empty", out, "choose another folder or pass --force")
    from recon.io import load_mesh
    from recon.render import render_views, write_render_folder

    result = render_views(load_mesh(mesh), n_views=views, size=size, seed=seed, fov_deg=fov, supersample=supersample)
    result.info["mesh"] = str(mesh)
    return write_render_folder(result, out, force=force, seed=seed)


def register(app: typer.Typer) -> None:
    """Add the ``render`` command to ``app`` (a second call does nothing)."""
    if any(getattr(c, "name", None) == "render" for c in app.registered_commands):
        return

    @app.command("render")
    def render_command(
        mesh: Path = typer.Argument(..., help="mesh to render (.ply .obj .stl .off .glb .gltf)"),
        output: Path = typer.Option(..., "-o", "--output", help="folder to write (transforms.json, sparse/0, cameras.npz)"),
        views: int = typer.Option(48, "--views", help="number of views, spread over the whole sphere"),
        size: int = typer.Option(128, "--size", help="image width = height in pixels"),
        seed: int = typer.Option(0, "--seed", help="rotates the viewpoint set; same seed, same images"),
        fov: float = typer.Option(40.0, "--fov", help="field of view in degrees"),
        supersample: int = typer.Option(2, "--supersample", help="s x s rays per pixel for antialiasing"),
        force: bool = typer.Option(False, "--force", help="replace a non-empty output folder"),
    ) -> None:
        """Render a mesh from cameras on a sphere: RGBA images with a procedural texture, depth, normals,
        and the poses as transforms.json, a COLMAP text model and a cameras.npz."""
        folder = render(mesh, output, views=views, size=size, seed=seed, fov=fov, supersample=supersample, force=force)
        typer.echo(f"wrote {views} views of {size}x{size} to {folder}")


__all__ = ["register", "render"]
