"""The interactive window on a virtual X display: real key presses and a right-click pick.

Runs when ``Xvfb`` is installed (``apt-get install -y xvfb``); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

SCRIPT = r"""
import json
import numpy as np, trimesh
from recon.types import Mesh, PointCloud
from recon_apps.viewer.app import Viewer
from recon_apps.viewer.scene import SceneOptions, build_panels

s = trimesh.creation.icosphere(3)
panels = build_panels([("m", Mesh(s.vertices, s.faces)), ("p", PointCloud(s.vertices, normals=s.vertex_normals))],
                      SceneOptions())
v = Viewer(panels, window_size=(600, 300))
v.bind_keys()
v.plotter.show(interactive_update=True, auto_close=False)
iren = v.plotter.iren.interactor
out = {"window": type(v.plotter.ren_win).__name__}

def press(key):
    iren.SetKeySym(key)
    iren.SetKeyCode(key)
    iren.InvokeEvent("KeyPressEvent")
    iren.InvokeEvent("CharEvent")

press("c"); out["colorings"] = [l.current.name for _, _, l in v.layers(("points", "mesh"))]
press("m"); out["style"] = [l.style for _, _, l in v.layers(("mesh",))]
press("n"); out["normals"] = [l.visible for _, _, l in v.layers(("normals",))]
press("h"); out["help"] = v.help_visible
iren.SetEventInformation(150, 150)  # the middle of the left panel (VTK: origin bottom left)
iren.InvokeEvent("MouseMoveEvent")
iren.InvokeEvent("RightButtonPressEvent")
iren.InvokeEvent("RightButtonReleaseEvent")
out["picked"] = None if v.picked is None else v.picked.tolist()
v.close()
print(json.dumps(out))
"""


def test_keys_and_picking_in_a_real_window(tmp_path):
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("no virtual X server (apt-get install -y xvfb)")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen([xvfb, "-displayfd", str(write_fd), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                              pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            display = f.readline().strip()
        assert display, "Xvfb did not report a display"
        env = {**os.environ, "DISPLAY": f":{display}"}
        env.pop("WAYLAND_DISPLAY", None)
        proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert out["window"] != "vtkEGLRenderWindow"  # an on-screen (X11) window
    assert out["colorings"] == ["height", "height"]  # mesh: solid > height; cloud: normal > height
    assert out["style"] == ["flat"]
    assert out["normals"] == [True]
    assert out["help"] is False
    assert out["picked"] is not None
    assert sum(c * c for c in out["picked"]) ** 0.5 == pytest.approx(1.0, abs=0.02)  # on the unit sphere
