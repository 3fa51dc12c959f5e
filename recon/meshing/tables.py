"""Marching-cubes lookup table, generated here from first principles.

No table is copied from anywhere: :func:`build_tables` derives the triangulation of each
of the 256 sign configurations of a cube from one rule, then the tests verify it.

Cube conventions (unit cube, lattice units)
-------------------------------------------
* Corner ``i`` (0..7) sits at ``(i & 1, (i >> 1) & 1, (i >> 2) & 1)``: bit 0 is x, bit 1 y,
  bit 2 z.
* Edge ``e`` (0..11) joins corner ``EDGE_LOW[e]`` to ``EDGE_HIGH[e] = EDGE_LOW[e] | (1 << axis)``
  along ``EDGE_AXIS[e]``; edges are numbered axis-major (0..3 along x, 4..7 along y, 8..11
  along z), each block ordered by its low corner.
* A corner is *inside* when its value is ``< level`` (negative side); a value exactly at the
  level counts as outside. Bit ``i`` of the case index is set when corner ``i`` is inside.

The rule
--------
1. On every one of the 6 cube faces, the sign-changing face edges are joined by segments:
   two crossings give one segment; four crossings (the ambiguous face, inside corners on a
   diagonal) give two segments, each cutting off one *inside* corner (the inside corners
   stay separated, the outside region is connected across the face). The decision depends
   only on the 4 corner signs of that face, so the two cubes sharing a face always build the
   same segments: the surface is watertight across cubes.
2. Each segment is directed so that, seen from the outside (positive) side, the surface
   patch it bounds runs counter-clockwise: with ``m`` the in-face direction from the inside
   to the outside corners, ``t`` the segment direction and ``n`` the face's outward normal,
   ``((m x t) . n) < 0``.
3. Every crossing edge then has exactly one incoming and one outgoing segment, so the
   segments form closed, directed loops; each loop bounds one surface patch.
4. Each loop (a polygon of 3..n edge points, positioned at edge midpoints for this purpose)
   is triangulated by dynamic programming, minimising first the number of diagonals that
   join two points lying on one cube face (such a diagonal could be chosen by the
   neighbouring cube too and make a non-manifold edge; the table has none), then the total
   triangle area. Triangles keep the loop's direction, hence are counter-clockwise seen from
   the positive side (normals point towards increasing values).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: (8, 3) int64 corner offsets of the unit cube, corner i = (i&1, (i>>1)&1, (i>>2)&1).
CORNERS = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.int64)


def _cross(a, b) -> tuple[float, float, float]:
    """Cross product of two 3-vectors (plain floats: np.cross costs ~40 us a call on 3-vectors,
    and the table generation makes thousands of them)."""
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _edges() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low, high, axis = [], [], []
    for a in range(3):
        for c in range(8):
            if not (c >> a) & 1:
                low.append(c)
                high.append(c | (1 << a))
                axis.append(a)
    return np.array(low, np.int64), np.array(high, np.int64), np.array(axis, np.int64)


#: (12,) int64 low corner, high corner and axis of each cube edge.
EDGE_LOW, EDGE_HIGH, EDGE_AXIS = _edges()
_EDGE_OF_PAIR = {frozenset((int(a), int(b))): e for e, (a, b) in enumerate(zip(EDGE_LOW, EDGE_HIGH))}


def _faces() -> list[tuple[list[int], list[int], np.ndarray]]:
    """The 6 faces as (cyclic corners (4,), edges between consecutive corners (4,), normal (3,))."""
    out = []
    for d in range(3):
        u, v = (d + 1) % 3, (d + 2) % 3
        for s in (0, 1):
            cs = [(s << d) | (a << u) | (b << v) for a, b in ((0, 0), (1, 0), (1, 1), (0, 1))]
            es = [_EDGE_OF_PAIR[frozenset((cs[k], cs[(k + 1) % 4]))] for k in range(4)]
            n = np.zeros(3)
            n[d] = 2 * s - 1
            out.append((cs, es, n))
    return out


FACES = _faces()
_MID = (CORNERS[EDGE_LOW] + CORNERS[EDGE_HIGH]) / 2.0  # (12, 3) edge midpoints
_EDGE_FACES = [frozenset(f for f, (_, es, _) in enumerate(FACES) if e in es) for e in range(12)]


def case_loops(case: int) -> list[list[int]]:
    """Directed loops of crossing edges for one case (rules 1-3 of the module docstring)."""
    inside = [(case >> i) & 1 for i in range(8)]
    nxt: dict[int, int] = {}
    for cs, es, n in FACES:
        cross = [inside[cs[k]] != inside[cs[(k + 1) % 4]] for k in range(4)]
        segs: list[tuple[int, int, np.ndarray]] = []
        if sum(cross) == 2:
            e1, e2 = [es[k] for k in range(4) if cross[k]]
            pin = np.mean([CORNERS[c] for c in cs if inside[c]], axis=0)
            pout = np.mean([CORNERS[c] for c in cs if not inside[c]], axis=0)
            segs.append((e1, e2, pout - pin))
        elif sum(cross) == 4:
            for k in range(4):
                if inside[cs[k]]:
                    e1, e2 = es[k - 1], es[k]
                    segs.append((e1, e2, (_MID[e1] + _MID[e2]) / 2 - CORNERS[cs[k]]))
        for e1, e2, m in segs:
            t = _MID[e2] - _MID[e1]
            c = _cross(m, t)
            if c[0] * n[0] + c[1] * n[1] + c[2] * n[2] > 0:
                e1, e2 = e2, e1
            if e1 in nxt:
                raise AssertionError(f"case {case}: edge {e1} has two outgoing segments")
            nxt[e1] = e2
    if sorted(nxt) != sorted(nxt.values()):
        raise AssertionError(f"case {case}: segments do not close into loops")
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, e = [], start
        while e not in seen:
            seen.add(e)
            loop.append(e)
            e = nxt[e]
        loops.append(loop)
    return loops


def _triangulate(loop: list[int]) -> list[tuple[int, int, int]]:
    """Minimum (bad diagonals, area) triangulation of one loop, keeping its direction."""
    n = len(loop)
    if n == 3:
        return [tuple(loop)]
    p = _MID[loop]

    def bad(i: int, j: int) -> int:
        if (j - i) % n in (1, n - 1):
            return 0  # a polygon side, not a diagonal
        return int(bool(_EDGE_FACES[loop[i]] & _EDGE_FACES[loop[j]]))

    def area(i: int, k: int, j: int) -> float:
        c = _cross(p[k] - p[i], p[j] - p[i])
        return 0.5 * float(np.sqrt(c[0] * c[0] + c[1] * c[1] + c[2] * c[2]))

    big = 1e6
    cost = {}
    split = {}
    for gap in range(2, n):
        for i in range(0, n - gap):
            j = i + gap
            best, arg = None, -1
            for k in range(i + 1, j):
                c = cost.get((i, k), 0.0) + cost.get((k, j), 0.0) + area(i, k, j)
                c += big * (bad(i, k) * (k - i > 1) + bad(k, j) * (j - k > 1))
                if best is None or c < best - 1e-12:
                    best, arg = c, k
            cost[(i, j)] = best
            split[(i, j)] = arg
    tris: list[tuple[int, int, int]] = []

    def emit(i: int, j: int) -> None:
        if j - i < 2:
            return
        k = split[(i, j)]
        tris.append((loop[i], loop[k], loop[j]))
        emit(i, k)
        emit(k, j)

    emit(0, n - 1)
    return tris


@lru_cache(maxsize=1)
def build_tables() -> tuple[np.ndarray, np.ndarray]:
    """The marching-cubes table.

    Returns:
        ``(tri, ntri)``: ``tri`` (256, T, 3) int64 local edge indices of each case's
        triangles, padded with -1 (T is the largest triangle count, 4 or 5); ``ntri`` (256,)
        int64 number of triangles per case.
    """
    per_case = []
    for case in range(256):
        tris: list[tuple[int, int, int]] = []
        for loop in case_loops(case):
            tris.extend(_triangulate(loop))
        per_case.append(tris)
    tmax = max(len(t) for t in per_case)
    tri = np.full((256, tmax, 3), -1, dtype=np.int64)
    ntri = np.zeros(256, dtype=np.int64)
    for case, tris in enumerate(per_case):
        ntri[case] = len(tris)
        if tris:
            tri[case, : len(tris)] = tris
    tri.setflags(write=False)
    ntri.setflags(write=False)
    return tri, ntri
