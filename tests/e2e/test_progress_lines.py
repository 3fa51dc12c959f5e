"""Progress when the output is a pipe or a log file: a line per stage and, within a long stage, a line
with its fraction at most every ``log_every`` seconds (a 2-minute training run used to print 'step 1'
and nothing more until meshing)."""

from __future__ import annotations

import re

from recon_apps.terminal import RichProgress


def test_piped_progress_repeats_a_long_stage_with_its_fraction(capsys, monkeypatch):
    clock = iter([0.0, 0.0, 1.0, 40.0, 45.0, 80.0, 81.0])
    monkeypatch.setattr("recon_apps.terminal.time.perf_counter", lambda: next(clock))
    with RichProgress(enabled=True) as progress:
        assert progress._progress is None  # captured output is not a terminal
        progress.update("volsdf", 0.0, "step 1")      # t = 0: new stage
        progress.update("volsdf", 0.1, "step 100")    # t = 1: too soon
        progress.update("volsdf", 0.5, "step 5000")   # t = 40: 30 s passed
        progress.update("volsdf", 0.6, "step 6000")   # t = 45: too soon
        progress.update("meshing", None)               # t = 80: new stage
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 3, lines
    assert re.search(r"0\.0s volsdf 0 % \(step 1\)", lines[0])
    assert re.search(r"40\.0s volsdf 50 % \(step 5000\)", lines[1])
    assert re.search(r"80\.0s meshing$", lines[2])
