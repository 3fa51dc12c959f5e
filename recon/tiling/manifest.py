"""The job manifest: one SQLite file per output folder, written by the driver only.

Tables:

* ``meta`` (key, value): the plan (lattice, counts summary), input fingerprint, options.
* ``pieces`` (id, path, start, stop, status, attempts, seconds, error): pass-2 progress.
* ``parts`` (piece, tile, core, margin, sha1): what each finished piece spilled into each tile.
* ``tiles`` (id, i, j, k, core, points, input_hash, fit_*, mesh_*, deps_hash, vertices, faces,
  error, ...): one row per tile with its bounds, status per phase, attempts, timings, outputs.
* ``events`` (time, tile, phase, attempt, status, worker, pid, seconds, cpu_seconds, rss_mib, error): one row per
  task attempt (the history that resume and the benchmarks read).

Every change is committed at once (WAL journal), so a killed run leaves a consistent manifest:
a tile is "done" only once its output file has been renamed into place.

``field_path`` and ``mesh_path`` are stored relative to the job folder (``tiles/0_0_0.ply``), for
reading only: the driver locates every file from the current job folder and the tile id, so a moved
or copied job folder resumes from its own files (older manifests stored absolute paths; those are
not followed either).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any, Iterable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS pieces (id INTEGER PRIMARY KEY, path TEXT, start INTEGER, stop INTEGER,
    status TEXT, attempts INTEGER DEFAULT 0, seconds REAL, error TEXT);
CREATE TABLE IF NOT EXISTS parts (piece INTEGER, tile TEXT, core INTEGER, margin INTEGER, sha1 TEXT,
    PRIMARY KEY (piece, tile));
CREATE TABLE IF NOT EXISTS tiles (id TEXT PRIMARY KEY, i INTEGER, j INTEGER, k INTEGER,
    lo_x REAL, lo_y REAL, lo_z REAL, hi_x REAL, hi_y REAL, hi_z REAL,
    core INTEGER, points INTEGER, input_hash TEXT,
    fit_status TEXT DEFAULT 'pending', fit_attempts INTEGER DEFAULT 0, fit_seconds REAL,
    field_path TEXT, field_sha1 TEXT,
    mesh_status TEXT DEFAULT 'pending', mesh_attempts INTEGER DEFAULT 0, mesh_seconds REAL,
    mesh_path TEXT, mesh_sha1 TEXT, deps_hash TEXT, vertices INTEGER, faces INTEGER,
    error TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL, tile TEXT, phase TEXT,
    attempt INTEGER, status TEXT, worker TEXT, pid INTEGER, seconds REAL, cpu_seconds REAL, rss_mib REAL, error TEXT);
"""

TILE_COLUMNS = ("id", "i", "j", "k", "lo_x", "lo_y", "lo_z", "hi_x", "hi_y", "hi_z", "core", "points", "input_hash",
                "fit_status", "fit_attempts", "fit_seconds", "field_path", "field_sha1", "mesh_status",
                "mesh_attempts", "mesh_seconds", "mesh_path", "mesh_sha1", "deps_hash", "vertices", "faces",
                "error", "updated")


class Manifest:
    """SQLite manifest of a batch job (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.db = sqlite3.connect(self.path, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        with self.db:
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------------ pieces and parts
    def reset_shards(self) -> None:
        """Forget pass 2 (the lattice changed)."""
        with self.db:
            self.db.execute("DELETE FROM pieces")
            self.db.execute("DELETE FROM parts")

    def done_pieces(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT id FROM pieces WHERE status = 'done'")}

    def piece_done(self, piece: int, path: str, start: int, stop: int, seconds: float, parts: Iterable) -> None:
        """Record a finished piece and its parts ((tile id, core, margin, sha1) tuples) in one transaction."""
        with self.db:
            self.db.execute("DELETE FROM parts WHERE piece = ?", (piece,))
            self.db.executemany("INSERT INTO parts (piece, tile, core, margin, sha1) VALUES (?, ?, ?, ?, ?)",
                                [(piece, *p) for p in parts])
            self.db.execute("INSERT OR REPLACE INTO pieces (id, path, start, stop, status, attempts, seconds) "
                            "VALUES (?, ?, ?, ?, 'done', "
                            "COALESCE((SELECT attempts FROM pieces WHERE id = ?), 0) + 1, ?)",
                            (piece, path, start, stop, piece, seconds))

    def tile_parts(self) -> dict[str, dict]:
        """Per tile: core and total points and the (piece, sha1) list of its parts."""
        out: dict[str, dict] = {}
        for r in self.db.execute("SELECT piece, tile, core, margin, sha1 FROM parts ORDER BY tile, piece"):
            t = out.setdefault(r["tile"], {"core": 0, "points": 0, "parts": []})
            t["core"] += r["core"]
            t["points"] += r["core"] + r["margin"]
            t["parts"].append((r["piece"], r["sha1"]))
        return out

    # ------------------------------------------------------------------ tiles
    def upsert_tile(self, tid: str, ijk, box, core: int, points: int, input_hash: str) -> None:
        """Insert a tile, or update its counts; a changed input hash resets both phases."""
        row = self.tile(tid)
        lo, hi = box
        with self.db:
            if row is None:
                self.db.execute("INSERT INTO tiles (id, i, j, k, lo_x, lo_y, lo_z, hi_x, hi_y, hi_z, core, points, "
                                "input_hash, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (tid, *map(int, ijk), *map(float, lo), *map(float, hi), core, points, input_hash,
                                 time.time()))
            elif row["input_hash"] != input_hash:
                self.db.execute("UPDATE tiles SET core = ?, points = ?, input_hash = ?, fit_status = 'pending', "
                                "mesh_status = 'pending', deps_hash = NULL, error = NULL, updated = ? WHERE id = ?",
                                (core, points, input_hash, time.time(), tid))

    def drop_tiles_except(self, keep: set[str]) -> None:
        """Remove tiles that no longer receive points (a changed input)."""
        rows = [r[0] for r in self.db.execute("SELECT id FROM tiles")]
        with self.db:
            self.db.executemany("DELETE FROM tiles WHERE id = ?", [(t,) for t in rows if t not in keep])

    def tile(self, tid: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM tiles WHERE id = ?", (tid,)).fetchone()

    def tiles(self) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM tiles ORDER BY i, j, k"))

    def update_tile(self, tid: str, **values: Any) -> None:
        bad = set(values) - set(TILE_COLUMNS)
        if bad:
            raise KeyError(f"unknown tile columns {sorted(bad)}")
        values["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        with self.db:
            self.db.execute(f"UPDATE tiles SET {cols} WHERE id = ?", (*values.values(), tid))

    # ------------------------------------------------------------------ events
    def log_event(self, tile: str, phase: str, attempt: int, status: str, result: dict | None = None,
                  error: str | None = None) -> None:
        r = result or {}
        with self.db:
            self.db.execute("INSERT INTO events (time, tile, phase, attempt, status, worker, pid, seconds, "
                            "cpu_seconds, rss_mib, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (time.time(), tile, phase, attempt, status, r.get("host"), r.get("pid"), r.get("seconds"),
                             r.get("cpu_seconds"), r.get("rss_mib"), error))

    def events(self) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM events ORDER BY id"))
