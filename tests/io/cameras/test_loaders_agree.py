"""Every loader reads the renderer's folder as the same scene: same rays, same images, right pixels."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from recon.io.cameras import detect_format, load_views
from recon.io.cameras.colmap import MODEL_IDS, read_cameras_text, read_images_text
from recon.io.cameras.middlebury import write_par
from recon.ops.rays import pixel_rays, project


def write_colmap_binary(text_dir: Path, out_dir: Path) -> None:
    """Convert a COLMAP text model to binary with ``struct``, following COLMAP's file layout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cams = read_cameras_text(text_dir / "cameras.txt")
    blob = struct.pack("<Q", len(cams))
    for cid, cam in cams.items():
        blob += struct.pack("<iiQQ", cid, MODEL_IDS[cam.model], cam.width, cam.height)
        blob += struct.pack("<" + "d" * cam.params.size, *cam.params)
    (out_dir / "cameras.bin").write_bytes(blob)
    lines = [ln for ln in (text_dir / "images.txt").read_text().splitlines() if not ln.startswith("#")]
    images = read_images_text(text_dir / "images.txt")
    blob = struct.pack("<Q", len(images))
    for k, im in enumerate(images):
        pts = np.array(lines[2 * k + 1].split(), dtype=np.float64).reshape(-1, 3)
        blob += struct.pack("<i7di", k + 1, *im.qvec, *im.tvec, im.camera_id)
        blob += im.name.encode() + b"\0" + struct.pack("<Q", len(pts))
        blob += b"".join(struct.pack("<ddq", x, y, int(pid)) for x, y, pid in pts)
    (out_dir / "images.bin").write_bytes(blob)
    (out_dir / "points3D.bin").write_bytes(struct.pack("<Q", 0))


@pytest.fixture(scope="module")
def all_formats(rendered, tmp_path_factory):
    """Views loaded from transforms.json, COLMAP text, COLMAP binary, cameras.npz and a *_par.txt."""
    result, folder, _ = rendered
    bin_root = tmp_path_factory.mktemp("colmap_bin")
    shutil.copytree(folder / "images", bin_root / "images")
    write_colmap_binary(folder / "sparse" / "0", bin_root / "sparse" / "0")
    par_root = tmp_path_factory.mktemp("middlebury")
    shutil.copytree(folder / "images", par_root / "images")
    names = [Path(p).name for p in sorted((folder / "images").iterdir())]
    write_par(par_root / "scene_par.txt", result.cameras, names)
    return {
        "transforms": load_views(folder / "transforms.json"),
        "colmap_text": load_views(folder / "sparse" / "0" / "cameras.txt"),
        "colmap_binary": load_views(bin_root),
        "dtu": load_views(folder / "cameras.npz"),
        "middlebury": load_views(par_root),
    }


def grid_uv(width: int, height: int, n: int = 7) -> np.ndarray:
    """(n * n, 2) image points spread over the image, including corners and off-centre positions."""
    u = np.linspace(0.0, width, n) + 0.137
    v = np.linspace(0.0, height, n) - 0.071
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu.ravel(), vv.ravel()], -1)


@pytest.mark.parametrize("name", ["transforms", "colmap_text", "colmap_binary", "dtu", "middlebury"])
def test_every_format_gives_the_rendered_rays(all_formats, rendered, name):
    result, _, _ = rendered
    views = all_formats[name]
    cams = views.cameras
    assert len(views) == len(result.cameras)
    assert (cams.width, cams.height) == (result.cameras.width, result.cameras.height)
    assert cams.distortion is None
    uv = grid_uv(cams.width, cams.height)
    for c in range(len(views)):
        o, d, _ = pixel_rays(cams.K[c], cams.cam_to_world[c], uv)
        o0, d0, _ = pixel_rays(result.cameras.K[c], result.cameras.cam_to_world[c], uv)
        np.testing.assert_allclose(o, o0, atol=1e-5, rtol=0)
        np.testing.assert_allclose(d, d0, atol=1e-5, rtol=0)
    assert [Path(p).name for p in views.image_paths] == [f"r_{i:03d}.png" for i in range(len(views))]
    assert views.mask_paths == views.image_paths  # RGBA renders are their own masks


def test_binary_and_text_colmap_agree_exactly(all_formats):
    a, b = all_formats["colmap_text"].cameras, all_formats["colmap_binary"].cameras
    np.testing.assert_array_equal(a.K, b.K)
    np.testing.assert_array_equal(a.cam_to_world, b.cam_to_world)


def test_folder_detection_prefers_transforms(rendered):
    _, folder, _ = rendered
    assert detect_format(folder)[0] == "nerf"
    assert detect_format(folder / "sparse" / "0" / "images.txt")[0] == "colmap"
    assert detect_format(folder / "cameras.npz")[0] == "dtu"
    views = load_views(folder)
    assert views.depth_paths is not None and Path(views.depth_paths[0]).name == "r_000.npy"


def test_visible_vertices_project_onto_pixels_of_matching_depth(rendered, all_formats):
    """Front-facing sphere vertices land on covered pixels whose depth equals the vertex depth."""
    result, _, mesh = rendered
    cams = all_formats["colmap_binary"].cameras
    centre = mesh.vertices.mean(0)
    checked = 0
    for c in range(len(cams)):
        eye = cams.cam_to_world[c, :3, 3]
        normal = (mesh.vertices - centre) / np.linalg.norm(mesh.vertices - centre, axis=1, keepdims=True)
        to_eye = (eye - mesh.vertices) / np.linalg.norm(eye - mesh.vertices, axis=1, keepdims=True)
        facing = (normal * to_eye).sum(1) > 0.5  # well inside the visible cap, away from the silhouette
        uv, z = project(cams.K[c], cams.cam_to_world[c], mesh.vertices[facing])
        col, row = np.floor(uv).astype(int).T
        assert np.all((col >= 0) & (col < cams.width) & (row >= 0) & (row < cams.height))
        assert np.all(result.alpha[c][row, col] > 0.99)
        pixel_depth = result.depth[c][row, col]
        # a pixel centre is at most half a pixel diagonal from the vertex: depth differs by slope * footprint
        footprint = z / cams.K[c, 0, 0] * np.sqrt(0.5)
        assert np.all(np.abs(pixel_depth - z) < 2.0 * footprint + 1e-3), np.abs(pixel_depth - z).max()
        checked += facing.sum()
    assert checked > 100


def test_depth_backprojects_to_points_that_project_to_pixel_centres(rendered, all_formats):
    result, _, mesh = rendered
    cams = all_formats["dtu"].cameras
    c = 3
    rows, cols = np.nonzero(result.depth[c] > 0)
    uv = np.stack([cols + 0.5, rows + 0.5], -1).astype(np.float64)
    o, d, cos = pixel_rays(cams.K[c], cams.cam_to_world[c], uv)
    pts = o + d * (result.depth[c][rows, cols] / cos)[:, None]
    back, z = project(cams.K[c], cams.cam_to_world[c], pts)
    np.testing.assert_allclose(back, uv, atol=1e-4)
    # the points lie on the sphere (radius 1.5 polyhedron: between the inscribed and the circumscribed radius)
    r = np.linalg.norm(pts - mesh.vertices.mean(0), axis=1)
    assert np.all((r > 1.5 * 0.98) & (r < 1.5 + 1e-4))
