"""`recon view mesh.ply` shows the mesh's vertex colours (an off-screen render, checked on the pixels)."""

from __future__ import annotations

import numpy as np
import trimesh
from recon_apps.viewer.app import BACKGROUND
from recon_apps.viewer.cli import view

from recon.io import save_mesh
from recon.types import Mesh

BG = np.array([int(BACKGROUND[i:i + 2], 16) for i in (1, 3, 5)])


def test_mesh_file_is_drawn_in_its_vertex_colours(tmp_path):
    s = trimesh.creation.icosphere(4, radius=1.0)
    v = np.asarray(s.vertices)
    colours = np.where(v[:, 2:3] > 0, [[0.9, 0.1, 0.1]], [[0.1, 0.1, 0.9]]).astype(np.float32)  # +z red, -z blue
    path = tmp_path / "coloured.ply"
    save_mesh(Mesh(v, np.asarray(s.faces), vertex_colors=colours), path)
    img = view([path], screenshot=tmp_path / "shot.png", window_size=(200, 200), up="z",
               announce=lambda s: None).astype(int)
    cover = np.abs(img - BG).sum(-1) > 24
    rows = np.nonzero(cover.any(1))[0]
    top, bottom = rows.min(), rows.max()
    h = bottom - top
    upper = img[top + h // 8: top + 3 * h // 8][cover[top + h // 8: top + 3 * h // 8]]
    lower = img[bottom - h // 10: bottom - 1][cover[bottom - h // 10: bottom - 1]]  # the default view looks down
    r_up, g_up, b_up = upper.mean(0)
    r_lo, g_lo, b_lo = lower.mean(0)
    # lit, so not the exact colour, but the hue is the vertex colour's: red above (+z up), blue below
    assert r_up > 2.5 * max(g_up, b_up) and r_up > 60, (r_up, g_up, b_up)
    assert b_lo > 2.5 * max(r_lo, g_lo) and b_lo > 60, (r_lo, g_lo, b_lo)
