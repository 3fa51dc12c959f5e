"""The Dask cluster of a batch job: an embedded LocalCluster or an existing scheduler.

The LocalCluster runs ``workers`` processes of one thread each with ``memory_limit`` apiece
(threads of this process with ``processes=False``); its size is checked against the machine
(:func:`check_local_workers`) before anything starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Callable

from distributed import Client, LocalCluster

from recon.errors import ConfigError, ReconError
from recon.tiling.config import BatchConfig

Log = Callable[[str], None]
WORKERS_PER_CORE = 4
"""A local cluster may have at most this many workers per CPU core (and at least 8 in all)."""


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_local_workers(cfg: BatchConfig) -> None:
    """Refuse a local cluster far larger than the machine (each worker is a process with its own
    libraries; thousands of them never finish starting).

    Raises:
        ConfigError: more than ``max(8, WORKERS_PER_CORE * cores)`` workers without ``--scheduler``.
    """
    if cfg.scheduler:
        return
    cores = usable_cores()
    limit = max(8, WORKERS_PER_CORE * cores)
    if cfg.workers > limit:
        raise ConfigError(f"--workers {cfg.workers:,} is more than this machine can run ({cores} CPU cores, "
                          f"at most {limit} local workers)", None,
                          f"use --workers {cores} or fewer, or --scheduler for a cluster of machines")


def cluster_memory_limit(cfg: BatchConfig) -> str | int:
    """The ``memory_limit`` handed to the LocalCluster's workers.

    Worker processes get ``cfg.memory_limit`` each (Dask pauses a worker at 80 % and restarts it at 95 %).
    Workers running as threads of this process (``processes=False``) get 0, no limit: Dask's monitor
    reads the RSS of the whole process, shared by every worker and by the caller, so a caller that is
    already large (a long test session, a viewer) would pause every worker for good and the job would
    wait forever. Tile sizes still follow ``cfg.memory_limit`` through ``cfg.tile_point_budget()``.
    """
    return cfg.memory_limit if cfg.processes else 0


@contextlib.contextmanager
def _quiet_distributed():
    """Silence every ``distributed.*`` logger (levels restored on exit): an embedded cluster closed
    early (a refused input, Ctrl-C) logs closed-connection tracebacks that are not the user's problem."""
    names = ["distributed"] + [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def dask_client(cfg: BatchConfig, log: Log):
    """(client, dashboard URL or None): on ``cfg.scheduler``, or on an embedded LocalCluster (closed on exit)."""
    if cfg.scheduler:
        try:
            client = Client(cfg.scheduler, timeout="15s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ReconError(f"cannot reach the Dask scheduler at {cfg.scheduler} ({type(exc).__name__})", None,
                             "start one with `dask scheduler` and `dask worker`, or drop --scheduler") from None
        try:
            n = len(client.scheduler_info().get("workers", {}))
            log(f"scheduler {cfg.scheduler}: {n} worker(s); dashboard {client.dashboard_link}")
            yield client, client.dashboard_link
        finally:
            client.close()
        return
    try:
        import bokeh  # noqa: F401 - the dashboard needs it

        dash = True
    except ImportError:
        dash = False
    # a free port for the scheduler's HTTP server (health endpoints, and the dashboard with bokeh)
    # workers are spawned with SIGINT ignored (inherited through exec): Ctrl-C in a terminal reaches the
    # whole process group, and only the driver should handle it (it closes the cluster)
    main = _main_thread()
    old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        cluster = LocalCluster(n_workers=cfg.workers, threads_per_worker=1, processes=cfg.processes,
                               memory_limit=cluster_memory_limit(cfg), dashboard_address="127.0.0.1:0",
                               silence_logs=logging.CRITICAL)
    finally:
        if main:  # a handler set outside Python reads back as None: give back Python's own then
            signal.signal(signal.SIGINT, old_handler if old_handler is not None else signal.default_int_handler)
    with _quiet_distributed():
        client = Client(cluster)
        try:
            link = cluster.dashboard_link if dash else None
            each = f"{cfg.memory_limit} each" if cfg.processes else "threads of this process"
            log(f"local cluster: {cfg.workers} worker(s) x 1 thread, {each}; dashboard "
                f"{link or 'off (pip install bokeh for it)'}")
            yield client, link
        finally:
            with contextlib.suppress(Exception):
                client.close()
            with contextlib.suppress(Exception):
                cluster.close()


__all__ = ["check_local_workers", "cluster_memory_limit", "dask_client", "usable_cores"]
