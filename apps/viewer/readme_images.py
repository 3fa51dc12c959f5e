"""Regenerate the README's viewer pictures from ../shared/data (read only; nothing is copied).

    python -m recon_apps.viewer.readme_images [--data ../shared/data] [--out benchmarks/results/images]

Writes ``viewer_scan.png`` (gargoyle scan coloured by normal), ``viewer_error.png``
(a Poisson reconstruction of 50,000 bunny samples coloured by distance to the bunny)
and ``viewer_rig.png`` (the real Middlebury temple capture: 39 cameras with their photographs).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

SIZE = (900, 600)


def main(argv: list[str] | None = None) -> None:
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=repo.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=repo / "benchmarks" / "results" / "images")
    args = ap.parse_args(argv)
    from recon_apps.viewer.cli import view

    gargoyle = args.data / "scans" / "srb_gargoyle" / "gargoyle.ply"
    bunny = args.data / "meshes" / "continuous-remeshing" / "bunny.obj"
    view([gargoyle], screenshot=args.out / "viewer_scan.png", color_by="normal", up="-y", window_size=SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        pred = Path(tmp) / "bunny_poisson.ply"
        subprocess.run([sys.executable, "-m", "recon_apps.cli", "reconstruct", str(bunny), "--backend", "poisson",
                        "--sample", "50000", "-o", str(pred), "-q"], check=True)
        view([pred], gt=bunny, screenshot=args.out / "viewer_error.png", up="y", window_size=SIZE)
    temple = args.data / "multiview" / "middlebury_temple"
    view([("middlebury_temple: 39 photographs", temple)], screenshot=args.out / "viewer_rig.png", up="-y",
         window_size=SIZE, frustum_depth=0.1)

if __name__ == "__main__":
    main()
