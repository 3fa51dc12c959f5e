"""Untrusted posed-image datasets (issue 20): names stay inside the folder, matrices must be usable.

Uses the rendered scene of ``conftest.py`` (transforms.json with depth files, a COLMAP text model and
cameras.npz, images in ``images/``), altered one way per test.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from recon.errors import InputError
from recon.io.cameras import load_views
from recon.io.cameras.colmap import read_cameras_binary, read_images_binary, read_points3d
from recon.io.cameras.middlebury import write_par


@pytest.fixture
def scene(rendered, tmp_path: Path) -> Path:
    """A private copy of the rendered scene inside ``tmp_path / "s"``; ``tmp_path`` holds an outside file."""
    folder = shutil.copytree(rendered[1], tmp_path / "s")
    shutil.copy(folder / "images" / "r_000.png", tmp_path / "outside.png")
    return folder


def refused(target: Path, *fragments: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (division by zero ...) on the way
        with pytest.raises(InputError) as exc:
            load_views(target)
    msg = str(exc.value)
    assert "\n" not in msg and "Fix:" in msg, msg
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


# --------------------------------------------------------------------------- names leaving the folder


def _set_nerf_path(scene: Path, frame: int, key: str, value: str) -> None:
    data = json.loads((scene / "transforms.json").read_text())
    data["frames"][frame][key] = value
    (scene / "transforms.json").write_text(json.dumps(data))


@pytest.mark.parametrize("name", ["../outside.png", "images/../../outside", "{abs}", "/etc/hostname", "../../../../etc/hostname"])
def test_nerf_file_path_outside_the_folder(scene: Path, name: str) -> None:
    name = name.replace("{abs}", str(scene.parent / "outside.png"))
    _set_nerf_path(scene, 3, "file_path", name)
    refused(scene / "transforms.json", name[:60], "dataset folder")


def test_nerf_symlink_leading_out_is_refused(scene: Path) -> None:
    link = scene / "images" / "r_003.png"
    link.unlink()
    link.symlink_to(scene.parent / "outside.png")
    refused(scene / "transforms.json", "r_003.png", "symbolic link")


def test_nerf_names_inside_the_folder_still_work(scene: Path) -> None:
    """Sub-folders, ``./`` and harmless ``..`` that stay inside, and a dataset reached through a link."""
    _set_nerf_path(scene, 0, "file_path", "./images/../images/r_000")
    (scene / "sub").mkdir()
    shutil.move(scene / "images" / "r_001.png", scene / "sub" / "r_001.png")
    _set_nerf_path(scene, 1, "file_path", "sub/r_001.png")
    views = load_views(scene / "transforms.json")
    assert len(views) == 8 and Path(views.image_paths[1]).name == "r_001.png"
    link = scene.parent / "linked"
    link.symlink_to(scene, target_is_directory=True)
    assert len(load_views(link / "transforms.json")) == 8


def test_nerf_depth_path_outside_the_folder(scene: Path) -> None:
    _set_nerf_path(scene, 2, "depth_file_path", "../../secret.npy")
    refused(scene / "transforms.json", "depth map", "outside the dataset folder")


@pytest.mark.parametrize("name", ["../../outside.png", "/etc/hostname"])
def test_colmap_image_name_outside_the_folder(scene: Path, name: str) -> None:
    images = scene / "sparse" / "0" / "images.txt"
    text = images.read_text().replace("r_005.png", name.replace("../../", "../../../"))
    images.write_text(text)
    refused(scene / "sparse" / "0", "dataset folder")


def test_colmap_symlinked_image_leading_out(scene: Path) -> None:
    link = scene / "images" / "r_002.png"
    link.unlink()
    os.symlink(scene.parent / "outside.png", link)
    refused(scene / "sparse" / "0", "symbolic link")


def test_middlebury_name_outside_the_folder(rendered, scene: Path) -> None:
    cams = rendered[0].cameras
    names = [f"images/r_{i:03d}.png" for i in range(len(cams))]
    names[4] = "../outside.png"
    write_par(scene / "s_par.txt", cams, names)
    refused(scene / "s_par.txt", "../outside.png", "dataset folder")


def test_dtu_image_symlink_leading_out(scene: Path) -> None:
    link = scene / "images" / "r_006.png"
    link.unlink()
    link.symlink_to(scene.parent / "outside.png")
    refused(scene / "cameras.npz", "symbolic link")


# --------------------------------------------------------------------------- unusable matrices


def _rewrite_npz(path: Path, **changes: np.ndarray) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_dtu_singular_world_mat(scene: Path) -> None:
    with np.load(scene / "cameras.npz") as z:
        bad = z["world_mat_2"].copy()
    bad[2, :3] = bad[0, :3] * 2.0  # rows 0 and 2 of K R dependent
    _rewrite_npz(scene / "cameras.npz", world_mat_2=bad)
    refused(scene / "cameras.npz", "world_mat_2", "singular")


def test_dtu_singular_scale_mat(scene: Path) -> None:
    _rewrite_npz(scene / "cameras.npz", scale_mat_0=np.zeros((4, 4)))
    refused(scene / "cameras.npz", "scale_mat_0", "singular")


def test_dtu_non_numeric_matrix(scene: Path) -> None:
    _rewrite_npz(scene / "cameras.npz", world_mat_1=np.array(["a", "b"]))
    refused(scene / "cameras.npz", "world_mat_1", "numeric")


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("fl_x", "abc", "fl_x is not a number"),
    ("fl_x", float("nan"), "fl_x must be a finite positive number"),
    ("fl_y", -3.0, "fl_y must be a finite positive number"),
    ("camera_angle_x", 0.0, "camera_angle_x must be a finite positive number"),
    ("w", [1, 2], "w is not a number"),
    ("k1", float("inf"), "k1 must be a finite number"),
])
def test_nerf_bad_intrinsics(scene: Path, key: str, value: object, fragment: str) -> None:
    data = json.loads((scene / "transforms.json").read_text())
    if key == "camera_angle_x":
        data.pop("fl_x")  # otherwise fl_x wins over the angle
    data[key] = value
    (scene / "transforms.json").write_text(json.dumps(data))
    refused(scene / "transforms.json", fragment)


def test_nerf_degenerate_rotation(scene: Path) -> None:
    data = json.loads((scene / "transforms.json").read_text())
    m = np.array(data["frames"][5]["transform_matrix"])
    m[:3, :3] = 0.0
    data["frames"][5]["transform_matrix"] = m.tolist()
    (scene / "transforms.json").write_text(json.dumps(data))
    refused(scene / "transforms.json", "camera 5", "singular rotation")


@pytest.mark.parametrize("quaternion", ["0 0 0 0", "nan 0 0 1"])
def test_colmap_bad_quaternion(scene: Path, quaternion: str) -> None:
    images = scene / "sparse" / "0" / "images.txt"
    lines = images.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if ln and not ln.startswith("#"))
    tok = lines[i].split()
    lines[i] = " ".join([tok[0], *quaternion.split(), *tok[5:]])
    images.write_text("\n".join(lines) + "\n")
    refused(scene / "sparse" / "0", "non-finite or zero pose")


def test_colmap_non_finite_intrinsics(scene: Path) -> None:
    cams = scene / "sparse" / "0" / "cameras.txt"
    lines = [ln if ln.startswith("#") or not ln.strip() else " ".join(ln.split()[:4] + ["nan"] + ln.split()[5:])
             for ln in cams.read_text().splitlines()]
    cams.write_text("\n".join(lines) + "\n")
    refused(scene / "sparse" / "0", "non-finite parameters")


def test_middlebury_non_finite_or_zero_k33(rendered, scene: Path) -> None:
    cams = rendered[0].cameras
    names = [f"images/r_{i:03d}.png" for i in range(len(cams))]
    write_par(scene / "s_par.txt", cams, names)
    par = scene / "s_par.txt"
    lines = par.read_text().splitlines()
    tok = lines[3].split()
    tok[9] = "0"  # k33
    lines[3] = " ".join(tok)
    par.write_text("\n".join(lines) + "\n")
    refused(par, "k33 = 0")
    tok[9], tok[12] = "1", "inf"
    lines[3] = " ".join(tok)
    par.write_text("\n".join(lines) + "\n")
    refused(par, "non-finite")


@pytest.mark.parametrize(("reader", "name", "count"), [
    (read_cameras_binary, "cameras.bin", 2**40),
    (read_images_binary, "images.bin", 2**63),
])
def test_colmap_binary_counts_beyond_the_file(tmp_path: Path, reader, name: str, count: int) -> None:
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", count) + bytes(100))
    with pytest.raises(InputError, match="truncated binary file"):
        reader(path)


def test_colmap_points3d_count_beyond_the_file(tmp_path: Path) -> None:
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text("1 PINHOLE 8 8 8 8 4 4\n")
    (model / "images.txt").write_text("")
    (model / "points3D.bin").write_bytes(struct.pack("<Q", 2**62) + bytes(60))
    with pytest.raises(InputError, match="points3D records"):
        read_points3d(tmp_path)
