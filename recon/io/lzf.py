"""A vectorised LZF decompressor (the codec of PCL's ``binary_compressed`` PCD files).

LZF stream format (liblzf): a sequence of tokens, each starting with a control byte ``c``:

* ``c < 32``: a literal run; the next ``c + 1`` bytes are copied to the output.
* ``c >= 32``: a back-reference; ``length = c >> 5`` (if 7, one more byte is added to it),
  then one byte ``low``; ``length + 2`` bytes are copied from ``offset = ((c & 31) << 8) + low + 1``
  bytes back in the output (byte by byte, so the copy may overlap itself).

Decoding is naturally sequential; here it is done with numpy only:

1. For *every* byte position ``p`` the position of the following token, assuming a token
   starts at ``p``, is computed at once. Token starts are the orbit of 0 under that map; the
   ``t``-th start is found for all ``t`` at once by pointer doubling (``O(n log n)``).
2. Every output byte is either a literal (a byte of the input) or equal to the output byte
   ``offset`` positions earlier. Pointer jumping on that "copy-of" forest resolves every byte
   to the literal it ultimately copies, in ``O(log depth)`` rounds.
"""

from __future__ import annotations

import numpy as np


class LZFError(ValueError):
    """The stream is not valid LZF (truncated, bad back-reference, wrong size)."""


def _token_starts(buf: np.ndarray) -> np.ndarray:
    """(T,) int64 byte offsets of the tokens of ``buf`` ((n,) uint8)."""
    n = buf.shape[0]
    ctrl = buf.astype(np.int64)
    size = np.where(ctrl < 32, ctrl + 2, np.where((ctrl >> 5) == 7, 3, 2))
    jump = np.empty(n + 2, dtype=np.int64)
    jump[:n] = np.minimum(np.arange(n, dtype=np.int64) + size, n + 1)
    jump[n] = n  # end of stream exactly: absorbing
    jump[n + 1] = n + 1  # overran the end: absorbing
    t_max = n // 2 + 1  # every token is at least 2 bytes
    t = np.arange(t_max + 1, dtype=np.int64)
    pos = np.zeros(t_max + 1, dtype=np.int64)
    bit = 0
    while (1 << bit) <= t_max:
        sel = ((t >> bit) & 1).astype(bool)
        pos[sel] = jump[pos[sel]]
        jump = jump[jump]
        bit += 1
    n_tokens = int(np.count_nonzero(pos < n))
    if pos[n_tokens] != n:
        raise LZFError("truncated LZF stream")
    return pos[:n_tokens]


def decompress(data: bytes | bytearray | memoryview | np.ndarray, expected_size: int) -> bytes:
    """Decompress an LZF stream.

    Args:
        data: the compressed bytes.
        expected_size: the uncompressed size in bytes (stored next to the stream in PCD files).

    Returns:
        The ``expected_size`` decompressed bytes.

    Raises:
        LZFError: the stream is truncated, refers before the start of the output, or does not
            decompress to ``expected_size`` bytes.
    """
    buf = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data.astype(np.uint8)
    n = buf.shape[0]
    if expected_size < 0:
        raise LZFError("negative uncompressed size")
    if n == 0:
        if expected_size != 0:
            raise LZFError("empty LZF stream")
        return b""
    starts = _token_starts(buf)
    ctrl = buf[starts].astype(np.int64)
    is_lit = ctrl < 32
    # indices s+1, s+2 are in range: every token ends at or before n (checked above)
    nxt1 = buf[np.minimum(starts + 1, n - 1)].astype(np.int64)
    nxt2 = buf[np.minimum(starts + 2, n - 1)].astype(np.int64)
    short = ctrl >> 5
    extended = short == 7
    ref_len = np.where(extended, 7 + nxt1, short) + 2
    low = np.where(extended, nxt2, nxt1)
    offset = ((ctrl & 31) << 8) + low + 1
    out_len = np.where(is_lit, ctrl + 1, ref_len)
    total = int(out_len.sum())
    if total != expected_size:
        raise LZFError(f"LZF stream decompresses to {total} bytes, header says {expected_size}")
    out_start = np.cumsum(out_len) - out_len
    tok = np.repeat(np.arange(starts.shape[0]), out_len)
    idx = np.arange(total, dtype=np.int64)
    within = idx - out_start[tok]
    lit_byte = is_lit[tok]
    src = np.where(lit_byte, starts[tok] + 1 + within, 0)
    values = np.where(lit_byte, buf[src], 0).astype(np.uint8)
    parent = np.where(lit_byte, idx, idx - offset[tok])
    if parent.size and int(parent.min()) < 0:
        raise LZFError("LZF back-reference before the start of the output")
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    return values[parent].tobytes()
