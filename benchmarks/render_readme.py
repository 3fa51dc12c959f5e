"""Render the README picture: the sample scan next to its reconstruction (off-screen).

    python benchmarks/render_readme.py            # runs `recon reconstruct` on data/sample_scan.ply first
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def render_pair(points: np.ndarray, mesh_path: Path, out: Path, title_left: str, title_right: str) -> None:
    import pyvista as pv
    import trimesh

    pv.OFF_SCREEN = True
    tm = trimesh.load(mesh_path, force="mesh")
    faces = np.hstack([np.full((len(tm.faces), 1), 3), tm.faces]).ravel()
    surf = pv.PolyData(np.asarray(tm.vertices), faces)
    pl = pv.Plotter(shape=(1, 2), off_screen=True, window_size=(1000, 450), border=False)
    centre = points.mean(0)
    extent = np.ptp(points, axis=0).max()
    cam = [tuple(centre + extent * np.array([1.6, -1.5, 1.1])), tuple(centre), (0, 0, 1)]
    pl.subplot(0, 0)
    pl.add_points(points, scalars=points[:, 2], cmap="viridis", point_size=2, show_scalar_bar=False)
    pl.add_text(title_left, font_size=10)
    pl.camera_position = cam
    pl.subplot(0, 1)
    pl.add_mesh(surf, color="#d8c8a8", smooth_shading=True, specular=0.3)
    pl.add_text(title_right, font_size=10)
    pl.camera_position = cam
    pl.screenshot(str(out))
    pl.close()


def main() -> None:
    from recon.io import load_point_cloud

    sample = REPO / "data" / "sample_scan.ply"
    out = REPO / "benchmarks" / "results" / "images" / "sample.png"
    with tempfile.TemporaryDirectory() as tmp:
        mesh = Path(tmp) / "mesh.ply"
        backend = sys.argv[1] if len(sys.argv) > 1 else "poisson"
        subprocess.run([sys.executable, "-m", "recon_apps.cli", "reconstruct", str(sample), "-o", str(mesh),
                        "--backend", backend, "-q"], check=True)
        pts = load_point_cloud(sample).points
        render_pair(pts, mesh, out, f"input: {len(pts):,} points, no normals", f"recon reconstruct --backend {backend}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
