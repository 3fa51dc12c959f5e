"""recon.io.outputs and recon.io.atomic: output locations refused before work, temporaries cleaned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recon.errors import ConfigError, ReconError
from recon.io.atomic import atomic_write, remove_stale_temporaries
from recon.io.outputs import check_output_file, check_output_folder, is_inside, probe_writable, same_file


def test_same_file_sees_links_and_spellings(tmp_path, monkeypatch):
    a = tmp_path / "a.ply"
    a.write_text("x")
    (tmp_path / "sym.ply").symlink_to(a)
    os.link(a, tmp_path / "hard.ply")
    (tmp_path / "b.ply").write_text("x")  # same bytes, another file
    monkeypatch.chdir(tmp_path)
    assert same_file(a, "sym.ply") and same_file(a, "hard.ply") and same_file(a, "./sub/../a.ply")
    assert not same_file(a, "b.ply")
    assert same_file(tmp_path / "new.ply", "new.ply")  # neither exists yet: compared by resolved path
    assert not same_file(tmp_path / "new.ply", "other.ply")


def test_check_output_file(tmp_path):
    src = tmp_path / "in.ply"
    src.write_text("x")
    with pytest.raises(ConfigError, match="same file as the input"):
        check_output_file(src, [None, src])
    with pytest.raises(ConfigError, match="is a folder"):
        check_output_file(tmp_path, [src])
    with pytest.raises(ConfigError, match="does not exist"):
        check_output_file(tmp_path / "missing" / "o.ply", [src])
    assert check_output_file(tmp_path / "o.ply", [src]) == tmp_path / "o.ply"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".recon-write-probe")]


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys")
def test_probe_writable_tries_for_real():
    assert probe_writable("/sys") is not None  # os.access says yes to root here; a real create says no


def test_check_output_folder_protects_cwd_and_inputs(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    src = work / "sub" / "mesh.ply"
    src.write_text("x")
    monkeypatch.chdir(work / "sub")
    for bad in (".", "..", str(tmp_path)):
        with pytest.raises(ConfigError, match="current folder"):
            check_output_folder(bad, [])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="holds an input"):
        check_output_folder(work, [src])
    assert is_inside(src, work) and not is_inside(work, src)
    assert check_output_folder(tmp_path / "renders" / "deep", [src]) == tmp_path / "renders" / "deep"


def test_atomic_write_removes_only_dead_temporaries(tmp_path):
    target = tmp_path / "mesh.ply"
    dead = tmp_path / f".mesh.tmp-{2**22 + 7}-0123abcd.ply"
    live = tmp_path / f".mesh.tmp-{os.getpid()}-0123abcd.ply"
    other = tmp_path / f".other.tmp-{2**22 + 7}-0123abcd.ply"
    for p in (dead, live, other):
        p.write_text("partial")
    with atomic_write(target) as tmp:
        tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert not dead.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path / "other.ply") == [other]


def test_atomic_write_turns_os_errors_into_one_line(tmp_path):
    target = tmp_path / "mesh.ply"
    target.write_text("old")
    with pytest.raises(ReconError, match="cannot write the file") as e:
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")
    assert "No space left" in str(e.value) and target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.ply"]
