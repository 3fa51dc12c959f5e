"""Saved fields in the viewer: exact reload, re-meshing at an iso-level / trim distance, sliders."""

from __future__ import annotations

import numpy as np
import pytest

from recon.backends.kernel import KernelConfig, KernelReconstructor
from recon.errors import ConfigError
from recon.meshing.cleanup import boundary_edge_count
from recon_apps.viewer.app import Viewer
from recon_apps.viewer.cli import view
from recon_apps.viewer.fields import FieldSource, is_saved_field
from recon_apps.viewer.inputs import load_input
from recon_apps.viewer.scene import SceneOptions, build_panels
from tests.backends.kernel.helpers import sphere_points

H = 0.05
CENTRE = np.array([3.0, -1.0, 0.5])


@pytest.fixture(scope="module")
def saved_field(tmp_path_factory):
    p, n = sphere_points(4000, 0.5, seed=2, centre=tuple(CENTRE))
    f = KernelReconstructor(KernelConfig(voxel_size=H, device="cpu")).reconstruct(p, n)
    path = tmp_path_factory.mktemp("field") / "sphere.npz"
    f.save(path)
    return path


def _mean_radius(poly) -> float:
    return float(np.linalg.norm(np.asarray(poly.points) - CENTRE, axis=1).mean())


def test_saved_field_is_recognised_and_points_npz_is_not(saved_field, tmp_path):
    assert is_saved_field(saved_field)
    pts = tmp_path / "pts.npz"
    np.savez(pts, points=np.random.default_rng(0).normal(size=(50, 3)))
    assert not is_saved_field(pts)
    src = load_input(saved_field)
    assert isinstance(src, FieldSource)
    assert src.value_at(CENTRE) < 0 and abs(src.value_at(CENTRE + [0.5, 0, 0])) < 0.01


def test_sliders_remesh_at_the_new_level(saved_field):
    src = load_input(saved_field)
    options = SceneOptions()
    viewer = Viewer(build_panels([("sphere", src)], options), off_screen=True, window_size=(200, 160), options=options)
    try:
        assert len(viewer.plotter.widgets.slider_widgets) == 2
        (pi, li, layer), = viewer.field_layers()
        r0 = _mean_radius(layer.dataset)
        assert abs(r0 - 0.5) < 0.01
        viewer.set_field(level=0.5 * H)  # the field is distance-like: the surface grows by half a voxel
        r1 = _mean_radius(viewer.panels[pi].layers[li].dataset)
        assert abs((r1 - r0) - 0.5 * H) < 0.2 * H
        assert viewer.panels[pi].layers[li].source.level == pytest.approx(0.5 * H)
        picked = viewer.on_pick(CENTRE + [0.5 + 0.5 * H, 0, 0])
        assert "field" in picked and abs(float(picked.split("field")[1]) - 0.5 * H) < 0.2 * H  # the value, not value - level
    finally:
        viewer.close()


def test_trim_distance_zero_keeps_more_faces(saved_field):
    src = FieldSource(load_input(saved_field).field)
    trimmed = src.mesh(trim_distance=0.5)
    untrimmed = src.mesh(trim_distance=0)
    assert untrimmed.n_faces > trimmed.n_faces
    assert boundary_edge_count(untrimmed) <= boundary_edge_count(trimmed)


def test_view_screenshot_of_a_field_and_iso_errors(saved_field, tmp_path):
    img = view([saved_field], screenshot=tmp_path / "f.png", window_size=(200, 160), iso=0.2 * H, trim=3,
               announce=lambda _: None)
    assert (tmp_path / "f.png").is_file() and img.std() > 5
    pts = tmp_path / "pts.xyz"
    np.savetxt(pts, np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(ConfigError, match="saved fields only"):
        view([pts], screenshot=tmp_path / "g.png", iso=0.1, announce=lambda _: None)
    with pytest.raises(ConfigError, match="--trim"):
        view([saved_field], screenshot=tmp_path / "g.png", trim=-1, announce=lambda _: None)
