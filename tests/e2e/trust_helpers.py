"""Helpers for the trust tests: run the real CLI as a user would and check that a refusal is clean.

A clean refusal (issue 20) is: exit status 2, exactly one ``error:`` line on stderr, no
traceback, no output file, every input byte-for-byte unchanged, and bounded memory.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample_scan.ply"
#: the largest peak resident memory (MiB) a refused input may cost, imports included (issue 20: 2 GB)
MAX_REFUSAL_RSS_MIB = 2048


@dataclass
class CliRun:
    """One finished ``recon`` process."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss_mib: float  # the process's peak resident set, MiB (VmHWM; -1 unknown, inf killed before exit)


#: runs ``recon ARGS`` exactly as ``python -m recon_apps.cli`` does, and at exit writes the process's
#: peak resident memory (VmHWM, KiB) to $RECON_PEAK_FILE. VmHWM belongs to the new address space made
#: by exec; the rusage ``ru_maxrss`` of a child would also count the forked copy of this test process.
_CLI_WITH_PEAK = (
    "import atexit, os, sys\n"
    "def _peak():\n"
    "    try:\n"
    "        kib = next(ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM'))\n"
    "    except (OSError, StopIteration):\n"
    "        kib = '-1'\n"
    "    with open(os.environ['RECON_PEAK_FILE'], 'w') as fh:\n"
    "        fh.write(kib)\n"
    "atexit.register(_peak)\n"
    "sys.argv[0] = 'recon'\n"
    "from recon_apps.cli import main\n"
    "main()\n"
)


def run_cli(*args: object, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> CliRun:
    """Run the ``recon`` command line with ``args`` and return its status, output and peak memory.

    The peak is -1 where the platform has no /proc; a process killed before exit (for example by
    the kernel's OOM killer) reports infinity, which fails any memory bound.
    """
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak"
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["RECON_PEAK_FILE"] = str(peak_file)
        proc = subprocess.run([sys.executable, "-c", _CLI_WITH_PEAK, *map(str, args)], capture_output=True,
                              cwd=cwd, env=full_env, timeout=timeout)
        text = peak_file.read_text().strip() if peak_file.is_file() else ""
        kib = float(text) if text else float("inf")
    return CliRun(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                  kib / 1024.0 if kib >= 0 else -1.0)


def sha256(path: Path) -> str:
    """Hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(paths: Iterable[Path]) -> dict[Path, str]:
    """{path: sha256} of every file under ``paths`` (files or folders)."""
    out: dict[Path, str] = {}
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else []
        for f in files:
            out[f] = sha256(f)
    return out


def assert_clean_refusal(proc: CliRun, *fragments: str, inputs: dict[Path, str] | None = None,
                         no_output: Iterable[Path] = (), max_rss_mib: float = MAX_REFUSAL_RSS_MIB) -> None:
    """Exit 2, one ``error:`` line naming the problem, no traceback or warning, no output, inputs intact.

    Args:
        proc: the finished run.
        fragments: substrings the error line must contain (case-insensitive).
        inputs: a :func:`snapshot` taken before the run; every file must still hash the same.
        no_output: paths that must not exist after the run (and no hidden temporary sibling of them).
        max_rss_mib: the largest peak memory allowed.
    """
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]
    for frag in fragments:
        assert frag.lower() in errors[0].lower(), (frag, errors[0])
    for path, digest in (inputs or {}).items():
        assert path.exists(), f"input {path} was removed"
        assert sha256(path) == digest, f"input {path} was changed"
    for p in map(Path, no_output):
        assert not p.exists(), f"{p} was written"
        if p.parent.is_dir():
            stray = [q.name for q in p.parent.iterdir() if q.name.startswith(f".{p.stem}.tmp-")]
            assert not stray, f"temporary files left: {stray}"
    assert proc.peak_rss_mib <= max_rss_mib, f"peak memory {proc.peak_rss_mib:.0f} MiB > {max_rss_mib} MiB"


__all__ = ["CliRun", "MAX_REFUSAL_RSS_MIB", "REPO", "SAMPLE", "assert_clean_refusal", "run_cli", "sha256", "snapshot"]
