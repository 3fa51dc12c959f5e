"""Out-of-core scene reconstruction: streaming readers, tile plan, shards, per-tile jobs on Dask,
exact stitching, a resumable manifest.

Modules, one job each:

* :mod:`~recon.tiling.streams`     LAS/LAZ (laspy chunks), binary PLY / NPY (memmap), folders -> pieces, chunks
* :mod:`~recon.tiling.lattice`     the global tile lattice (voxel-aligned tile, blend and shard boxes)
* :mod:`~recon.tiling.plan`        pass 1: counts per grid cell -> voxel size and tile size
* :mod:`~recon.tiling.cloudcheck`  the reconstruct input rules (count, identical, collinear) on streamed moments
* :mod:`~recon.tiling.shards`      pass 2: every point into the shards of its tile (+ margins), on disk
* :mod:`~recon.tiling.fieldio`     kernel fields saved / loaded (cropped) as .npz
* :mod:`~recon.tiling.job`         the tile tasks: fit a field (phase 1), mesh the core from blended fields (phase 2)
* :mod:`~recon.tiling.stitch`      streamed merge of tile meshes, exact welding of border vertices, seam checks
* :mod:`~recon.tiling.manifest`    the SQLite manifest (plan, pieces, tiles, attempts, events)
* :mod:`~recon.tiling.jobfolder`   the job folder: checked before work, created once the input is good, its layout
* :mod:`~recon.tiling.cluster`     the Dask cluster (LocalCluster sized to the machine, or an existing scheduler)
* :mod:`~recon.tiling.scheduler`   tile fits and meshes on Dask, retries, resume
* :mod:`~recon.tiling.runner`      the driver: checks, pass 1, pass 2, tiles, stitching
* :mod:`~recon.tiling.run_context` :class:`BatchRun`, what every stage of a run shares (and the summary)
* :mod:`~recon.tiling.scene_index` ``scene.json``, the index of a stitched job
* :mod:`~recon.tiling.config`      :class:`BatchConfig` (CLI flags and job YAML)
* :mod:`~recon.tiling.options`     types and ranges of every batch option
* :mod:`~recon.tiling.synth_scene` a generated city-like LiDAR scene, written in chunks

Why seams close exactly: all tiles share one voxel size and one lattice origin, and tile borders lie
on coarsest-voxel planes, so every tile's field is a B-spline on the same global grid. Phase 2 meshes
only the lattice cells inside a tile's core from the partition-of-unity blend of the fields of the tile
and its neighbours (:class:`recon.backends.kernel.FusedField`); the value at a lattice point is a
deterministic function of the same fields and the same float64 position whichever tile computes it,
so the marching-cubes vertices on a shared border plane are bit-identical on both sides and
:func:`~recon.tiling.stitch.merge_tiles` welds them by exact coordinates. Trimming uses distances
measured from the lattice origin so both sides decide alike; MISE is off in batch mode.

Python API::

    from recon.tiling import BatchConfig, run_batch
    summary = run_batch(BatchConfig(inputs=["scene.laz"], output="job", workers=2))
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchConfig", "BatchSummary", "SceneSpec", "run_batch", "write_scene"]


def __getattr__(name: str) -> Any:
    """Lazy exports: the CLI imports recon.tiling at start-up, and the runner loads torch and Dask (seconds)."""
    if name == "BatchConfig":
        from recon.tiling.config import BatchConfig

        return BatchConfig
    if name in ("run_batch", "BatchSummary"):
        from recon.tiling import runner

        return getattr(runner, name)
    if name in ("SceneSpec", "write_scene"):
        from recon.tiling import synth_scene

        return getattr(synth_scene, name)
    raise AttributeError(name)
