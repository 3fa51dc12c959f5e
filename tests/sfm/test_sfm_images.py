"""Working copies of the photos: EXIF orientation and focal length, grayscale, mixed sizes; and the alignment."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.sfm.align import centre_errors, rig_extent, rotation_errors_deg, similarity
from recon.sfm.images import (
    inspect_photo,
    plan_working_images,
    working_size,
    write_working_image,
)

ORIENTATION, EXIF_IFD, FOCAL_35 = 0x0112, 0x8769, 0xA405


def write_jpeg(path: Path, array: np.ndarray, orientation: int | None = None, focal_35: int | None = None) -> Path:
    """A JPEG of ``array`` (H, W, 3) uint8 as stored, with optional EXIF orientation and 35 mm focal length."""
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if focal_35 is not None:
        exif.get_ifd(EXIF_IFD)[FOCAL_35] = focal_35
    Image.fromarray(array).save(path, format="JPEG", quality=98, exif=exif.tobytes())
    return path


def test_exif_orientation_and_focal_length(tmp_path: Path) -> None:
    # stored 48 wide x 32 high: left half black, right half white; orientation 6 = rotate 90 degrees clockwise
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:, 24:] = 255
    path = write_jpeg(tmp_path / "p.jpg", stored, orientation=6, focal_35=27)
    photo = inspect_photo(path)
    assert (photo.width, photo.height, photo.orientation) == (32, 48, 6)
    assert photo.focal_px == pytest.approx(27 / 36 * 48)
    (item,) = plan_working_images([photo], 32, 48)
    assert item.scale == 1.0 and item.focal_px == pytest.approx(36.0)
    write_working_image(item, tmp_path, 32, 48)
    out = np.asarray(Image.open(tmp_path / item.name).convert("L"), np.float64)
    assert out.shape == (48, 32)
    # rotated clockwise, the stored left (black) half is now on top and the white half at the bottom
    assert out[:20].mean() < 30 and out[-20:].mean() > 225


def test_no_exif_no_focal_and_implausible_focal_ignored(tmp_path: Path) -> None:
    plain = write_jpeg(tmp_path / "a.jpg", np.full((20, 30, 3), 90, np.uint8))
    assert inspect_photo(plain).focal_px is None and inspect_photo(plain).orientation == 1
    silly = write_jpeg(tmp_path / "b.jpg", np.full((20, 30, 3), 90, np.uint8), focal_35=5000)
    assert inspect_photo(silly).focal_px is None  # 5000 mm would be 4000 px for a 30 px photo


def test_grayscale_and_mixed_sizes_become_one_rgb_size(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None] * 4, (48, 1))).save(src / "gray.png")  # 64x48 L
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(src / "rgb.png")  # 64x48
    Image.fromarray(np.full((128, 96, 3), 50, np.uint8)).save(src / "tall.png")  # 96x128: another size
    photos = [inspect_photo(p) for p in sorted(src.iterdir())]
    w, h = working_size(photos, max_size=32)
    assert (w, h) == (32, 24)  # the most common size (64x48), its longest side scaled to 32
    plan = plan_working_images(photos, w, h)
    by_name = {p.photo.name: p for p in plan}
    assert by_name["tall.png"].scale == pytest.approx(max(32 / 96, 24 / 128))
    assert by_name["gray.png"].group == by_name["rgb.png"].group != by_name["tall.png"].group
    out = tmp_path / "out"
    out.mkdir()
    for item in plan:
        write_working_image(item, out, w, h)
        with Image.open(out / item.name) as im:
            assert im.size == (w, h) and im.mode == "RGB"
    assert sorted(p.name for p in out.iterdir()) == ["gray.png", "rgb.png", "tall.png"]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_similarity_recovers_a_known_transform(rng: np.random.Generator) -> None:
    src = rng.normal(size=(20, 3))
    R, s, t = _random_rotation(rng), 3.7, np.array([1.0, -2.0, 0.5])
    dst = s * src @ R.T + t
    s2, R2, t2 = similarity(src, dst)
    assert s2 == pytest.approx(s, rel=1e-9)
    np.testing.assert_allclose(R2, R, atol=1e-9)
    np.testing.assert_allclose(t2, t, atol=1e-9)
    assert centre_errors(src, dst).max() < 1e-9
    # noise of 0.01 on the targets: errors of that size, not zero and not large
    noisy = dst + rng.normal(scale=0.01, size=dst.shape)
    err = centre_errors(src, noisy)
    assert 0.002 < np.median(err) < 0.03
    # a reflection is not a similarity: mirrored targets cannot be matched
    assert centre_errors(src, dst * np.array([1, 1, -1])).max() > 0.1


def test_rotation_errors_and_extent(rng: np.random.Generator) -> None:
    n = 6
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = [_random_rotation(rng) for _ in range(n)]
    c2w[:, :3, 3] = rng.normal(size=(n, 3))
    R, s, t = _random_rotation(rng), 2.0, np.array([0.3, 0.0, -1.0])
    moved = c2w.copy()
    moved[:, :3, :3] = R @ c2w[:, :3, :3]
    moved[:, :3, 3] = s * c2w[:, :3, 3] @ R.T + t
    assert rotation_errors_deg(c2w, moved).max() < 1e-6
    tilt = math.radians(3.0)
    Rx = np.array([[1, 0, 0], [0, math.cos(tilt), -math.sin(tilt)], [0, math.sin(tilt), math.cos(tilt)]])
    moved[0, :3, :3] = moved[0, :3, :3] @ Rx
    err = rotation_errors_deg(c2w, moved)
    assert err[0] == pytest.approx(3.0, abs=1e-6) and err[1:].max() < 1e-6
    assert rig_extent(np.array([[0, 0, 0], [3, 4, 0], [1, 1, 0.0]])) == pytest.approx(5.0)
