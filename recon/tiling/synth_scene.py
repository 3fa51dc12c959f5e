"""A generated city-like airborne LiDAR scene, written in chunks (LAS/LAZ, binary PLY or NPY).

The scene is a square of side ``sqrt(points / density)`` metres cut into city blocks of about
``block`` metres. Every block is generated on its own from ``(seed, block index)``: rolling
terrain (a smooth height field), a few box buildings (flat roofs, walls) on built blocks, trees
(ellipsoidal crowns filled with clutter points) in parks and along streets. Points are sampled
per surface by area and kept like an airborne scanner would see them: each point is assigned the
nearest of several flight lines (along y, 600 m up), surfaces facing away are not seen, walls
and crowns are thinned by the cosine of the incidence angle, ground under roofs is occluded and
ground under crowns mostly so. Range noise is added along the beam, plus a few outliers above
the surface. Positions are local metres plus a georeferenced ``offset`` (float64).

Blocks are generated and written in order, one batch of blocks at a time, so memory does not
grow with the point count; the count is exactly ``points``. Three independent random streams per
block (layout, sampling, noise) make ``noise=0, outliers=0`` give the same positions without noise
(the clean reference of a noisy scene).

Classification (LAS): 2 ground, 5 vegetation, 6 building, 7 noise. Normals (unit, pointing out
of the surface towards the air) are stored when ``normals`` is set: LAS extra-bytes ``nx ny nz``,
PLY ``nx ny nz``, NPY columns 3..5.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from recon.errors import ConfigError
from recon.io.atomic import atomic_write

DEFAULT_OFFSET = (636000.0, 850000.0, 100.0)
MAX_POINTS = 2_000_000_000
"""Most points a scene may have (LAS 1.2 counts points in 32 bits; hours of generation already)."""
DENSITY_RANGE = (0.01, 10_000.0)
"""Points per square metre: below, blocks of a few points each (millions of them); above, a toy."""
MAX_NOISE = 10.0
MAX_SEED = 2 ** 63 - 1
#: bytes per point written, per format and normals (LAZ: a low estimate of the compressed size)
_BYTES_PER_POINT = {(".las", True): 46, (".las", False): 34, (".laz", True): 8, (".laz", False): 6,
                    (".ply", True): 37, (".ply", False): 25, (".npy", True): 48, (".npy", False): 24}
FLIGHT_SPACING = 160.0
FLIGHT_HEIGHT = 600.0
GROUND, VEGETATION, BUILDING, NOISE = 2, 5, 6, 7


@dataclass(frozen=True)
class SceneSpec:
    """Parameters of a generated scene.

    Attributes:
        points: exact number of points.
        seed: random seed (the scene is a pure function of the spec).
        density: points per square metre of ground (sets the scene side).
        block: city block edge, metres (also the unit of generation).
        offset: (3,) world position of the scene's local origin (georeferencing), metres.
        noise: range noise standard deviation along the beam, metres.
        outliers: fraction of points moved 1..30 m above their surface (birds, multipath).
    """

    points: int
    seed: int = 0
    density: float = 12.0
    block: float = 60.0
    offset: tuple[float, float, float] = DEFAULT_OFFSET
    noise: float = 0.03
    outliers: float = 0.0005

    def __post_init__(self) -> None:
        lo, hi = DENSITY_RANGE
        checks = (
            (_whole(self.points) and 1 <= self.points <= MAX_POINTS,
             f"points must be between 1 and {MAX_POINTS:,}, got {_short(self.points)}", "e.g. --points 1M"),
            (_whole(self.seed) and 0 <= self.seed <= MAX_SEED,
             f"seed must be a whole number between 0 and 2**63 - 1, got {_short(self.seed)}", "e.g. --seed 0"),
            (_number(self.density) and lo <= self.density <= hi,
             f"density must be between {lo:g} and {hi:,g} points per square metre, got {_short(self.density)}",
             "e.g. --density 12"),
            (_number(self.noise) and 0 <= self.noise <= MAX_NOISE,
             f"noise must be between 0 and {MAX_NOISE:g} metres, got {_short(self.noise)}", "e.g. --noise 0.03"),
            (_number(self.outliers) and 0 <= self.outliers < 1,
             f"outliers must be a fraction in [0, 1), got {_short(self.outliers)}", "e.g. --outliers 0.0005"),
            (_number(self.block) and 1 <= self.block <= 10_000,
             f"block must be 1..10000 metres, got {_short(self.block)}", "use the default 60"),
            (len(self.offset) == 3 and all(_number(v) and abs(v) < 1e9 for v in self.offset),
             f"offset must be three finite coordinates, got {_short(self.offset)}", "use the default"),
        )
        for ok, problem, fix in checks:
            if not ok:
                raise ConfigError(problem, None, fix)

    @property
    def side(self) -> float:
        """Scene edge, metres (a whole number of blocks)."""
        return self.blocks_per_side * self.block_edge

    @property
    def blocks_per_side(self) -> int:
        return max(1, int(round(math.sqrt(self.points / self.density) / self.block)))

    @property
    def block_edge(self) -> float:
        return math.sqrt(self.points / self.density) / self.blocks_per_side


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 30 else text[:27] + "..."


def _whole(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _number(v: object) -> bool:
    """A finite int or float (not a bool)."""
    return _whole(v) or (isinstance(v, (float, np.floating)) and math.isfinite(v))


def scene_format(path: str | os.PathLike) -> str:
    """The file format of ``path`` by its extension: ".las", ".laz", ".ply" or ".npy".

    Raises:
        ConfigError: another extension.
    """
    ext = Path(path).suffix.lower()
    if ext not in (".las", ".laz", ".ply", ".npy"):
        raise ConfigError(f"cannot write a scene as '{ext or '(no extension)'}'", path,
                          "name the output .laz, .las, .ply or .npy")
    return ext


def check_disk_space(path: str | os.PathLike, spec: "SceneSpec", normals: bool = True) -> int:
    """Refuse a scene whose file would not fit in its folder's free space; returns the estimated bytes.

    Raises:
        ConfigError: the estimate exceeds the free space.
    """
    p = Path(path)
    need = spec.points * _BYTES_PER_POINT[(scene_format(p), bool(normals))]
    try:
        free = shutil.disk_usage(p.parent if str(p.parent) else ".").free
    except OSError:
        return need  # the write itself will report the problem
    if need > free:
        raise ConfigError(f"the scene needs about {need / 1e9:.3g} GB but only {free / 1e9:.3g} GB are free", p,
                          "free some space, write elsewhere or ask for fewer --points")
    return need


def terrain_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ground height (local metres) of the rolling terrain at local (x, y)."""
    return (6.0 * np.sin(2 * np.pi * x / 410.0) * np.cos(2 * np.pi * y / 330.0)
            + 2.0 * np.sin(2 * np.pi * x / 97.0 + 1.3) * np.sin(2 * np.pi * y / 123.0))


def terrain_normal(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(K, 3) upward unit normals of :func:`terrain_height`."""
    a, b = 2 * np.pi / 410.0, 2 * np.pi / 330.0
    c, d = 2 * np.pi / 97.0, 2 * np.pi / 123.0
    dzdx = 6.0 * a * np.cos(a * x) * np.cos(b * y) + 2.0 * c * np.cos(c * x + 1.3) * np.sin(d * y)
    dzdy = -6.0 * b * np.sin(a * x) * np.sin(b * y) + 2.0 * d * np.sin(c * x + 1.3) * np.cos(d * y)
    n = np.stack([-dzdx, -dzdy, np.ones_like(x)], 1)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


@dataclass
class BlockLayout:
    """Objects of one block (local metres).

    Attributes:
        lo: (2,) block corner; edge: block edge.
        boxes: (B, 6) buildings [x0, y0, x1, y1, base z, roof z].
        trees: (T, 6) crowns [cx, cy, cz, rx (= ry), rz, ground z].
    """

    lo: np.ndarray
    edge: float
    boxes: np.ndarray
    trees: np.ndarray


def block_layout(spec: SceneSpec, index: int) -> BlockLayout:
    """The buildings and trees of block ``index`` (row-major over the scene)."""
    nb = spec.blocks_per_side
    edge = spec.block_edge
    lo = np.array([index % nb, index // nb], dtype=np.float64) * edge
    rng = np.random.default_rng([spec.seed, index, 0])
    street = min(8.0, 0.12 * edge)
    inner_lo, inner = lo + street, edge - 2 * street
    boxes, trees = [], []
    if rng.random() < 0.65 and inner > 10:  # a built block: a row of 1-4 buildings
        n = int(rng.integers(1, 5))
        cuts = np.sort(rng.uniform(0, 1, n - 1)) if n > 1 else np.zeros(0)
        edges = np.concatenate([[0.0], cuts, [1.0]]) * inner
        for a, b in zip(edges[:-1], edges[1:]):
            if b - a < 6:
                continue
            x0, x1 = inner_lo[0] + a + 1.0, inner_lo[0] + b - 1.0
            depth = rng.uniform(0.4, 0.9) * inner
            y0 = inner_lo[1] + rng.uniform(0, inner - depth)
            cx, cy = 0.5 * (x0 + x1), y0 + 0.5 * depth
            base = float(terrain_height(np.array([cx]), np.array([cy]))[0]) - 1.0
            boxes.append([x0, y0, x1, y0 + depth, base, base + 1.0 + rng.uniform(5, 30)])
        k = int(rng.integers(2, 8))  # street trees
    else:
        k = int(rng.integers(8, 24))  # a park
    for _ in range(k):
        cx, cy = lo + rng.uniform(0.1, 0.9, 2) * edge
        if any(b[0] - 3 < cx < b[2] + 3 and b[1] - 3 < cy < b[3] + 3 for b in boxes):
            continue
        g = float(terrain_height(np.array([cx]), np.array([cy]))[0])
        r, rz = rng.uniform(2.5, 6.0), rng.uniform(2.0, 4.5)
        trees.append([cx, cy, g + rng.uniform(3.0, 6.0) + rz, r, rz, g])
    return BlockLayout(lo, edge, np.asarray(boxes, dtype=np.float64).reshape(-1, 6),
                       np.asarray(trees, dtype=np.float64).reshape(-1, 6))


def _sensor(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(K, 3) scanner position per point: one of the two nearest flight lines (along y)."""
    line = np.floor(p[:, 0] / FLIGHT_SPACING) + rng.integers(0, 2, len(p))
    return np.stack([line * FLIGHT_SPACING, p[:, 1], np.full(len(p), FLIGHT_HEIGHT)], 1)


def _sample_surfaces(lay: BlockLayout, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` candidate points by area over the block's surfaces: positions, normals, classes."""
    boxes, trees = lay.boxes, lay.trees
    areas = [lay.edge ** 2]  # terrain
    roofs = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    wx = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 5] - boxes[:, 4])  # walls facing -y / +y
    wy = (boxes[:, 3] - boxes[:, 1]) * (boxes[:, 5] - boxes[:, 4])  # walls facing -x / +x
    crowns = 4 * np.pi * trees[:, 3] * np.sqrt(trees[:, 3] * trees[:, 4]) if len(trees) else np.zeros(0)
    areas = np.concatenate([areas, roofs, wx, wx, wy, wy, crowns])
    which = rng.choice(len(areas), size=n, p=areas / areas.sum())
    u = rng.random((n, 3))
    p = np.empty((n, 3))
    nrm = np.empty((n, 3))
    cls = np.empty(n, dtype=np.uint8)
    nb = len(boxes)
    # terrain
    s = which == 0
    p[s, :2] = lay.lo + u[s, :2] * lay.edge
    p[s, 2] = terrain_height(p[s, 0], p[s, 1])
    nrm[s] = terrain_normal(p[s, 0], p[s, 1])
    cls[s] = GROUND
    # roofs and walls: surface id -> (kind, building)
    kind = (which - 1) // max(nb, 1)
    b = (which - 1) % max(nb, 1)
    for k in range(5):
        s = (which >= 1) & (which < 1 + 5 * nb) & (kind == k)
        if not s.any():
            continue
        bx = boxes[b[s]]
        x = bx[:, 0] + u[s, 0] * (bx[:, 2] - bx[:, 0])
        y = bx[:, 1] + u[s, 1] * (bx[:, 3] - bx[:, 1])
        z = bx[:, 4] + u[s, 2] * (bx[:, 5] - bx[:, 4])
        normal = np.zeros((s.sum(), 3))
        if k == 0:
            z = bx[:, 5]
            normal[:, 2] = 1
        elif k in (1, 2):
            y = bx[:, 1] if k == 1 else bx[:, 3]
            normal[:, 1] = -1 if k == 1 else 1
        else:
            x = bx[:, 0] if k == 3 else bx[:, 2]
            normal[:, 0] = -1 if k == 3 else 1
        p[s] = np.stack([x, y, z], 1)
        nrm[s] = normal
        cls[s] = BUILDING
    # tree crowns: a shell of clutter inside the ellipsoid, normals radial
    s = which >= 1 + 5 * nb
    if s.any():
        t = trees[which[s] - 1 - 5 * nb]
        d = rng.normal(size=(s.sum(), 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        depth = 1.0 - 0.35 * u[s, 0] ** 2
        radii = np.stack([t[:, 3], t[:, 3], t[:, 4]], 1)
        p[s] = t[:, :3] + d * radii * depth[:, None]
        g = d / radii
        nrm[s] = g / np.linalg.norm(g, axis=1, keepdims=True)
        cls[s] = VEGETATION
    return p, nrm, cls


def _visible(p: np.ndarray, nrm: np.ndarray, cls: np.ndarray, lay: BlockLayout, sensor: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Scanner-like acceptance: facing the sensor, cosine thinning, occlusion of the ground."""
    d = sensor - p
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", nrm, d)
    keep = rng.random(len(p)) < np.clip(cos, 0, 1)
    ground = cls == GROUND
    walls = (cls == BUILDING) & (nrm[:, 2] == 0)
    keep &= ~walls | (p[:, 2] > terrain_height(p[:, 0], p[:, 1]))
    for b in lay.boxes:
        keep &= ~(ground & (p[:, 0] > b[0]) & (p[:, 0] < b[2]) & (p[:, 1] > b[1]) & (p[:, 1] < b[3]))
    for t in lay.trees:
        under = ground & ((p[:, 0] - t[0]) ** 2 + (p[:, 1] - t[1]) ** 2 < t[3] ** 2)
        keep &= ~(under & (rng.random(len(p)) < 0.7))
    return keep


def block_points(spec: SceneSpec, index: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exactly ``count`` points of block ``index``: local positions (K, 3) float64, unit normals
    (K, 3) float32, classes (K,) uint8."""
    lay = block_layout(spec, index)
    rng = np.random.default_rng([spec.seed, index, 1])
    noise_rng = np.random.default_rng([spec.seed, index, 2])
    ps, ns, cs, got = [], [], [], 0
    rate = 0.6
    while got < count:
        m = int((count - got) / rate * 1.1) + 64
        p, nrm, cls = _sample_surfaces(lay, m, rng)
        keep = _visible(p, nrm, cls, lay, _sensor(p, rng), rng)
        rate = max(0.05, float(keep.mean()))
        ps.append(p[keep])
        ns.append(nrm[keep])
        cs.append(cls[keep])
        got += int(keep.sum())
    p = np.concatenate(ps)[:count]
    nrm = np.concatenate(ns)[:count].astype(np.float32)
    cls = np.concatenate(cs)[:count]
    sensor = _sensor(p, np.random.default_rng([spec.seed, index, 3]))
    beam = p - sensor
    beam /= np.linalg.norm(beam, axis=1, keepdims=True)
    r = noise_rng.normal(size=count)
    out = noise_rng.random(count) < spec.outliers
    lift = noise_rng.uniform(1.0, 30.0, count)
    if spec.noise > 0:
        p = p + spec.noise * r[:, None] * beam
    if spec.outliers > 0:
        p[out, 2] += lift[out]
        cls = np.where(out, NOISE, cls).astype(np.uint8)
    return p, nrm, cls


def iter_scene(spec: SceneSpec, batch_points: int = 500_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (world xyz float64, normals float32, classes uint8) batches of whole blocks, in block order."""
    nb = spec.blocks_per_side ** 2
    base, extra = divmod(spec.points, nb)
    off = np.asarray(spec.offset, dtype=np.float64)
    buf: list = []
    size = 0
    for i in range(nb):
        n = base + (1 if i < extra else 0)
        if n == 0:
            continue
        p, nrm, cls = block_points(spec, i, n)
        buf.append((p + off, nrm, cls))
        size += n
        if size >= batch_points:
            yield tuple(np.concatenate(a) for a in zip(*buf))  # type: ignore[misc]
            buf, size = [], 0
    if buf:
        yield tuple(np.concatenate(a) for a in zip(*buf))  # type: ignore[misc]


def write_scene(path: str | os.PathLike, spec: SceneSpec, *, normals: bool = True, batch_points: int = 500_000,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate ``spec`` and write it to ``path`` (.las, .laz, .ply or .npy), streaming, atomically.

    Returns:
        ``points``, ``side``, ``offset``, ``bounds`` (world (2, 3)), ``path``.
    """
    p = Path(path)
    ext = scene_format(p)
    check_disk_space(p, spec, normals)
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    done = 0
    with atomic_write(p) as tmp:
        writer = {".las": _LasSink, ".laz": _LasSink, ".ply": _PlySink, ".npy": _NpySink}[ext](tmp, spec, normals)
        try:
            for xyz, nrm, cls in iter_scene(spec, batch_points):
                writer.write(xyz, nrm, cls)
                lo, hi = np.minimum(lo, xyz.min(0)), np.maximum(hi, xyz.max(0))
                done += len(xyz)
                if progress:
                    progress(done, spec.points)
        finally:
            writer.close()
    return {"points": done, "side": spec.side, "offset": list(spec.offset), "bounds": [lo.tolist(), hi.tolist()],
            "path": str(p)}


class _LasSink:
    def __init__(self, path: Path, spec: SceneSpec, normals: bool):
        import laspy  # lazy: only .las/.laz output needs it

        header = laspy.LasHeader(point_format=3, version="1.2")
        header.offsets = np.asarray(spec.offset, dtype=np.float64)
        scale = 0.001 if spec.side < 2000 else 0.01
        header.scales = np.array([scale, scale, scale])
        self.normals = normals
        if normals:
            header.add_extra_dims([laspy.ExtraBytesParams(name=n, type=np.float32) for n in ("nx", "ny", "nz")])
        self.header = header
        self.writer = laspy.open(str(path), mode="w", header=header, do_compress=path.suffix.lower() == ".laz")

    def write(self, xyz: np.ndarray, nrm: np.ndarray, cls: np.ndarray) -> None:
        import laspy

        rec = laspy.ScaleAwarePointRecord.zeros(len(xyz), header=self.header)
        rec.x, rec.y, rec.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        rec.classification = cls
        rec.intensity = np.clip(nrm[:, 2] * 4000 + 500, 0, 65535).astype(np.uint16)
        if self.normals:
            rec.nx, rec.ny, rec.nz = nrm[:, 0], nrm[:, 1], nrm[:, 2]
        self.writer.write_points(rec)

    def close(self) -> None:
        self.writer.close()


class _PlySink:
    def __init__(self, path: Path, spec: SceneSpec, normals: bool):
        fields = [("x", "<f8"), ("y", "<f8"), ("z", "<f8")]
        if normals:
            fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        self.dt = np.dtype(fields + [("class", "u1")])
        names = {"<f8": "double", "<f4": "float", "u1": "uchar"}
        lines = ["ply", "format binary_little_endian 1.0", f"comment recon synth-scene seed {spec.seed}",
                 f"element vertex {spec.points}"]
        lines += [f"property {names[t]} {n}" for n, t in fields + [("class", "u1")]]
        self.fh = open(path, "wb")
        self.fh.write(("\n".join(lines + ["end_header"]) + "\n").encode("ascii"))

    def write(self, xyz: np.ndarray, nrm: np.ndarray, cls: np.ndarray) -> None:
        rec = np.empty(len(xyz), dtype=self.dt)
        for i, n in enumerate("xyz"):
            rec[n] = xyz[:, i]
        if "nx" in self.dt.names:
            for i, n in enumerate(("nx", "ny", "nz")):
                rec[n] = nrm[:, i]
        rec["class"] = cls
        rec.tofile(self.fh)

    def close(self) -> None:
        self.fh.close()


class _NpySink:
    def __init__(self, path: Path, spec: SceneSpec, normals: bool):
        self.mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(spec.points, 6 if normals else 3))
        self.at = 0

    def write(self, xyz: np.ndarray, nrm: np.ndarray, cls: np.ndarray) -> None:
        k = len(xyz)
        self.mm[self.at:self.at + k, :3] = xyz
        if self.mm.shape[1] == 6:
            self.mm[self.at:self.at + k, 3:] = nrm
        self.at += k

    def close(self) -> None:
        self.mm.flush()
        del self.mm


def parse_count(text: str | int) -> int:
    """``"20M"``, ``"300k"``, ``"2_000_000"``, ``"1.5e6"`` -> int.

    Raises:
        ConfigError: not a positive count.
    """
    if isinstance(text, int):
        return text
    t = str(text).strip().lower().replace("_", "").replace(",", "")
    mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if t and t[-1] in "kmg" else t) * mult
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise ConfigError(f"'{text}' is not a point count", None, "write it like 20M, 300k or 2000000")
    return int(value)
