"""A tiny rendered scene shared by the camera-format tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh

os.environ.setdefault("OMP_NUM_THREADS", "1")

from recon.render import RenderResult, render_views, write_render_folder  # noqa: E402
from recon.types import Mesh  # noqa: E402

OFFSET = np.array([0.3, -0.2, 0.5])


def sphere_mesh(radius: float = 1.5, subdivisions: int = 3) -> Mesh:
    """An icosphere of ``radius`` centred at :data:`OFFSET`."""
    return Mesh.from_trimesh(trimesh.creation.icosphere(subdivisions, radius=radius)).transformed(offset=OFFSET)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> tuple[RenderResult, Path, Mesh]:
    """(render, folder, mesh): 8 views of 32 px of an off-centre sphere, written with every format."""
    mesh = sphere_mesh()
    result = render_views(mesh, n_views=8, size=32, seed=5)
    folder = write_render_folder(result, tmp_path_factory.mktemp("render") / "scene")
    return result, folder, mesh
