"""Structure-from-motion of a rendered scene: registration, poses against the rendered ones, loading, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import recon.sfm.model as sfm_model
from recon.errors import ConfigError
from recon.io.cameras import load_views
from recon.io.cameras.colmap import read_points3d
from recon.sfm import (
    MANIFEST,
    SfmOptions,
    centre_errors,
    load_or_solve_views,
    model_state,
    photo_fingerprint,
    read_manifest,
    rig_extent,
    rotation_errors_deg,
    views_for_folder,
)
from tests.sfm.conftest import N_VIEWS, SIZE, Scene

#: after a similarity alignment: camera centres within 2 % of the rig's extent (the arc's chord, about 5
#: units), orientations within 2 degrees; a run here gives about 0.5 % and 1 degree.
CENTRE_TOL, ROTATION_TOL_DEG = 0.02, 2.0


def _view_index(path: str) -> int:
    return int(Path(path).stem[1:])


def test_every_view_registers_near_its_rendered_pose(scene: Scene, scene_model: Path) -> None:
    views = load_views(scene_model)
    assert len(views) == N_VIEWS
    idx = np.array([_view_index(p) for p in views.image_paths])
    assert sorted(idx.tolist()) == list(range(N_VIEWS))
    truth = scene.cameras.cam_to_world[idx]
    extent = rig_extent(scene.cameras.cam_to_world[:, :3, 3])
    err = centre_errors(views.cameras.cam_to_world[:, :3, 3], truth[:, :3, 3]) / extent
    assert err.max() < CENTRE_TOL, err
    rot = rotation_errors_deg(views.cameras.cam_to_world, truth)
    assert rot.max() < ROTATION_TOL_DEG, rot
    # the focal length is estimated (no EXIF): within 3 % of the rendered one
    f_true = scene.cameras.K[0, 0, 0]
    assert abs(views.cameras.K[0, 0, 0] / f_true - 1) < 0.03
    assert (views.cameras.width, views.cameras.height) == (SIZE, SIZE)


def test_model_folder_holds_points_manifest_and_its_own_images(scene: Scene, scene_model: Path) -> None:
    pts = read_points3d(scene_model)
    assert pts is not None and len(pts[0]) >= 100
    assert np.all(np.isfinite(pts[0]))
    manifest = read_manifest(scene_model)
    assert manifest is not None
    assert manifest["registered"] == N_VIEWS
    assert [m["name"] for m in manifest["images"]] == sorted(p.name for p in scene.photos.iterdir())
    assert manifest["reprojection_px"] < 1.0
    # every image path stays inside the model folder (no link out to the photos)
    views = load_views(scene_model)
    assert all(Path(p).resolve().is_relative_to(scene_model.resolve()) for p in views.image_paths)
    assert not any(p.name.startswith(".") for p in scene_model.parent.iterdir()), "temporary folder left behind"


def test_reuse_skips_sfm_and_a_changed_photo_set_does_not(scene: Scene, scene_model: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("structure-from-motion ran again")

    monkeypatch.setattr(sfm_model, "run_sfm", fail)
    stages: list[str] = []

    class Recorder:
        def update(self, stage: str, fraction: float | None = None, info: str | None = None) -> None:
            stages.append(stage)

    views = load_or_solve_views(scene.photos, scene_model, Recorder())
    assert len(views) == N_VIEWS
    assert "sfm: reusing the model" in stages
    prints = photo_fingerprint(scene.photos)
    assert model_state(scene_model, prints, SfmOptions()) == "reuse"
    changed = [dict(p) for p in prints]
    changed[3]["bytes"] += 1
    assert model_state(scene_model, changed, SfmOptions()) == "stale"
    assert model_state(scene_model, prints[:-1], SfmOptions()) == "stale"
    assert model_state(scene_model, prints, SfmOptions(max_size=800)) == "stale"


def test_a_foreign_model_folder_is_left_alone(scene: Scene, tmp_path: Path) -> None:
    folder = tmp_path / "mine.sfm"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="recon did not write"):
        views_for_folder(scene.photos, folder)
    assert (folder / "notes.txt").read_text() == "keep me"
    (folder / MANIFEST).write_text(json.dumps({"format": "something else"}))
    assert model_state(folder, photo_fingerprint(scene.photos), SfmOptions()) == "foreign"
