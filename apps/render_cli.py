"""``recon render``: posed test images of a mesh, written as a multi-format camera folder.

:func:`register` adds the command to a typer app; the heavy imports happen when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recon.errors import ConfigError
from recon.io.outputs import check_output_folder

from recon_apps.checks import check_range


#: the most views, pixels per side, rays per pixel side, and pixels in all views together (the
#: renderer keeps 32 bytes per pixel of every view: 128M pixels is 4 GB) a render may ask for
MAX_VIEWS, MAX_SIZE, MAX_SUPERSAMPLE, MAX_TOTAL_PIXELS = 10_000, 4096, 8, 128 * 1024 * 1024
#: the most rays cast for one view at once (size^2 * supersample^2; 16M rays is about 2 GB of work arrays)
MAX_RAYS_PER_VIEW = 4096 * 4096


def check_image_options(views: int, size: int, fov: float, seed: int, supersample: int) -> None:
    """Ranges of the render options, and the total image memory they imply, before any work.

    Raises:
        ConfigError: a value out of range, or views x size^2 or size^2 x supersample^2 too large.
    """
    check_range("--views", views, 1, MAX_VIEWS, "48")
    check_range("--size", size, 2, MAX_SIZE, "128")
    check_range("--fov", fov, 1.0, 170.0, "40")
    check_range("--seed", seed, 0, 2**32 - 1, "0")
    check_range("--supersample", supersample, 1, MAX_SUPERSAMPLE, "2")
    if views * size * size > MAX_TOTAL_PIXELS:
        raise ConfigError(f"{views} views of {size}x{size} pixels need {32 * views * size * size / 2**30:.0f} GB",
                          None, f"render fewer or smaller views (views x size^2 <= {MAX_TOTAL_PIXELS:,})")
    if size * size * supersample * supersample > MAX_RAYS_PER_VIEW:
        raise ConfigError(f"--size {size} with --supersample {supersample} casts too many rays per view", None,
                          f"keep size x supersample <= {int(MAX_RAYS_PER_VIEW ** 0.5)}")


def _check_folder(output: Path, inputs: list[Path | None], force: bool) -> Path:
    """The output folder: not the current folder, holding no input, writable, empty unless ``force``."""
    out = check_output_folder(output, inputs)
    if out.is_dir() and any(out.iterdir()) and not force:  # fail before the (slow) rendering
        raise ConfigError("output folder exists and is not empty", out, "choose another folder or pass --force")
    return out


def render(mesh: Path, output: Path, views: int = 48, size: int = 128, seed: int = 0, fov: float = 40.0,
           supersample: int = 2, force: bool = False) -> Path:
    """Render ``mesh`` into the folder ``output`` (see :func:`recon.render.write_render_folder`).

    Raises:
        ConfigError: bad option values, or a non-empty output folder without ``force``.
        InputError: the mesh cannot be read.
    """
    check_image_options(views, size, fov, seed, supersample)
    out = _check_folder(output, [mesh], force)
    from recon.io import load_mesh
    from recon.render import render_views, write_render_folder

    result = render_views(load_mesh(mesh), n_views=views, size=size, seed=seed, fov_deg=fov, supersample=supersample)
    result.info["mesh"] = str(mesh)
    return write_render_folder(result, out, force=force, seed=seed)


def render_gaussians(gaussians: Path, output: Path, views: int = 24, size: int = 128, seed: int = 0,
                     fov: float = 40.0, background: str = "white", cameras: Path | None = None,
                     force: bool = False, device: str = "cpu") -> tuple[Path, float]:
    """Render saved Gaussians (``--save-gaussians``) into ``output``: RGBA PNGs plus transforms.json.

    The cameras are ``views`` cameras on a sphere framing the Gaussians (seeded), or those of a
    posed-image folder ``cameras`` (its intrinsics scaled to ``size`` on the longest side).

    Returns:
        The folder and the median seconds per rendered frame.

    Raises:
        ConfigError: bad option values or a non-empty folder without ``force``; InputError: unreadable files.
    """
    import time

    import numpy as np
    import torch

    from recon.backends.gvkf.gaussians import GaussianSet
    from recon.backends.gvkf.rasterizer import rasterize
    from recon.errors import InputError
    from recon.io.cameras.nerf import write_transforms
    from recon.render.folder import _png, atomic_folder
    from recon.render.rig import sphere_rig

    check_image_options(views if cameras is None else 1, size, fov, seed, 1)
    bg = {"white": 1.0, "black": 0.0}.get(background)
    if bg is None:
        raise ConfigError(f"unknown --background {background!r}", None, "use white or black")
    out = _check_folder(output, [gaussians, cameras], force)
    try:
        g = GaussianSet.load(gaussians, device=device)
    except (OSError, ValueError, KeyError):
        raise InputError("not a saved Gaussians file", gaussians,
                         "write one with `recon reconstruct DIR --backend gvkf --save-gaussians G.npz`") from None
    if cameras is not None:
        from recon.io.cameras import load_views
        from recon.io.images import scale_cameras, target_size

        cams = load_views(cameras).cameras
        cams = scale_cameras(cams, *target_size(cams.width, cams.height, size))
    else:
        means = g.means.detach().cpu().numpy().astype(np.float64)
        centre = np.median(means, axis=0)
        radius = float(np.quantile(np.linalg.norm(means - centre, axis=1), 0.99)) * 1.1
        cams = sphere_rig(centre, radius, views, size, fov_deg=fov, seed=seed)
    from recon.device import torch_threads

    times = []
    with atomic_folder(out, force) as tmp, torch_threads(1, torch.device(device)):
        (tmp / "images").mkdir()
        names = []
        with torch.no_grad():
            for c in range(len(cams)):  # loop over views
                t0 = time.perf_counter()
                r = rasterize(g, torch.as_tensor(cams.K[c], dtype=torch.float32, device=device),
                              torch.as_tensor(cams.cam_to_world[c], dtype=torch.float32, device=device),
                              cams.width, cams.height, background=torch.full((3,), bg, device=device),
                              tile_size=4, compute_extras=False)
                times.append(time.perf_counter() - t0)
                rgba = torch.cat([r.rgb, r.alpha[..., None]], -1).cpu().numpy()
                names.append(f"images/r_{c:03d}.png")
                _png(tmp / names[-1], rgba)
        write_transforms(tmp / "transforms.json", cams, names,
                         extra={"render": {"gaussians": str(gaussians), "count": len(g), "background": background}})
    return out, float(np.median(times))


def register(app: typer.Typer) -> None:
    """Add the ``render`` and ``render-gaussians`` commands to ``app`` (a second call does nothing)."""
    if any(getattr(c, "name", None) == "render" for c in app.registered_commands):
        return

    @app.command("render-gaussians")
    def render_gaussians_command(
        gaussians: Path = typer.Argument(..., help="Gaussians saved by `recon reconstruct DIR --backend gvkf --save-gaussians G.npz`"),
        output: Path = typer.Option(..., "-o", "--output", help="folder to write (images/*.png with alpha, transforms.json)"),
        views: int = typer.Option(24, "--views", help="number of novel views on a sphere around the Gaussians"),
        size: int = typer.Option(128, "--size", help="image width = height in pixels (longest side with --cameras)"),
        seed: int = typer.Option(0, "--seed", help="rotates the viewpoint set"),
        fov: float = typer.Option(40.0, "--fov", help="field of view in degrees"),
        background: str = typer.Option("white", "--background", help="white | black"),
        cameras: Optional[Path] = typer.Option(None, "--cameras", help="render the cameras of this posed-image folder instead"),
        device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
        force: bool = typer.Option(False, "--force", help="replace a non-empty output folder"),
    ) -> None:
        """Render trained Gaussians from new viewpoints (novel views) with the differentiable rasteriser."""
        folder, sec = render_gaussians(gaussians, output, views=views, size=size, seed=seed, fov=fov,
                                       background=background, cameras=cameras, force=force, device=device)
        typer.echo(f"wrote {folder} ({sec * 1000:.0f} ms per frame, {1.0 / max(sec, 1e-9):.0f} fps)")

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


__all__ = ["register", "render", "render_gaussians"]
