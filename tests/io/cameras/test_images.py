"""Reading view images: values, masks, area downsampling and the matching intrinsics."""

from __future__ import annotations

import numpy as np

from recon.io.cameras import load_views
from recon.io.images import area_resize, read_view_images
from recon.ops.rays import project


def test_full_size_images_and_alpha_masks_match_the_render(rendered):
    result, folder, _ = rendered
    rgb, masks, cams = read_view_images(load_views(folder / "sparse" / "0"))
    assert rgb.dtype == np.float32 and rgb.shape == result.rgb.shape
    np.testing.assert_allclose(rgb, result.rgb, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(masks, result.alpha, atol=0.5 / 255 + 1e-6)
    np.testing.assert_array_equal(cams.K, load_views(folder / "sparse" / "0").cameras.K)


def test_downscaled_images_keep_area_and_geometry(rendered):
    result, folder, mesh = rendered
    views = load_views(folder)
    _, full_masks, _ = read_view_images(views)
    rgb, masks, small = read_view_images(views, max_size=16)
    assert rgb.shape == (8, 16, 16, 3) and masks.shape == (8, 16, 16)
    assert (small.width, small.height) == (16, 16)
    np.testing.assert_allclose(masks.mean(axis=(1, 2)), full_masks.mean(axis=(1, 2)), atol=1e-5)
    # a 2x2 block average of the full image is the small image (exact area downsampling)
    blocks = full_masks.reshape(8, 16, 2, 16, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(masks, blocks, atol=1e-6)
    # the mesh centre projects to the same place, in units of the image, at both sizes
    c = views.cameras
    for i in range(len(c)):
        uv_full, _ = project(c.K[i], c.cam_to_world[i], mesh.vertices[:50])
        uv_small, _ = project(small.K[i], small.cam_to_world[i], mesh.vertices[:50])
        np.testing.assert_allclose(uv_small, uv_full * 0.5, atol=1e-9)


def test_area_resize_non_integer_factor_preserves_the_mean(rng):
    img = rng.uniform(size=(30, 21, 3)).astype(np.float32)
    out = area_resize(img, 8, 11)
    assert out.shape == (11, 8, 3)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), img.mean(axis=(0, 1)), atol=1e-5)
    const = area_resize(np.full((30, 21), 0.25, np.float32), 8, 11)
    np.testing.assert_allclose(const, 0.25, atol=1e-6)


def test_background_compositing(rendered):
    _, folder, _ = rendered
    rgb, masks, _ = read_view_images(load_views(folder), background=(1.0, 1.0, 1.0))
    empty = masks == 0
    assert empty.any()
    np.testing.assert_allclose(rgb[empty], 1.0)
