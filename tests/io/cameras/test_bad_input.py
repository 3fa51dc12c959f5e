"""Bad posed-image input: each case is one line naming the file, the problem and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recon.errors import InputError
from recon.io.cameras import load_views
from recon.io.cameras.nerf import write_transforms


def copy_scene(folder: Path, dst: Path) -> Path:
    shutil.copytree(folder, dst)
    return dst


def assert_one_line(exc: pytest.ExceptionInfo, path: Path, *fragments: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg, msg
    assert "Fix:" in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def test_pose_count_differs_from_image_count(rendered, tmp_path):
    scene = copy_scene(rendered[1], tmp_path / "s")
    (scene / "images" / "r_007.png").unlink()
    with pytest.raises(InputError) as exc:
        load_views(scene / "cameras.npz")
    assert_one_line(exc, scene / "cameras.npz", "8 poses", "7 images")


def test_missing_image_in_transforms_and_colmap(rendered, tmp_path):
    scene = copy_scene(rendered[1], tmp_path / "s")
    (scene / "images" / "r_003.png").unlink()
    with pytest.raises(InputError) as exc:
        load_views(scene / "transforms.json")
    assert_one_line(exc, scene / "transforms.json", "missing image", "r_003")
    with pytest.raises(InputError) as exc:
        load_views(scene / "sparse" / "0")
    assert_one_line(exc, scene / "sparse" / "0" / "images.txt", "missing image", "r_003.png")


def test_images_of_different_sizes_in_one_camera(rendered, tmp_path):
    from PIL import Image

    scene = copy_scene(rendered[1], tmp_path / "s")
    Image.new("RGBA", (31, 32)).save(scene / "images" / "r_002.png")
    for target in ("transforms.json", "sparse/0", "cameras.npz"):
        with pytest.raises(InputError) as exc:
            load_views(scene / target)
        msg = str(exc.value)
        assert "r_002.png is 31x32" in msg and "32x32" in msg and "\n" not in msg, msg


@pytest.mark.parametrize("model,params", [("OPENCV_FISHEYE", "500 500 16 16 0.1 0 0 0"), ("FOV", "500 500 16 16 0.5")])
def test_unsupported_colmap_model_is_named(rendered, tmp_path, model, params):
    scene = copy_scene(rendered[1], tmp_path / "s")
    cams = scene / "sparse" / "0" / "cameras.txt"
    lines = [ln if ln.startswith("#") else " ".join(ln.split()[:2]).replace("PINHOLE", model) + " 32 32 " + params
             for ln in cams.read_text().splitlines()]
    cams.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as exc:
        load_views(scene / "sparse" / "0")
    assert_one_line(exc, cams, f"unsupported COLMAP camera model {model}",
                    "SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV")


def test_fisheye_transforms_is_refused(rendered, tmp_path):
    scene = copy_scene(rendered[1], tmp_path / "s")
    data = json.loads((scene / "transforms.json").read_text())
    data["camera_model"] = "OPENCV_FISHEYE"
    (scene / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        load_views(scene / "transforms.json")
    assert_one_line(exc, scene / "transforms.json", "OPENCV_FISHEYE", "PINHOLE")


def test_cameras_looking_away_from_the_scene(rendered, tmp_path):
    """The rendered rig turned around (each camera rotated 180 degrees about its y axis)."""
    result, folder, _ = rendered
    scene = copy_scene(folder, tmp_path / "s")
    cams = result.cameras
    away = cams.cam_to_world.copy()
    away[:, :3, 0] *= -1
    away[:, :3, 2] *= -1
    from recon.types import Cameras

    turned = Cameras(cams.K, away, cams.width, cams.height)
    write_transforms(scene / "transforms.json", turned, [f"images/r_{i:03d}.png" for i in range(len(cams))])
    with pytest.raises(InputError) as exc:
        load_views(scene / "transforms.json")
    assert_one_line(exc, scene / "transforms.json", "look away")


def test_folder_without_a_recognised_format(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError) as exc:
        load_views(tmp_path)
    assert_one_line(exc, tmp_path, "no recognised camera format", "transforms.json", "COLMAP", "cameras.npz",
                    "_par.txt")
    with pytest.raises(InputError) as exc:
        load_views(tmp_path / "notes.txt")
    assert_one_line(exc, tmp_path / "notes.txt", "not a recognised camera file")


def test_malformed_files(rendered, tmp_path):
    scene = copy_scene(rendered[1], tmp_path / "s")
    (scene / "transforms.json").write_text("{not json")
    with pytest.raises(InputError) as exc:
        load_views(scene / "transforms.json")
    assert_one_line(exc, scene / "transforms.json", "invalid JSON")
    (scene / "cameras.npz").write_bytes(b"garbage")
    with pytest.raises(InputError) as exc:
        load_views(scene / "cameras.npz")
    assert_one_line(exc, scene / "cameras.npz", "not a valid .npz")
    par = scene / "x_par.txt"
    par.write_text("2\nr_000.png 1 2 3\n")
    with pytest.raises(InputError) as exc:
        load_views(par)
    assert_one_line(exc, par, "expected 22")


def test_mask_dir_matches_by_stem_and_reports_missing_masks(rendered, tmp_path):
    from PIL import Image

    _, folder, _ = rendered
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(8):
        Image.new("L", (32, 32), 255).save(masks / f"r_{i:03d}.jpg")
    views = load_views(folder / "sparse" / "0", mask_dir=masks)
    assert [Path(m).stem for m in views.mask_paths] == [Path(p).stem for p in views.image_paths]
    (masks / "r_004.jpg").unlink()
    with pytest.raises(InputError) as exc:
        load_views(folder / "sparse" / "0", mask_dir=masks)
    assert_one_line(exc, masks, "no mask for image r_004.png")
