"""``recon view``: look at point clouds and meshes, on screen, as a PNG or in the browser.

:func:`view` is the whole command as a function; :func:`register` adds it to a typer
app. Heavy imports (pyvista, VTK) happen inside :func:`view`, so registering the
command costs nothing at start-up.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import typer

from recon.errors import ConfigError, ReconError

from recon_apps.checks import MAX_EVAL_SAMPLES, check_range
from recon_apps.entry import run

COLOR_BY_HELP = "auto | rgb | normal | height | error (with --gt) | solid | a per-point attribute name"


def _labels(items: Sequence[Any]) -> list[str]:
    """File names, or full paths where two inputs share a name."""
    names = [Path(i).name if isinstance(i, (str, Path)) else None for i in items]
    dup = {n for n in names if n is not None and names.count(n) > 1}
    return [str(i) if n in dup else (n or "") for i, n in zip(items, names)]


def view(
    paths: Sequence[Any],
    gt: str | Path | None = None,
    screenshot: str | Path | None = None,
    web: bool = False,
    port: int | None = None,
    color_by: str = "auto",
    style: str = "smooth",
    cmap: str = "viridis",
    normals: bool = False,
    overlay: bool = False,
    point_size: float = 3.0,
    error_max: float | None = None,
    tau: float = 0.01,
    samples: int = 50_000,
    frustum_depth: float | None = None,
    up: str = "z",
    window_size: tuple[int, int] | None = None,
    show_help: bool | None = None,
    announce: Callable[[str], None] | None = None,
    iso: float | None = None,
    trim: float | None = None,
) -> Any:
    """Show point clouds, meshes and cameras side by side (linked cameras) or overlaid.

    Args:
        paths: files (point clouds or meshes), or loaded PointCloud / Mesh / Cameras / Views.
        gt: ground-truth mesh: colours each input by its distance to it and prints
            Chamfer-L1 / F-score / normal consistency in the corner.
        screenshot: render off-screen to this PNG instead of opening a window.
        web: serve the scene at http://localhost:PORT/ (trame) instead of a window.
        port: web port (default 8080; 0 picks a free one).
        color_by: see :data:`COLOR_BY_HELP`.
        style: smooth | flat | wireframe for meshes.
        cmap: colour map for height, attributes and the error map.
        normals: show normal glyphs from the start.
        overlay: all inputs in one panel instead of side by side.
        point_size: pixels.
        error_max: top of the error colour scale in world units (default: 95th percentile).
        tau: F-score threshold as a fraction of the GT's longest side.
        samples: surface samples per mesh for the metrics.
        frustum_depth: camera frustum depth in world units (default: 10 % of the rig).
        up: the world's up axis (x, y, z, -x, -y, -z): the default view and "height" use it.
        window_size: (width, height) in pixels.
        show_help: key-help overlay (default: on in a window; off in screenshots and on the web
            page, which has toolbar buttons instead).
        announce: where the 'wrote' and web URL lines go (default: stdout, flushed).
        iso: saved fields: the starting iso-level, world units (a slider moves it in a window).
        trim: saved fields: the starting trimming distance in finest voxels, 0 = off.

    Returns:
        The screenshot as an (H, W, 3) uint8 array with ``screenshot``, else None.

    Raises:
        ReconError: no display and neither --screenshot nor --web; an unreadable input
            (named); a bad option; the web port in use (named, with a --port suggestion).
    """
    from recon_apps.viewer.display import has_display
    from recon_apps.viewer.scene import MESH_STYLES, up_vector

    announce = announce or _say
    up_vec = up_vector(up)
    from recon_apps.viewer.screenshot import check_screenshot_path

    if not paths:
        raise ConfigError("nothing to view", None, "pass one or more point cloud or mesh files")
    if style not in MESH_STYLES:
        raise ConfigError(f"unknown mesh style '{style}'", None, f"use --style {', '.join(MESH_STYLES)}")
    check_range("--error-max", error_max, 1e-12, 1e12, "0.01")
    check_range("--tau", tau, 1e-9, 1.0, "0.01")
    check_range("--samples", samples, 100, MAX_EVAL_SAMPLES, "50000")
    check_range("--point-size", point_size, 0.1, 100.0, "3")
    check_range("--frustum-depth", frustum_depth, 1e-12, 1e12, "0.5")
    check_range("--port", port, 0, 65535, "8080")
    check_range("--iso", iso, -1e12, 1e12, "0")
    check_range("--trim", trim, 0.0, 1e6, "2")
    if port is not None and not web:
        raise ConfigError("--port is only used with --web", None, "add --web or drop --port")
    if screenshot is not None:
        check_screenshot_path(screenshot, [*paths, gt])
    if screenshot is None and not web and not has_display():
        raise ReconError("no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset)", None,
                         "pass --screenshot out.png to render to a file, or --web to view it in a browser")
    if cmap:
        _check_cmap(cmap)
    web_port = None
    if web:
        from recon_apps.viewer.web import DEFAULT_PORT, check_port, web_available

        ok, install = web_available()
        if not ok:
            raise ReconError("--web needs the trame packages", None, install)
        web_port = check_port(DEFAULT_PORT if port is None else port)

    from recon_apps.viewer.heatmap import metrics_text
    from recon_apps.viewer.inputs import load_input, resolve
    from recon_apps.viewer.scene import SceneOptions, build_panels
    from recon.types import Mesh, PointCloud

    gt_mesh = None
    if gt is not None:
        gt_mesh = gt if isinstance(gt, Mesh) else load_input(gt)
        if not isinstance(gt_mesh, Mesh):
            raise ConfigError("the ground truth must be a mesh (it has no faces)", gt, "pass a mesh file to --gt")
    items = []
    for label, item in zip(_labels(paths), paths):
        name, obj = resolve(item)
        items.append((label or name, obj))
    from recon_apps.viewer.fields import FieldSource

    fields = [obj for _, obj in items if isinstance(obj, FieldSource)]
    if (iso is not None or trim is not None) and not fields:
        raise ConfigError("--iso and --trim apply to saved fields only", None,
                          "pass a field written by `recon reconstruct --save-field F.npz`")
    if trim is not None and trim < 0:
        raise ConfigError("--trim must be 0 (off) or positive", None, "e.g. --trim 2 (finest voxels)")
    for f in fields:
        f.level = f.level if iso is None else float(iso)
        f.trim_distance = f.trim_distance if trim is None else float(trim)
    options = SceneOptions(color_by=color_by, style=style, cmap=cmap, point_size=point_size, normals=normals,
                           frustum_depth=frustum_depth, gt=gt_mesh, error_max=error_max, up=up)
    panels = build_panels(items, options, overlay=overlay)
    if gt_mesh is not None:
        texts = [metrics_text(_metric_subject(obj), gt_mesh, n_samples=samples, tau=tau)
                 if isinstance(_metric_subject(obj), (Mesh, PointCloud)) else None for _, obj in items]
        if overlay:
            panels[0].text = "\n".join(t for t in texts if t)
        else:
            for panel, text in zip(panels, texts):
                panel.text = text

    image = None
    if screenshot is not None:
        from recon_apps.viewer.screenshot import render_screenshot

        image = render_screenshot(panels, screenshot, window_size=window_size, show_help=bool(show_help), up=up_vec)
        announce(f"wrote {screenshot}")
    if web:
        from recon_apps.viewer.app import Viewer
        from recon_apps.viewer.web import serve

        viewer = Viewer(panels, off_screen=True, window_size=window_size, show_help=bool(show_help), up=up_vec,
                        options=options)
        serve(viewer.plotter, port=web_port, actions=viewer.web_actions(), announce=announce)
    elif screenshot is None:
        from recon_apps.viewer.app import Viewer

        Viewer(panels, window_size=window_size, show_help=show_help is not False, up=up_vec, options=options).show()
    return image


def _metric_subject(obj: Any) -> Any:
    """What the GT metrics measure: the object itself, or a saved field's current mesh."""
    from recon_apps.viewer.fields import FieldSource

    return obj.mesh() if isinstance(obj, FieldSource) else obj


def _say(message: str) -> None:
    print(message, flush=True)  # flushed: the web URL must reach a pipe before the server blocks


def _check_cmap(cmap: str) -> None:
    try:
        import matplotlib

        matplotlib.colormaps[cmap]
    except KeyError:
        raise ConfigError(f"unknown colour map '{cmap}'", None, "use e.g. --cmap viridis, turbo or coolwarm") from None
    except ImportError:
        pass


def register(app: typer.Typer) -> None:
    """Add the ``view`` command to ``app`` (a second call does nothing)."""
    if any(getattr(c, "name", None) == "view" for c in app.registered_commands):
        return

    @app.command("view")
    def view_command(
        paths: list[Path] = typer.Argument(..., help="point clouds, meshes, saved fields (.npz from --save-field) or posed-image folders; several are shown side by side"),
        gt: Optional[Path] = typer.Option(None, "--gt", help="ground-truth mesh: error heat map and Chamfer / F-score"),
        screenshot: Optional[Path] = typer.Option(None, "--screenshot", help="render off-screen to this PNG (no display needed)"),
        web: bool = typer.Option(False, "--web", help="serve the view in a browser on localhost"),
        port: Optional[int] = typer.Option(None, "--port", help="port for --web (default 8080; 0 = any free port)"),
        color_by: str = typer.Option("auto", "--color-by", help=COLOR_BY_HELP),
        style: str = typer.Option("smooth", "--style", help="mesh style: smooth | flat | wireframe"),
        cmap: str = typer.Option("viridis", "--cmap", help="colour map for height, attributes and the error map"),
        normals: bool = typer.Option(False, "--normals", help="show normal glyphs (key n toggles)"),
        overlay: bool = typer.Option(False, "--overlay", help="all inputs in one panel instead of side by side"),
        point_size: float = typer.Option(3.0, "--point-size", help="point size in pixels"),
        error_max: Optional[float] = typer.Option(None, "--error-max", help="top of the error colour scale, world units (default: 95th percentile)"),
        tau: float = typer.Option(0.01, "--tau", help="F-score threshold, fraction of the GT's longest side"),
        samples: int = typer.Option(50_000, "--samples", help="surface samples per mesh for the metrics"),
        up: str = typer.Option("z", "--up", help="the data's up axis: x, y, z, -x, -y or -z (scans are often z, meshes y)"),
        size: Optional[str] = typer.Option(None, "--size", help="window / screenshot size WxH, e.g. 1200x800"),
        help_overlay: Optional[bool] = typer.Option(None, "--help-overlay/--no-help-overlay", help="key-help overlay (default: on in a window, off in screenshots)"),
        frustum_depth: Optional[float] = typer.Option(None, "--frustum-depth", help="posed images: frustum depth in world units (default: 10 % of the rig)"),
        iso: Optional[float] = typer.Option(None, "--iso", help="saved field: starting iso-level in world units (slider in the window)"),
        trim: Optional[float] = typer.Option(None, "--trim", help="saved field: starting trim distance in finest voxels, 0 = off (slider)"),
    ) -> None:
        """View point clouds, meshes and saved fields: colourings, error maps against a GT, screenshots, web view.

        Keys in the window: h help, c colouring, m mesh style, o/n/g/k layers, r reset camera;
        right-click or p picks a point.
        """
        view(paths, gt=gt, screenshot=screenshot, web=web, port=port, color_by=color_by, style=style, cmap=cmap,
             normals=normals, overlay=overlay, point_size=point_size, error_max=error_max, tau=tau, samples=samples,
             up=up, window_size=parse_size(size), show_help=help_overlay, iso=iso, trim=trim,
             frustum_depth=frustum_depth)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"1200x800"`` -> (1200, 800).

    Raises:
        ConfigError: not two positive integers.
    """
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        w = h = 0
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ConfigError(f"--size '{text}' is not WIDTHxHEIGHT", None, "e.g. --size 1200x800")
    return w, h


def main(argv: list[str] | None = None) -> None:
    """``python -m recon_apps.viewer.cli view ...``: ``view`` as a command of its own, errors reported
    as by ``recon`` (see :func:`recon_apps.entry.run`)."""
    app = typer.Typer(name="recon", add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
    app.callback()(lambda: None)  # a group, so the command is still named: `... viewer.cli view PATH`
    register(app)
    run(app, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
