"""Off-screen renders, checked on the pixels: coverage, heat-map ends, keys, frustums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from recon.types import Mesh, PointCloud
from recon_apps.viewer.app import BACKGROUND, Viewer
from recon_apps.viewer.cli import view
from recon_apps.viewer.scene import Panel, SceneOptions, build_panels, layers_for

BG = np.array([int(BACKGROUND[i:i + 2], 16) for i in (1, 3, 5)])


def covered(img: np.ndarray) -> np.ndarray:
    """Pixels that differ clearly from the background."""
    return np.abs(img.astype(int) - BG).sum(axis=-1) > 24


def sphere_mesh(subdivisions: int = 4, radius: float = 1.0) -> Mesh:
    s = trimesh.creation.icosphere(subdivisions, radius=radius)
    return Mesh(s.vertices, s.faces)


def look_from_z(viewer: Viewer, distance: float, view_angle: float = 30.0) -> None:
    cam = viewer.plotter.camera
    cam.position = (0.0, 0.0, distance)
    cam.focal_point = (0.0, 0.0, 0.0)
    cam.up = (0.0, 1.0, 0.0)
    cam.view_angle = view_angle
    viewer.plotter.reset_camera_clipping_range()


def disc_fraction(radius: float, distance: float, view_angle: float, w: int, h: int) -> float:
    """Image share of a sphere's silhouette seen head-on in a perspective view."""
    f = (h / 2) / math.tan(math.radians(view_angle) / 2)  # focal length in pixels
    r_px = f * math.tan(math.asin(radius / distance))
    return math.pi * r_px ** 2 / (w * h)


@pytest.fixture
def sphere_viewer():
    panels = [Panel("", layers_for(sphere_mesh(), "", SceneOptions()))]
    viewer = Viewer(panels, off_screen=True, window_size=(320, 240), show_help=False)
    yield viewer
    viewer.close()


@pytest.mark.parametrize("distance", [4.0, 8.0])
def test_sphere_covers_its_analytic_disc(sphere_viewer, distance):
    look_from_z(sphere_viewer, distance)
    img = sphere_viewer.screenshot()
    assert img.shape == (240, 320, 3)
    share = covered(img).mean()
    expected = disc_fraction(1.0, distance, 30.0, 320, 240)
    assert share == pytest.approx(expected, rel=0.025), (share, expected)


def test_keys_toggle_cycle_and_style(sphere_viewer):
    look_from_z(sphere_viewer, 4.0)
    base = sphere_viewer.screenshot()
    full = covered(base).mean()
    assert sphere_viewer.toggle_layers(("mesh",)) is False
    assert covered(sphere_viewer.screenshot()).mean() == 0.0  # nothing left: no title, no help
    assert sphere_viewer.toggle_layers(("points", "mesh")) is True
    assert np.array_equal(sphere_viewer.screenshot(), base)
    assert sphere_viewer.cycle_style() == "flat"
    assert covered(sphere_viewer.screenshot()).mean() == pytest.approx(full, rel=0.01)  # same silhouette
    assert sphere_viewer.cycle_style() == "wireframe"
    wire = covered(sphere_viewer.screenshot()).mean()
    assert wire < 0.97 * full  # gaps between the edges show the background
    assert sphere_viewer.actors[(0, 0)].prop.style.lower() == "wireframe"
    names = sphere_viewer.cycle_coloring()
    assert names == ["height"]
    img = sphere_viewer.screenshot()
    assert not np.array_equal(img, base)
    assert sphere_viewer.toggle_help() is True
    assert "help" in sphere_viewer.plotter.renderers[0].actors
    assert "c  colour by: solid > height > normal" in sphere_viewer.help_text()
    assert sphere_viewer.toggle_help() is False
    assert "help" not in sphere_viewer.plotter.renderers[0].actors
    text = sphere_viewer.on_pick([0.5, -0.25, 1.0])
    assert text == "picked  x 0.5  y -0.25  z 1"
    assert set(sphere_viewer.key_actions()) >= {"h", "c", "m", "r", "o", "n", "g", "k"}


def test_cycle_style_order(sphere_viewer):
    assert [sphere_viewer.cycle_style() for _ in range(3)] == ["flat", "wireframe", "smooth"]


def viridis_index(pixels: np.ndarray) -> np.ndarray:
    """Nearest viridis entry (0..255) of each pixel by chromaticity, so shading does not matter."""
    import matplotlib

    lut = matplotlib.colormaps["viridis"](np.linspace(0, 1, 256))[:, :3]
    chroma = lambda c: c / np.maximum(c.sum(axis=-1, keepdims=True), 1e-6)  # noqa: E731
    d = np.linalg.norm(chroma(pixels.astype(float))[:, None] - chroma(lut)[None], axis=-1)
    return d.argmin(axis=1)


def test_heat_map_shows_both_ends_of_the_colour_map():
    gt = sphere_mesh(4)
    v = gt.vertices.copy()
    moved = v[:, 0] > 0
    v[moved] *= 1.08  # half the sphere pushed out by 0.08, the other half exact
    panels = build_panels([("", Mesh(v, gt.faces))], SceneOptions(gt=gt))
    panels[0].title = ""
    layer = panels[0].layers[0]
    assert layer.current.name == "error" and layer.current.clim[1] == pytest.approx(0.08, rel=0.02)
    viewer = Viewer(panels, off_screen=True, window_size=(320, 240), show_help=False)
    look_from_z(viewer, 5.0)
    viewer.plotter.remove_scalar_bar()  # judge the mesh pixels only
    img = viewer.screenshot()
    viewer.close()
    mask = covered(img)
    idx = viridis_index(img[mask])
    low, high = (idx < 26).mean(), (idx > 229).mean()
    # head-on, x < 0 (exact, low end) and x > 0 (displaced, top end) each fill about half the disc
    assert low > 0.3 and high > 0.3, (low, high)
    xs = np.nonzero(mask)[1]
    assert np.median(xs[idx < 26]) < 160 < np.median(xs[idx > 229])


def test_frustum_actor_count_matches_views():
    from recon_apps.viewer.rig import sphere_rig

    cams = sphere_rig(np.zeros(3), 3.0, 9)
    panels = build_panels([("", sphere_mesh(2, 0.5)), ("", cams)], SceneOptions(), overlay=True)
    viewer = Viewer(panels, off_screen=True, window_size=(320, 240), show_help=False)
    cams_actors = [a for (pi, li), a in viewer.actors.items() if panels[pi].layers[li].name == "cameras"]
    assert len(cams_actors) == 1
    data = cams_actors[0].mapper.dataset
    assert data.n_cells == 9 * 9 and len(np.unique(data.cell_data["camera"])) == len(cams)
    img = viewer.screenshot()
    gold = (img[..., 0] > 180) & (img[..., 1] > 140) & (img[..., 2] < 90)
    assert gold.sum() > 100  # frustum lines are drawn
    viewer.toggle_layers(("cameras",))
    assert not ((viewer.screenshot()[..., 2] < 90) & (viewer.screenshot()[..., 0] > 180)).any()
    viewer.close()


def test_side_by_side_panels_share_one_camera():
    a, b = sphere_mesh(2), sphere_mesh(2, 0.5)
    viewer = Viewer(build_panels([("a", a), ("b", b)], SceneOptions()), off_screen=True, window_size=(400, 200),
                    show_help=False)
    r0, r1 = viewer.plotter.renderers[0], viewer.plotter.renderers[1]
    assert r0.camera is r1.camera
    img = viewer.screenshot()
    left, right = covered(img[:, :200]).mean(), covered(img[:, 200:]).mean()
    assert left > 2.5 * right > 0  # same camera: the half-size sphere covers about a quarter
    viewer.close()


def test_panels_sharing_a_scalar_bar_share_its_range():
    a, b = sphere_mesh(1), sphere_mesh(1, 0.5)
    b.vertices[:, 2] += 3.0  # heights 2.5..3.5 vs -1..1
    panels = build_panels([("a", a), ("b", b)], SceneOptions(color_by="height"))
    viewer = Viewer(panels, off_screen=True, window_size=(200, 100), show_help=False)
    clims = [p.layers[0].current.clim for p in panels]
    assert clims[0] == clims[1] == pytest.approx((-1.0, 3.5))
    assert list(viewer.plotter.scalar_bars.keys()) == ["height (z)"]  # one bar for both
    viewer.close()


def test_view_screenshot_of_points_and_png(tmp_path):
    rng = np.random.default_rng(3)
    p = rng.normal(size=(4000, 3))
    n = p / np.linalg.norm(p, axis=1, keepdims=True)
    out = tmp_path / "shot.png"
    img = view([("cloud", PointCloud(n, normals=n))], screenshot=out, color_by="normal", normals=True,
               window_size=(240, 200), announce=lambda s: None)
    assert img.shape == (200, 240, 3)
    from PIL import Image

    png = np.asarray(Image.open(out).convert("RGB"))
    assert png.shape == (200, 240, 3) and np.array_equal(png, img)
    share = covered(img).mean()
    assert 0.05 < share < 0.6
    # normal colouring: +x points are reddish, -x bluish/greenish - many distinct colours
    assert len(np.unique(img[covered(img)].reshape(-1, 3) // 32, axis=0)) > 20
