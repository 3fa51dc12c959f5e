"""Fuzzing: random and mutated bytes must give a cloud or an InputError, nothing else."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import laspy
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recon.errors import InputError
from recon.io import load_mesh, load_point_cloud
from recon.types import Mesh, PointCloud

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(12, 3)).astype(np.float32)
    ply_bin = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 12\nproperty float x\nproperty float y\n"
        b"property float z\nelement face 2\nproperty list uchar int vertex_indices\nend_header\n"
        + pts.tobytes()
        + bytes([3]) + np.array([0, 1, 2], "<i4").tobytes()
        + bytes([4]) + np.array([3, 4, 5, 6], "<i4").tobytes()
    )  # fmt: skip
    ply_ascii = b"ply\nformat ascii 1.0\nelement vertex 12\nproperty float x\nproperty float y\nproperty float z\nend_header\n" + b"\n".join(
        b" ".join(repr(float(v)).encode() for v in row) for row in pts
    )
    pcd_head = b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 4\nHEIGHT 3\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 12\n"
    raw = pts.T.tobytes()
    comp = b"".join(bytes([len(raw[i : i + 32]) - 1]) + raw[i : i + 32] for i in range(0, len(raw), 32))
    xyz = b"x,y,z\n" + b"\n".join(b",".join(repr(float(v)).encode() for v in row) for row in pts)
    npy = io.BytesIO()
    np.save(npy, pts)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = np.array([636000.0, 5e6, 0.0])
    header.scales = np.array([0.01, 0.01, 0.01])
    las = laspy.LasData(header)
    las.x, las.y, las.z = pts[:, 0] + 636000.0, pts[:, 1] + 5e6, pts[:, 2]
    las_buf = io.BytesIO()
    las.write(las_buf)
    return {
        ".ply": ply_bin,
        ".PLY": ply_ascii,
        ".pcd": pcd_head + b"DATA binary_compressed\n" + np.array([len(comp), len(raw)], "<u4").tobytes() + comp,
        ".Pcd": pcd_head + b"DATA binary\n" + pts.tobytes(),
        ".xyz": xyz,
        ".npy": npy.getvalue(),
        ".las": las_buf.getvalue(),
        ".bin": np.hstack([pts, np.ones((12, 1), np.float32)]).tobytes(),
    }


VALID = _valid_files()
EXTS = sorted(VALID)


def _check(ext: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f{ext}"
        path.write_bytes(data)
        for validate in (False, True):
            try:
                cloud = load_point_cloud(path, validate=validate)
            except InputError as exc:
                assert "\n" not in str(exc) and str(exc).startswith(str(path))
            else:
                assert isinstance(cloud, PointCloud)
                assert cloud.points.shape[1] == 3
        if ext.lower() == ".ply":
            try:
                mesh = load_mesh(path)
            except InputError:
                pass
            else:
                assert isinstance(mesh, Mesh)


def test_valid_seeds_load(tmp_path: Path) -> None:
    """The files the mutations start from are valid (otherwise the fuzzing proves little)."""
    for ext in EXTS:
        path = tmp_path / f"seed{ext}"
        path.write_bytes(VALID[ext])
        assert len(load_point_cloud(path, validate=False)) == 12


@SETTINGS
@given(ext=st.sampled_from(EXTS), data=st.binary(max_size=400))
def test_random_bytes(ext: str, data: bytes) -> None:
    _check(ext, data)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    ext = draw(st.sampled_from(EXTS))
    data = bytearray(VALID[ext])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "digit"]))
        # mutations are biased towards the header, where parsers make decisions
        pos = draw(st.integers(0, max(0, min(len(data) - 1, draw(st.sampled_from([200, len(data) - 1]))))))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "digit" and data:
            data[pos] = ord(draw(st.sampled_from("0123456789-.e \n")))
    return ext, bytes(data)


@settings(max_examples=200, deadline=None)
@given(case=mutated())
def test_mutated_valid_files(case: tuple[str, bytes]) -> None:
    _check(*case)
