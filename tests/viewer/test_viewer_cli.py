"""`recon view` as a user runs it: one-line errors with exit status 2, screenshots, registration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
import typer

from recon.errors import ConfigError, ReconError
from recon_apps.viewer.cli import parse_size, register, view
from recon_apps.viewer.web import check_port


def run_view(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m recon_apps.viewer.cli view ARGS`` without a display."""
    e = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "recon_apps.viewer.cli", "view", *map(str, args)],
                          capture_output=True, text=True, env=e, timeout=120)


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, exactly one `error:` line on stderr, no traceback; returns the line."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def sphere_ply(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("view") / "sphere.ply"
    trimesh.creation.icosphere(3).export(path)
    return path


def test_no_display_names_both_ways_out(sphere_ply):
    line = assert_clean_error(run_view(sphere_ply), "no display", "--screenshot", "--web")
    assert "DISPLAY" in line


def test_unviewable_file_is_named(sphere_ply, tmp_path):
    bad = tmp_path / "scan.docx"
    bad.write_text("not a scan")
    assert_clean_error(run_view(sphere_ply, bad, "--screenshot", tmp_path / "o.png"), "scan.docx", "cannot show")
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\nend_header\n\x00")
    assert_clean_error(run_view(broken, "--screenshot", tmp_path / "o.png"), "broken.ply")
    assert not (tmp_path / "o.png").exists()


def test_screenshot_from_the_command_line(sphere_ply, tmp_path):
    out = tmp_path / "s.png"
    proc = run_view(sphere_ply, "--screenshot", out, "--size", "200x150", "--style", "flat")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "WARN" not in proc.stderr  # VTK's X11 probe is silenced
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (150, 200, 3)
    assert img.reshape(-1, 3).std(axis=0).max() > 10  # not blank


def test_port_in_use_is_named(sphere_ply):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"port {port} is already in use\. Fix: .*--port"):
            check_port(port)
        from recon_apps.viewer.web import web_available

        if web_available()[0]:
            assert_clean_error(run_view(sphere_ply, "--web", "--port", port), f"port {port}", "--port")
    assert check_port(0) > 0


def test_option_errors_in_process(sphere_ply, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(ReconError, match="no display"):
        view([sphere_ply])
    with pytest.raises(ConfigError, match=r"x\.jpg: cannot write a screenshot as '\.jpg'"):
        view([sphere_ply], screenshot=tmp_path / "x.jpg")
    with pytest.raises(ConfigError, match="--port is only used with --web"):
        view([sphere_ply], screenshot=tmp_path / "x.png", port=9000)
    with pytest.raises(ConfigError, match="unknown colour map"):
        view([sphere_ply], screenshot=tmp_path / "x.png", cmap="nope")
    cloud = tmp_path / "c.xyz"
    np.savetxt(cloud, np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(ConfigError, match=r"c\.xyz: the ground truth must be a mesh"):
        view([sphere_ply], gt=cloud, screenshot=tmp_path / "x.png")
    with pytest.raises(ConfigError, match=r"c\.xyz: cannot colour by 'rgb'"):
        view([cloud], screenshot=tmp_path / "x.png", color_by="rgb")
    assert parse_size("640x480") == (640, 480)
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        parse_size("big")


def test_register_adds_view_once():
    app = typer.Typer()

    @app.command()
    def other() -> None:
        """Another command, so typer keeps subcommands."""

    register(app)
    register(app)
    assert [c.name for c in app.registered_commands].count("view") == 1
    from typer.testing import CliRunner

    out = CliRunner().invoke(app, ["view", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "--screenshot" in out.output and "--gt" in out.output
