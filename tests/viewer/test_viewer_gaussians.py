"""Saved Gaussians in the viewer, and the batch live view (tile mosaic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from recon.backends.gvkf.gaussians import GaussianSet
from recon.errors import InputError
from recon.types import Mesh
from recon_apps.viewer.app import BACKGROUND, Viewer
from recon_apps.viewer.gaussians import ellipsoids, is_saved_gaussians
from recon_apps.viewer.inputs import load_input
from recon_apps.viewer.live import LiveView, TileMosaic
from recon_apps.viewer.scene import Panel, SceneOptions, layers_for

BG = np.array([int(BACKGROUND[i:i + 2], 16) for i in (1, 3, 5)])


def covered(img: np.ndarray) -> np.ndarray:
    return np.abs(img.astype(int) - BG).sum(axis=-1) > 24


def test_ellipsoids_have_the_gaussians_axes():
    R = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    v, f = ellipsoids(np.array([[1.0, 2.0, 3.0]]), R[None], np.array([[0.1, 0.2, 0.4]]), sigma=2.0)
    assert v.shape == (42, 3) and f.shape == (80, 3)
    local = (v - [1.0, 2.0, 3.0]) @ R  # back to the Gaussian's frame: on the ellipsoid x^2/a^2 + ... = 1
    q = ((local / np.array([0.2, 0.4, 0.8])) ** 2).sum(1)
    assert np.allclose(q, 1.0)
    m = trimesh.Trimesh(v, f)
    assert m.is_watertight and m.volume == pytest.approx(4 / 3 * math.pi * 0.2 * 0.4 * 0.8, rel=0.15)


def test_saved_gaussians_load_and_cover_their_disc(tmp_path):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(2000, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    gs = GaussianSet.from_values(d, torch.full((2000,), 0.06), opacities=0.9, colours=torch.tensor([0.9, 0.2, 0.2]))
    faint = GaussianSet.from_values(torch.zeros(1, 3), torch.full((1,), 0.1), opacities=0.01)
    path = gs.save(tmp_path / "g.npz")
    assert is_saved_gaussians(path) and not is_saved_gaussians(tmp_path / "none.npz")
    src = load_input(path)
    layers = layers_for(src, "g", SceneOptions())
    assert [layer.name for layer in layers] == ["gaussians", "centres"]
    viewer = Viewer([Panel("", layers)], off_screen=True, window_size=(240, 240), show_help=False)
    try:
        cam = viewer.plotter.camera
        cam.position, cam.focal_point, cam.up, cam.view_angle = (0, 0, 6.0), (0, 0, 0), (0, 1, 0), 30.0
        viewer.plotter.reset_camera_clipping_range()
        img = viewer.screenshot()
    finally:
        viewer.close()
    f = 120 / math.tan(math.radians(15))
    r_px = f * math.tan(math.asin(1.09 / 6.0))  # unit sphere plus 1.5 sigma of the ellipsoids
    share = covered(img).mean()
    assert share == pytest.approx(math.pi * r_px ** 2 / 240 ** 2, rel=0.12)
    red = img[covered(img)]
    assert (red[:, 0] > red[:, 1] + 30).mean() > 0.8  # the Gaussians' colour
    faint.save(tmp_path / "faint.npz")
    with pytest.raises(InputError, match="opaque"):
        layers_for(load_input(tmp_path / "faint.npz"), "faint", SceneOptions())


def _tile(x0: float) -> Mesh:
    s = trimesh.creation.box(extents=(1.0, 1.0, 0.2))
    return Mesh(s.vertices + [x0, 0, 0], s.faces)


def test_tile_mosaic_grows_with_finished_tiles(tmp_path):
    from recon.io import save_mesh

    live = LiveView(interval=0.0, off_screen=True, window_size=(200, 160), snapshot=tmp_path / "live.png")
    try:
        mosaic = TileMosaic(live)
        mosaic.on_tile("fit", "0_0_0", {"status": "done"})
        shares = []
        for k in range(3):
            p = tmp_path / f"t{k}.ply"
            save_mesh(_tile(1.1 * k), p)
            mosaic.on_tile("mesh", f"{k}_0_0", {"mesh": str(p), "faces": 12})
            shares.append(covered(live.image()).mean())
        mosaic.on_tile("mesh", "9_0_0", {"mesh": str(tmp_path / "missing.ply"), "faces": 0})  # empty tile: ignored
        assert len(mosaic.parts) == 3
        merged = mosaic.merged()
        assert merged.n_faces == 36 and merged.faces.max() == merged.n_vertices - 1
        assert shares[0] > 0.01 and shares[2] > shares[0]  # same camera (set on the first frame): more tiles, more pixels
        assert (tmp_path / "live.png").is_file()
    finally:
        live.close()
