"""Issue 20, readers: small hostile files get one clean error line from the real CLI, in bounded memory.

Each case is a file (or posed-image folder) crafted to make a trusting reader allocate gigabytes,
crash with a traceback or open a file outside the dataset. ``recon reconstruct BAD -o out.ply``
and ``recon info BAD`` must both refuse it: exit status 2, one ``error:`` line naming the problem,
no output, the input unchanged and peak memory at most 2 GiB (:func:`assert_clean_refusal`).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import laspy
import numpy as np
import pytest
from PIL import Image
from tests.e2e.trust_helpers import assert_clean_refusal, run_cli, snapshot

PCD_HEAD = ("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT {count}\nWIDTH {n}\nHEIGHT 1\n"
            "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n")


def inflated_laz(folder: Path) -> Path:
    """A real ~600 KB LAZ of 100,000 points whose header claims 38 million (1.3 GB of records)."""
    rng = np.random.default_rng(0)
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.zeros(3)
    las = laspy.LasData(header)
    pts = rng.normal(size=(100_000, 3)) * 50
    las.x, las.y, las.z = pts[:, 0], pts[:, 1], pts[:, 2]
    buf = io.BytesIO()
    las.write(buf, do_compress=True)
    data = bytearray(buf.getvalue())
    data[107:111] = (38_000_000).to_bytes(4, "little")  # legacy point count
    path = folder / "inflated.laz"
    path.write_bytes(bytes(data))
    return path


def lzf_pcd(folder: Path) -> Path:
    """A 60 KB binary_compressed PCD whose valid LZF stream is declared to hold 3.6 GB (300 M points)."""
    n = 300_000_000
    # a literal byte, then back-references of 264 bytes each: a valid stream, just not this long
    stream = bytes([0, 0]) + bytes([0xE0, 255, 0]) * 20_000
    head = PCD_HEAD.format(count="1 1 1", n=n, data="binary_compressed").encode()
    path = folder / "huge_lzf.pcd"
    path.write_bytes(head + np.array([len(stream), n * 12], "<u4").tobytes() + stream)
    return path


def _zip_one(name: str, deflated: bytes, size: int, crc: int) -> bytes:
    """A one-member zip archive (deflate) holding ``deflated`` as ``name``."""
    fname = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(deflated), size, len(fname), 0) + fname
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(deflated), size,
                          len(fname), 0, 0, 0, 0, 0, 0) + fname
    offset = len(local) + len(deflated)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    return local + deflated + central + end


def zip_bomb_npz(folder: Path) -> Path:
    """A valid ~500 KB npz whose ``points`` array (480 MiB of zeros, (N, 3) float32) deflates ~1000x."""
    mib = 1 << 20
    blocks = 480
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f4", "fortran_order": False, "shape": (blocks * mib // 12, 3)})
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(mib)
    head = comp.compress(hdr.getvalue()) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)  # after a full flush every MiB codes the same
    deflated = head + block * blocks + comp.flush()
    crc = zlib.crc32(hdr.getvalue())
    for _ in range(blocks):  # 480 MiB of zeros: the member's true CRC
        crc = zlib.crc32(zeros, crc)
    path = folder / "bomb.npz"
    path.write_bytes(_zip_one("points.npy", deflated, len(hdr.getvalue()) + blocks * mib, crc))
    return path


def ply_list_2_40(folder: Path) -> Path:
    """An ASCII PLY mesh whose one face claims 2**40 vertex indices."""
    path = folder / "list_2_40.ply"
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                     b"element face 1\nproperty list uint int vertex_indices\nend_header\n"
                     b"0 0 0\n1 0 0\n0 1 0\n1099511627776 0 1 2\n")
    return path


def pcd_count_1e9(folder: Path) -> Path:
    """A binary PCD whose z field has COUNT 1000000000 (4 GB per point)."""
    path = folder / "count.pcd"
    path.write_bytes(PCD_HEAD.format(count="1 1 1000000000", n=10, data="binary").encode() + bytes(120))
    return path


def _png(path: Path, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (128, 64, 32)).save(path)


def nerf_escape(folder: Path) -> Path:
    """A NeRF folder whose frame names ../../../../etc/hostname as its image."""
    scene = folder / "nerf"
    _png(scene / "r_0.png")
    eye = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
    frames = [{"file_path": "./r_0", "transform_matrix": eye},
              {"file_path": "../../../../etc/hostname", "transform_matrix": eye}]
    (scene / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
    return scene


def dtu_singular(folder: Path) -> Path:
    """A DTU/IDR folder whose world_mat_1 has a singular 3x3 part (third row all zero)."""
    scene = folder / "dtu"
    for i in range(2):
        _png(scene / "image" / f"{i:06d}.png")
    good = np.array([[8.0, 0, 4, 0], [0, 8, 4, 0], [0, 0, 1, 4], [0, 0, 0, 1]])
    bad = good.copy()
    bad[2, :3] = 0.0
    with open(scene / "cameras.npz", "wb") as fh:
        np.savez(fh, world_mat_0=good, world_mat_1=bad, scale_mat_0=np.eye(4), scale_mat_1=np.eye(4))
    return scene


# (maker, fragments the error line must contain)
CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "inflated_laz": (inflated_laz, ("38,000,000 points", "decompression bomb")),
    "lzf_pcd_huge_size": (lzf_pcd, ("binary_compressed", "decompression bomb")),
    "zip_bomb_npz": (zip_bomb_npz, (".npz", "decompression bomb")),
    "ply_list_2_40": (ply_list_2_40, ("PLY", "list length")),
    "pcd_count_1e9": (pcd_count_1e9, ("COUNT 1 1 1000000000",)),
    "nerf_file_path_escape": (nerf_escape, ("../../../../etc/hostname", "outside the dataset folder")),
    "dtu_singular_world_mat": (dtu_singular, ("world_mat_1", "singular")),
}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every crafted input, made once for the module."""
    folder = tmp_path_factory.mktemp("hostile")
    return {name: make(folder) for name, (make, _) in CASES.items()}


def test_crafted_inputs_are_small(crafted: dict[str, Path]) -> None:
    """The point of the cases: each input is far under 10 MB."""
    for path in crafted.values():
        total = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
        assert total < 2_000_000, (path, total)


@pytest.mark.parametrize("command", ["reconstruct", "info"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_refused_cleanly(crafted: dict[str, Path], tmp_path: Path, case: str, command: str) -> None:
    bad = crafted[case]
    before = snapshot([bad])
    out = tmp_path / "out.ply"
    args = ["reconstruct", bad, "-o", out] if command == "reconstruct" else ["info", bad]
    proc = run_cli(*args, cwd=tmp_path, timeout=120)
    assert_clean_refusal(proc, *CASES[case][1], inputs=before, no_output=[out])
