"""A vectorised LZF decompressor (the codec of PCL's ``binary_compressed`` PCD files).

LZF stream format (liblzf): a sequence of tokens, each starting with a control byte ``c``:

* ``c < 32``: a literal run; the next ``c + 1`` bytes are copied to the output.
* ``c >= 32``: a back-reference; ``length = c >> 5`` (if 7, one more byte is added to it),
  then one byte ``low``; ``length + 2`` bytes are copied from ``offset = ((c & 31) << 8) + low + 1``
  bytes back in the output (byte by byte, so the copy may overlap itself).

Size bound: the longest back-reference (3 bytes: ``c = 0xE0 | hi``, ``255``, ``low``) yields
7 + 255 + 2 = 264 bytes, and a stream must start with a literal, so ``n`` compressed bytes never
decode to more than :data:`MAX_RATIO` ``= 264 / 3 = 88`` times ``n``. A larger declared size is
refused before anything is allocated.

Decoding is naturally sequential; here it is done with numpy only, in memory
``O(n) + output`` (no per-output-byte index array over the whole output):

1. For every compressed byte position ``p`` the position of the following token, assuming a
   token starts at ``p``, is computed at once; token starts are the orbit of 0 under that map,
   found by pointer doubling (``O(n log n)`` time, index arrays of the compressed size).
2. Per token: output start, length, literal source or back-reference offset. The total size
   and every back-reference are checked here, before the output is allocated.
3. The output is filled in blocks of :data:`BLOCK` bytes. In a block every byte is a literal,
   a copy of a finished byte before the block, or a copy of an earlier byte of the block; the
   last kind is resolved by pointer jumping on the block's local indices, so temporaries are
   ``O(BLOCK)`` and the result (one byte per byte) is the only output-sized array.
"""

from __future__ import annotations

import numpy as np

#: Largest possible ratio of decoded to compressed bytes in a valid LZF stream.
MAX_RATIO = 88
#: Output bytes decoded per step (bounds the temporaries to a few times 8 * BLOCK bytes).
BLOCK = 1 << 20


class LZFError(ValueError):
    """The stream is not valid LZF (truncated, bad back-reference, wrong size)."""


def _index_dtype(n: int) -> type:
    return np.int32 if n < (1 << 31) - 4 else np.int64


def _token_starts(buf: np.ndarray) -> np.ndarray:
    """(T,) int64 byte offsets of the tokens of ``buf`` ((n,) uint8)."""
    n = buf.shape[0]
    idt = _index_dtype(n)
    size = np.where(buf < 32, buf.astype(idt) + 2, np.where((buf >> 5) == 7, 3, 2)).astype(idt)
    jump = np.empty(n + 2, dtype=idt)
    np.add(np.arange(n, dtype=idt), size, out=jump[:n])
    del size
    np.minimum(jump[:n], n + 1, out=jump[:n])
    jump[n] = n  # end of stream exactly: absorbing
    jump[n + 1] = n + 1  # overran the end: absorbing
    t_max = n // 2 + 1  # every token is at least 2 bytes
    t = np.arange(t_max + 1, dtype=idt)
    pos = np.zeros(t_max + 1, dtype=idt)
    bit = 0
    while (1 << bit) <= t_max:
        sel = ((t >> bit) & 1).astype(bool)
        pos[sel] = jump[pos[sel]]
        bit += 1
        if (1 << bit) <= t_max:
            jump = jump[jump]
    del jump, t
    n_tokens = int(np.count_nonzero(pos < n))
    if pos[n_tokens] != n:
        raise LZFError("truncated LZF stream")
    return pos[:n_tokens].astype(np.int64)


def decompress_array(data: bytes | bytearray | memoryview | np.ndarray, expected_size: int) -> np.ndarray:
    """Decompress an LZF stream into a new (expected_size,) uint8 array.

    Args:
        data: the compressed bytes.
        expected_size: the uncompressed size in bytes (stored next to the stream in PCD files).

    Raises:
        LZFError: the size is negative or more than :data:`MAX_RATIO` times the stream, the
            stream is truncated, refers before the start of the output, or does not decompress
            to ``expected_size`` bytes. All of these are found before the output is allocated.
    """
    buf = data.astype(np.uint8, copy=False).reshape(-1) if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)
    n = buf.shape[0]
    if expected_size < 0:
        raise LZFError("negative uncompressed size")
    if expected_size > MAX_RATIO * n:
        raise LZFError(f"{expected_size} bytes cannot come from {n} bytes of LZF (at most {MAX_RATIO}x)")
    if n == 0:
        return np.zeros(0, np.uint8)
    starts = _token_starts(buf)
    ctrl = buf[starts].astype(np.int64)
    is_lit = ctrl < 32
    # indices s+1, s+2 are in range for the tokens that use them: every token ends at or before n
    nxt1 = buf[np.minimum(starts + 1, n - 1)].astype(np.int64)
    nxt2 = buf[np.minimum(starts + 2, n - 1)].astype(np.int64)
    extended = (ctrl >> 5) == 7
    out_len = np.where(is_lit, ctrl + 1, np.where(extended, 7 + nxt1, ctrl >> 5) + 2)
    offset = np.where(is_lit, 0, ((ctrl & 31) << 8) + np.where(extended, nxt2, nxt1) + 1)
    del ctrl, nxt1, nxt2, extended
    total = int(out_len.sum())
    if total != expected_size:
        raise LZFError(f"LZF stream decompresses to {total} bytes, header says {expected_size}")
    out_start = np.cumsum(out_len) - out_len
    if np.any(~is_lit & (out_start < offset)):
        raise LZFError("LZF back-reference before the start of the output")
    lit_src = starts + 1  # first literal byte of each literal token
    del starts
    out = np.empty(total, np.uint8)
    for a in range(0, total, BLOCK):  # blocks of output, not bytes
        _decode_block(buf, out, a, min(a + BLOCK, total), out_start, out_len, is_lit, lit_src, offset)
    return out


def _decode_block(buf: np.ndarray, out: np.ndarray, a: int, b: int, out_start: np.ndarray, out_len: np.ndarray,
                  is_lit: np.ndarray, lit_src: np.ndarray, offset: np.ndarray) -> None:
    """Write output bytes ``[a, b)`` into ``out``; bytes before ``a`` are already final.

    Args:
        buf: (n,) uint8 compressed stream.
        out: (total,) uint8 output.
        out_start, out_len, is_lit, lit_src, offset: (T,) per-token output start, output
            length, literal flag, first literal byte in ``buf`` and back-reference distance.
    """
    t0 = int(np.searchsorted(out_start, a, side="right")) - 1
    t1 = int(np.searchsorted(out_start, b, side="left"))
    first = out_start[t0:t1]
    cnt = np.minimum(first + out_len[t0:t1], b) - np.maximum(first, a)
    tok = np.repeat(np.arange(t0, t1, dtype=np.int64), cnt)
    idx = np.arange(a, b, dtype=np.int64)
    lit = is_lit[tok]
    values = np.zeros(b - a, np.uint8)
    values[lit] = buf[lit_src[tok[lit]] + (idx[lit] - out_start[tok[lit]])]
    parent = idx - offset[tok]  # literals: offset 0, so their own position
    del tok
    outside = parent < a
    values[outside] = out[parent[outside]]
    local = np.where(lit | outside, idx, parent) - a  # roots point to themselves
    del parent, idx, lit, outside
    while True:  # pointer jumping: O(log depth) rounds over the block
        grand = local[local]
        if np.array_equal(grand, local):
            break
        local = grand
    out[a:b] = values[local]


def decompress(data: bytes | bytearray | memoryview | np.ndarray, expected_size: int) -> bytes:
    """Decompress an LZF stream.

    Args:
        data: the compressed bytes.
        expected_size: the uncompressed size in bytes (stored next to the stream in PCD files).

    Returns:
        The ``expected_size`` decompressed bytes.

    Raises:
        LZFError: see :func:`decompress_array`.
    """
    return decompress_array(data, expected_size).tobytes()
