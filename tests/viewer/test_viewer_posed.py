"""Posed-image folders in the viewer: one frustum per view, thumbnails that show the images, sparse points."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from recon.io.cameras.colmap import read_points3d
from recon.render import render_views, write_render_folder
from recon.types import Mesh
from recon_apps.viewer.cli import view
from recon_apps.viewer.inputs import load_input
from recon_apps.viewer.posed import THUMBNAIL_CELLS, PosedImageSet, thumbnail_grid
from recon.types import Cameras
from recon_apps.viewer.scene import SceneOptions, frustum_polydata, layers_for


@pytest.fixture(scope="module")
def render_folder(tmp_path_factory):
    s = trimesh.creation.icosphere(2, radius=0.5)
    r = render_views(Mesh(s.vertices, s.faces), n_views=6, size=32, seed=0)
    folder = tmp_path_factory.mktemp("posed") / "scene"
    write_render_folder(r, folder, points_per_view=16)
    return folder


def test_thumbnail_grid_places_the_image_on_the_corners():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)  # left half red, right half blue
    img[:, 20:] = (0, 0, 255)
    corners = np.array([[0, 0, 0], [4, 0, 0], [4, 2, 0], [0, 2, 0]], float)
    g = thumbnail_grid(img, corners, cells=8)
    assert g.n_cells == 8 * 4
    rgb = np.asarray(g.cell_data["rgb"])
    centres = np.asarray(g.cell_centers().points)
    left = centres[:, 0] < 2
    assert (rgb[left] == (255, 0, 0)).all() and (rgb[~left] == (0, 0, 255)).all()
    np.testing.assert_allclose(g.bounds, [0, 4, 0, 2, 0, 0])


def test_folder_gives_frustums_thumbnails_and_points(render_folder):
    posed = load_input(render_folder)
    assert isinstance(posed, PosedImageSet) and len(posed) == 6
    pts = read_points3d(render_folder)
    assert pts is not None and len(pts[0]) > 0
    assert posed.points is not None and len(posed.points) == len(pts[0])
    layers = layers_for(posed, "scene", SceneOptions())
    names = [layer.name for layer in layers]
    assert names.count("cameras") == 2 and "points" in names
    frustums = next(layer for layer in layers if layer.kind == "lines")
    one = frustum_polydata(Cameras(posed.views.cameras.K[:1], posed.views.cameras.cam_to_world[:1], 32, 32), 1.0)
    assert frustums.dataset.n_cells == 6 * one.n_cells  # one frustum per view
    thumbs = next(layer for layer in layers if layer.name == "cameras" and layer.kind == "surface")
    assert thumbs.dataset.n_cells == 6 * THUMBNAIL_CELLS * THUMBNAIL_CELLS  # square images
    # the renders have a black background and a textured sphere in the middle: thumbnails show both
    rgb = np.asarray(thumbs.dataset.cell_data["rgb"]).astype(int)
    assert (rgb.sum(1) == 0).mean() > 0.2 and (rgb.sum(1) > 60).mean() > 0.2


def test_view_screenshot_of_a_folder(render_folder, tmp_path):
    img = view([render_folder], screenshot=tmp_path / "rig.png", window_size=(240, 180), announce=lambda _: None)
    assert img.std() > 5
