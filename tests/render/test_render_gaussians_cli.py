"""`recon render-gaussians`: novel views of saved Gaussians, readable as a posed-image folder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recon.backends.gvkf.gaussians import GaussianSet
from recon.errors import ConfigError, InputError
from recon_apps.cli import app


def test_render_gaussians_writes_a_loadable_folder(tmp_path):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(4000, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    GaussianSet.from_values(d * 0.5 + torch.tensor([1.0, 2.0, 3.0]), torch.full((4000,), 0.03), opacities=0.99,
                            colours=torch.tensor([0.2, 0.8, 0.2])).save(tmp_path / "g.npz")
    res = CliRunner().invoke(app, ["render-gaussians", str(tmp_path / "g.npz"), "-o", str(tmp_path / "out"),
                                   "--views", "3", "--size", "64", "--background", "black"])
    assert res.exit_code == 0, res.output
    assert "fps" in res.output
    from recon.io.cameras import load_views
    from recon.io.images import read_view_images

    views = load_views(tmp_path / "out")
    assert len(views) == 3 and views.cameras.width == 64
    rgb, masks, cams = read_view_images(views)
    # the shell of radius 0.5 (+ ~2 sigma) seen from the rig's distance covers its analytic disc
    dist = np.linalg.norm(cams.cam_to_world[:, :3, 3] - [1.0, 2.0, 3.0], axis=1)
    f = cams.K[0, 0, 0]
    r_px = f * np.tan(np.arcsin(0.55 / dist))
    expected = math.pi * r_px ** 2 / 64 ** 2
    cover = (masks > 0.5).mean(axis=(1, 2))
    assert np.allclose(cover, expected, rtol=0.15), (cover, expected)
    inside = masks > 0.9
    assert rgb[inside][:, 1].mean() > 0.7 and rgb[inside][:, 0].mean() < 0.3  # the Gaussians' green
    again = CliRunner().invoke(app, ["render-gaussians", str(tmp_path / "g.npz"), "-o", str(tmp_path / "out")])
    assert isinstance(again.exception, ConfigError) and "not empty" in str(again.exception)


def test_render_gaussians_rejects_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    res = CliRunner().invoke(app, ["render-gaussians", str(tmp_path / "x.npz"), "-o", str(tmp_path / "out")])
    assert isinstance(res.exception, InputError)
    line = res.exception.one_line()
    assert "x.npz" in line and "--save-gaussians" in line and "\n" not in line
    assert not (tmp_path / "out").exists()
