"""recon.allocator: freed large blocks are reused inside the context (fewer page faults), defaults after."""

from __future__ import annotations

import resource
import threading

import numpy as np
import pytest

from recon import allocator
from recon.allocator import reuse_freed_memory

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="needs glibc")

MB = 1 << 20


def _faults_of_second_array(n_bytes: int) -> int:
    """Minor page faults taken to fill a fresh array after an equal one was freed."""
    a = np.ones(n_bytes // 8)
    del a
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = np.ones(n_bytes // 8)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    del b
    return after - before


def test_freed_large_arrays_are_reused_inside_and_mapped_afresh_outside(monkeypatch):
    for k in allocator._USER_TUNED:
        monkeypatch.delenv(k, raising=False)
    outside = _faults_of_second_array(200 * MB)  # a fresh mapping: faulted in again (huge pages: ~600)
    with reuse_freed_memory() as on:
        assert on and allocator.active()
        _faults_of_second_array(200 * MB)  # grows the heap once
        inside = _faults_of_second_array(200 * MB)  # the freed block, already resident
    assert not allocator.active()
    again = _faults_of_second_array(200 * MB)
    assert outside >= 50 and inside <= 0.1 * outside and again >= 0.5 * outside


def test_nested_and_threaded_blocks_restore_once(monkeypatch):
    for k in allocator._USER_TUNED:
        monkeypatch.delenv(k, raising=False)
    seen = []

    def worker():
        with reuse_freed_memory():
            seen.append(allocator.active())

    with reuse_freed_memory():
        with reuse_freed_memory():
            t = threading.Thread(target=worker)
            t.start()
            t.join()
        assert allocator.active()
    assert seen == [True] and not allocator.active()


def test_a_user_tuned_allocator_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    with reuse_freed_memory() as on:
        assert on is False and not allocator.active()


def test_disabled_blocks_and_the_size_rule(monkeypatch):
    for k in allocator._USER_TUNED:
        monkeypatch.delenv(k, raising=False)
    with reuse_freed_memory(enabled=False) as on:
        assert on is False and not allocator.active()
    from recon.backends.kernel.scale import worth_reusing

    assert worth_reusing(333_447)  # 1M points on the bunny
    assert not worth_reusing(1_002_549)  # 3M points: the heap fragmented (7-11 GB)
