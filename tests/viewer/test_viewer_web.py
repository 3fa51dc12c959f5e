"""`recon view --web` in headless Chromium: the page loads, the render canvas appears and shows the scene."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import trimesh

from recon_apps.viewer.web import web_available
from tests.viewer.viewer_browser import find_chromium, screenshot_page, stop_process

BG = np.array([0x1F, 0x21, 0x24])  # recon_apps.viewer.app.BACKGROUND


def needs_web() -> None:
    ok, install = web_available()
    if not ok:
        pytest.skip(f"trame is not installed ({install})")
    if find_chromium() is None:
        pytest.skip("no headless browser (apt-get install -y chromium)")


@pytest.fixture
def server(tmp_path):
    """``recon view sphere.ply --web --port 0`` running; yields the URL it printed."""
    needs_web()
    path = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(3).export(path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen([sys.executable, "-m", "recon_apps.viewer.cli", "view", str(path), "--web", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "http://localhost:" in line, (line, proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        url = line.split("open ", 1)[1].split()[0]
        time.sleep(0.5)
        yield url
    finally:
        stop_process(proc)


def test_web_page_shows_the_rendered_scene(server, tmp_path):
    from PIL import Image

    png = tmp_path / "page.png"
    view = screenshot_page(server, png, tmp_path / "profile", size=(800, 600), timeout=30)
    assert view is not None and view[1] >= 300 and view[2] >= 200, view  # the render canvas, laid out
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    dark = (np.abs(img - BG).sum(axis=-1) < 12).mean()  # the scene's background inside the page
    sphere = ((img.min(axis=-1) > 90) & (img.max(axis=-1) < 235) & (img[..., 2] > img[..., 0])).mean()
    assert dark > 0.2, dark
    assert sphere > 0.03, sphere  # the grey-blue sphere is drawn, not a blank or loading page
