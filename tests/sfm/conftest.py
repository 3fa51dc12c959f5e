"""A small textured scene rendered by recon.render for the structure-from-motion tests, and its SfM model.

The scene is a bumpy terrain (a 48 x 48 height field with random heights and one hill) under the
renderer's procedural colour and fixed light: its facets give SIFT enough texture at 200 pixels.
Fifteen cameras look at it from an arc of 150 degrees around it at 40 to 60 degrees elevation.
Both fixtures are session-scoped: rendering costs about 4 s and SfM about 5 s on 2 cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.render.renderer import render_views
from recon.render.rig import look_at
from recon.types import Cameras, Mesh

N_VIEWS, SIZE = 15, 200


@dataclass
class Scene:
    """The photo folder (``v00.png`` ... ``v14.png``, no camera file) and the rendered cameras."""

    photos: Path
    cameras: Cameras


def terrain(grid: int = 48, bumps: float = 0.06, seed: int = 0) -> Mesh:
    """A height field over [-1, 1]^2 (y up): random heights in [0, bumps] plus a hill of 0.25."""
    rng = np.random.default_rng(seed)
    x, z = np.meshgrid(np.linspace(-1, 1, grid), np.linspace(-1, 1, grid))
    y = rng.uniform(0, bumps, x.shape) + 0.25 * np.exp(-((x - 0.3) ** 2 + (z + 0.2) ** 2) / 0.1)
    i = np.arange(grid - 1)
    a = (i[:, None] * grid + i[None, :]).ravel()
    faces = np.concatenate([np.stack([a, a + grid, a + 1], 1), np.stack([a + 1, a + grid, a + grid + 1], 1)])
    return Mesh(np.stack([x.ravel(), y.ravel(), z.ravel()], 1), faces.astype(np.int64))


def arc_cameras(n: int = N_VIEWS, size: int = SIZE, fov_deg: float = 50.0) -> Cameras:
    """``n`` square pinhole cameras 2.6 units from the origin on a 150 degree arc, looking at it."""
    az = np.radians(np.linspace(0, 150, n))
    el = np.radians(50 + 10 * np.sin(np.linspace(0, 3 * np.pi, n)))
    eyes = 2.6 * np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], 1)
    f = 0.5 * size / math.tan(math.radians(fov_deg / 2))
    K = np.tile(np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]), (n, 1, 1))
    return Cameras(K=K, cam_to_world=look_at(eyes, np.zeros(3), np.array([0, 1.0, 0])), width=size, height=size)


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """The rendered photos (RGB PNG, grey background) in a folder of their own."""
    cams = arc_cameras()
    result = render_views(terrain(), cameras=cams, supersample=1, background=(0.5, 0.5, 0.5))
    folder = tmp_path_factory.mktemp("sfm-scene") / "photos"
    folder.mkdir()
    for c in range(len(cams)):  # loop over views (files)
        Image.fromarray(np.round(np.clip(result.rgb[c], 0, 1) * 255).astype(np.uint8)).save(folder / f"v{c:02d}.png")
    return Scene(folder, cams)


@pytest.fixture(scope="session")
def scene_model(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SfM model folder of :func:`scene`, computed once."""
    from recon.sfm import solve_model

    model = tmp_path_factory.mktemp("sfm-model") / "photos.sfm"
    solve_model(scene.photos, model)
    return model
