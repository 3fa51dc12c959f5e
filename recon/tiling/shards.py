"""Pass 2: spill every point into the shards of the tiles whose shard box (core + margin) holds it.

One task per piece (:func:`spill_piece`) reads the piece in chunks and appends each chunk's
points to one part file per (tile, piece): ``<shards>/<tile>/p<piece>.bin``, raw records of
:data:`SHARD_DTYPE`. Parts are written under a temporary name and renamed when the piece is
complete, so an interrupted pass leaves only whole parts (plus temporaries that are ignored
and later removed), pieces can be spilled in parallel without locks, and a piece can be redone
without touching the others. A tile's shard is the concatenation of its parts in piece order
(:func:`load_shard`), a deterministic order whatever order the tasks ran in.

Each point lands in exactly one core (``core = 1``) and in the margin of every other tile
whose shard box holds it (``core = 0``); see :meth:`recon.tiling.lattice.Lattice.memberships`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.tiling.lattice import Lattice, tile_id, unique_rows
from recon.tiling.streams import Piece, iter_chunks

SHARD_DTYPE = np.dtype([("xyz", "<f8", (3,)), ("normal", "<f4", (3,)), ("core", "u1")])
"""One shard record: world position (float64), normal (float32, NaN when the input has none),
and whether the point belongs to the tile's core."""


@dataclass
class PartInfo:
    """One part file written by :func:`spill_piece`.

    Attributes:
        tile: (i, j, k) tile.
        core: points of the part in the tile's core.
        margin: points of the part in the tile's margin only.
        sha1: hex digest of the part's bytes.
    """

    tile: tuple[int, int, int]
    core: int
    margin: int
    sha1: str


def part_name(piece: int) -> str:
    """The file name of ``piece``'s part in each tile's shard folder."""
    return f"p{piece:06d}.bin"


def spill_piece(piece: Piece, lattice: Lattice, shard_dir: str | os.PathLike,
                chunk_points: int = 1_000_000) -> list[PartInfo]:
    """Pass 2 on one piece (a Dask task): append its points to the parts of their tiles.

    Args:
        piece: the input range.
        lattice: the tiling.
        shard_dir: the shards folder (one sub-folder per tile).
        chunk_points: points read at a time (bounds memory: ~ 100 bytes per point).

    Returns:
        One :class:`PartInfo` per tile touched, sorted by tile.
    """
    root = Path(shard_dir)
    name = part_name(piece.index)
    tmp_name = f".{name}.tmp-{os.getpid()}"
    touched: dict[tuple[int, int, int], list] = {}  # tile -> [core, margin, sha1 object]
    try:
        for ch in iter_chunks(piece, chunk_points):
            if len(ch.xyz) == 0:
                continue
            pts, tiles, core = lattice.memberships(ch.xyz)
            rec = np.empty(len(pts), dtype=SHARD_DTYPE)
            rec["xyz"] = ch.xyz[pts]
            rec["normal"] = np.nan if ch.normals is None else ch.normals[pts]
            rec["core"] = core
            # group by tile, keeping the input order inside each group
            keys, inv = unique_rows(tiles)
            order = np.lexsort((pts, inv))
            bounds = np.searchsorted(inv[order], np.arange(len(keys) + 1))
            for t, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                tile = tuple(int(v) for v in keys[t])
                block = rec[order[a:b]]
                d = root / tile_id(tile)
                d.mkdir(parents=True, exist_ok=True)
                data = block.tobytes()
                with open(d / tmp_name, "ab") as fh:
                    fh.write(data)
                entry = touched.setdefault(tile, [0, 0, hashlib.sha1()])
                n_core = int(block["core"].sum())
                entry[0] += n_core
                entry[1] += len(block) - n_core
                entry[2].update(data)
        out = []
        for tile in sorted(touched):
            d = root / tile_id(tile)
            os.replace(d / tmp_name, d / name)
            c, m, h = touched[tile]
            out.append(PartInfo(tile, c, m, h.hexdigest()))
        return out
    except BaseException:
        for tile in touched:
            try:
                (root / tile_id(tile) / tmp_name).unlink()
            except OSError:
                pass
        raise


def spill_task(piece: Piece, lattice: Lattice, shard_dir: str, chunk_points: int) -> tuple[int, list[PartInfo]]:
    """The pass 2 Dask task: :func:`spill_piece`, returned with the piece's index."""
    return piece.index, spill_piece(piece, lattice, shard_dir, chunk_points)


def remove_temporaries(shard_dir: str | os.PathLike) -> int:
    """Delete leftover part temporaries of an interrupted pass 2; returns how many."""
    n = 0
    root = Path(shard_dir)
    if root.is_dir():
        for p in root.glob("*/.p*.bin.tmp-*"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def load_shard(shard_dir: str | os.PathLike, tile) -> np.ndarray:
    """A tile's shard: its parts concatenated in piece order, (N,) :data:`SHARD_DTYPE`."""
    d = Path(shard_dir) / tile_id(tile)
    parts = sorted(d.glob("p*.bin"))
    if not parts:
        return np.zeros(0, dtype=SHARD_DTYPE)
    return np.concatenate([np.fromfile(p, dtype=SHARD_DTYPE) for p in parts])


def shard_hash(part_hashes: list[tuple[int, str]]) -> str:
    """Digest of a shard from its parts' (piece, sha1) pairs (order-independent input, sorted)."""
    h = hashlib.sha1()
    for piece, digest in sorted(part_hashes):
        h.update(f"{piece}:{digest};".encode())
    return h.hexdigest()
