"""`recon batch --view-snapshot`: tiles are shown as they finish (driver-side callback)."""

from __future__ import annotations

import numpy as np

from recon_apps.batch_cli import batch
from tests.tiling.helpers import wavy_plane


def test_batch_view_snapshot_shows_every_meshed_tile(tmp_path, monkeypatch):
    from recon_apps.viewer import live as live_mod

    seen: list[tuple[str, str, int]] = []
    made = []
    real = live_mod.TileMosaic

    class Spy(real):  # record the events the runner sends
        def __init__(self, view):
            super().__init__(view)
            made.append(self)

        def on_tile(self, phase, tile_id, result):
            seen.append((phase, tile_id, int(result.get("faces") or 0)))
            super().on_tile(phase, tile_id, result)

    monkeypatch.setattr(live_mod, "TileMosaic", Spy)
    src = wavy_plane(tmp_path / "plane.npy", n=12_000)
    shot = tmp_path / "live.png"
    code = batch([str(src)], str(tmp_path / "job"), quiet=True, view_snapshot=str(shot), processes=False,
                 workers=1, tile_size=4.0, voxel_size=0.1, tile_shape="column", preview=True)
    assert code == 0
    fits = {t for p, t, _ in seen if p == "fit"}
    meshes = {t for p, t, _ in seen if p == "mesh"}
    assert meshes == fits and len(meshes) >= 8  # every tile, fitted then meshed
    with_faces = [t for p, t, f in seen if p == "mesh" and f > 0]
    assert len(with_faces) >= 8
    assert len(made[0].parts) == len(with_faces)  # each non-empty tile's preview was read and shown
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    bg = np.array([0x1F, 0x21, 0x24])
    assert (np.abs(img - bg).sum(-1) > 24).mean() > 0.05
