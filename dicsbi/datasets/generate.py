"""Generating training sets: shards computed in worker processes or on Dask, resumable, atomic."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.files import atomic_write_bytes, package_versions
from ..models import Model, get_model
from ..progress import ProgressBar
from ..spikes import FEATURE_NAMES, SpikeTrains
from .config import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    DatasetConfig,
    DatasetError,
    cell_noise_levels,
    design_targets,
    noise_seed,
    population_seed,
    shard_targets,
    shard_worlds,
)
from .storage import _SHARD_META_KEY, _read_shard_summary, read_manifest, shard_path


# ------------------------------------------------------------------------------------------ one shard
def _shard_populations(cfg: DatasetConfig, model: Model, shard: int) -> tuple[np.ndarray, list, list[int]]:
    """Generate the cells of the shard's targets, each target's from its world (:mod:`.worlds`).

    Returns the shard's target indices, ``(target index, population seed, cells)`` for every reachable target
    and the indices of the unreachable ones.
    """
    from ..compensation import UnreachableTargetError
    from .worlds import make_cells

    targets = design_targets(cfg)
    idx = shard_targets(cfg, shard)
    worlds = shard_worlds(cfg, shard)
    box = (cfg.g_s_range, cfg.g_u_range)
    pops, unreachable = [], []
    for j, t in enumerate(idx):
        seed = population_seed(cfg, shard, j)
        try:
            cells = make_cells(model, worlds[j], targets[t, 0], targets[t, 1], cfg.cells_per_target, seed, box,
                               pair=cfg.pair)
        except UnreachableTargetError:
            unreachable.append(int(t))
            continue
        pops.append((int(t), seed, cells))
    return idx, pops, unreachable


def _simulate_shard(cfg: DatasetConfig, model: Model, shard: int, pops: list, n_threads: int | None,
                    device: str) -> tuple[np.ndarray, SpikeTrains, np.ndarray, np.ndarray, int]:
    """Simulate every cell of the shard's populations.

    Returns the conductances, the spike trains, the simulation status, the cells' noise levels and the noise
    seed.
    """
    from ..simulate import simulate

    n = len(pops) * cfg.cells_per_target
    g = (np.concatenate([p.conductances for _, _, p in pops]) if pops
         else np.empty((0, model.n_conductances)))
    nseed = noise_seed(cfg, shard)
    levels = cell_noise_levels(cfg, shard, n)
    if n:
        res = simulate(model, g, cfg.duration_ms, cfg.dt_ms, cfg.transient_ms, noise_std=levels,
                       seed=nseed, n_threads=n_threads, device=device)
        trains, status = res.trains, res.status
    else:
        trains, status = SpikeTrains.from_list([], 0.0, cfg.duration_ms), np.zeros(0, np.int8)
    return g, trains, status, levels, nseed


def _shard_columns(cfg: DatasetConfig, model: Model, pops: list, g: np.ndarray, trains: SpikeTrains,
                   status: np.ndarray, feats: dict, levels: np.ndarray, nseed: int) -> dict:
    """Build the shard table's columns (name to array), one row per cell."""
    import pyarrow as pa

    n = len(pops) * cfg.cells_per_target
    rep = np.repeat
    c = cfg.cells_per_target
    cols = {
        "target_index": pa.array(rep([t for t, _, _ in pops], c).astype(np.int64), pa.int64()),
        "cell": pa.array(np.tile(np.arange(c, dtype=np.int32), len(pops)), pa.int32()),
    }
    labels = np.concatenate([p.labels for _, _, p in pops]) if pops else np.empty((0, 2))
    cols.update({"target_g_s": labels[:, 0].astype(float), "target_g_u": labels[:, 1].astype(float)})
    dics = np.concatenate([p.dics for _, _, p in pops]) if pops else np.empty((0, 3))
    cols.update({"g_f": dics[:, 0], "g_s": dics[:, 1], "g_u": dics[:, 2],
                 "v_th_mV": rep([p.vth_mV for _, _, p in pops], c).astype(float)})
    cols.update({name: g[:, k] for k, name in enumerate(model.conductance_names)})
    cols["pair"] = pa.array(rep([p.pair for _, _, p in pops], c).tolist(), pa.string())
    offsets = trains.offsets.astype(np.int32)
    cols["spike_times_ms"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(trains.times_ms, pa.float64()))
    cols["n_spikes"] = trains.counts.astype(np.int32)
    cols["status"] = np.asarray(status, np.int8)
    cols["firing_class"] = feats["firing_class"].astype(np.int8)
    for name in FEATURE_NAMES[1:]:
        cols[name] = feats[name].astype(np.int64) if name == "n_bursts" else feats[name].astype(float)
    cols["population_seed"] = pa.array(rep([s for _, s, _ in pops], c).astype(np.uint64), pa.uint64())
    cols["noise_seed"] = pa.array(np.full(n, nseed, np.uint64), pa.uint64())
    cols["noise_index"] = pa.array(np.arange(n, dtype=np.int32), pa.int32())
    if cfg.noise_max is not None:  # only then: shards of earlier configurations keep their schema
        cols["noise_std"] = levels.astype(float)
    if cfg.world is not None:  # likewise
        cols["world"] = pa.array(rep([p.world for _, _, p in pops], c).tolist(), pa.string())
    return cols


def compute_shard(config: DatasetConfig, shard: int, n_threads: int | None = None,
                  device: str = "cpu") -> tuple[bytes, dict]:
    """Build shard ``shard`` (populations, simulation, features) and return its Parquet bytes and summary.

    Pure in (configuration, shard): the same bytes for any CPU worker.  ``n_threads`` is numba's thread count
    for the simulation (workers pass 1).  ``device="cuda"`` simulates on the GPU: equal to the CPU within the
    simulator's validation tolerances, not bit for bit, so the summary records the device.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..spikes import spike_features

    t0 = time.perf_counter()
    cfg = config.resolved()
    model = get_model(cfg.model)
    idx, pops, unreachable = _shard_populations(cfg, model, shard)
    n = len(pops) * cfg.cells_per_target
    g, trains, status, levels, nseed = _simulate_shard(cfg, model, shard, pops, n_threads, device)
    feats = spike_features(trains)
    cols = _shard_columns(cfg, model, pops, g, trains, status, feats, levels, nseed)
    table = pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v)) for k, v in cols.items()})
    summary = {"shard": int(shard), "fingerprint": cfg.fingerprint(), "rows": int(n),
               "targets": int(idx.size), "unreachable_targets": unreachable,
               "n_diverged": int(np.count_nonzero(status)),
               "n_silent": int(np.count_nonzero(feats["firing_class"] == 0)),
               "population_seeds_from": [cfg.seed, 1, int(shard)], "noise_seed": int(nseed)}
    # the file holds only what the configuration determines (no timings), so equal runs give equal bytes
    table = table.replace_schema_metadata({_SHARD_META_KEY: json.dumps(summary).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue(), {**summary, "seconds": round(time.perf_counter() - t0, 3), "device": device}


def _shard_job(config_dict: dict, shard: int) -> tuple[bytes, dict]:
    """Worker entry point (processes and Dask): one numba thread per worker."""
    return compute_shard(DatasetConfig.from_dict(config_dict), shard, n_threads=1)


def _manifest(cfg: DatasetConfig, shards: dict[int, dict], created: str) -> dict:
    done = [shards[k] for k in sorted(shards)]
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "created": created,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": package_versions(("dicsbi", "numpy", "scipy", "numba", "pyarrow")),
        "fingerprint": cfg.fingerprint(), "config": cfg.to_dict(), "n_shards": cfg.n_shards,
        "complete": len(done) == cfg.n_shards,
        "totals": {
            "shards_done": len(done), "rows": sum(s["rows"] for s in done),
            "targets_done": sum(s["targets"] for s in done),
            "unreachable_targets": sum(len(s["unreachable_targets"]) for s in done),
            "diverged_cells": sum(s["n_diverged"] for s in done),
            "silent_cells": sum(s["n_silent"] for s in done),
            "compute_seconds": round(sum(s.get("seconds", 0.0) for s in done), 3),
        },
        "seeds": {"root": cfg.seed, "design": [cfg.seed, 0], "population": "[seed, 1, shard, j]",
                  "noise": "[seed, 2, shard]"},
        "shards": {str(k): {**shards[k], "file": shard_path(Path("."), k).name} for k in sorted(shards)},
    }


def _prepare_folder(out: Path, cfg: DatasetConfig) -> tuple[dict[int, dict], str]:
    """Check a folder against ``cfg``; returns (complete shards, creation time).  Cleans partial files."""
    out.mkdir(parents=True, exist_ok=True)
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if (out / MANIFEST).exists():
        doc = read_manifest(out)
        if doc["fingerprint"] != cfg.fingerprint():
            old = doc.get("config", {})
            diff = [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in cfg.to_dict().items() if old.get(k) != v]
            raise DatasetError(
                f"{out} holds a data set with another configuration ({'; '.join(diff) or 'format changed'}); "
                "use a new folder, or delete this one to start over")
        created = doc.get("created", created)
    elif any(out.glob("shard-*.parquet")):
        raise DatasetError(f"{out} has shard files but no {MANIFEST}; refusing to mix data sets")
    for tmp in [*out.glob(".shard-*.tmp"), *out.glob(f".{MANIFEST}.*.tmp")]:  # left by a killed run
        tmp.unlink()
    done: dict[int, dict] = {}
    fp = cfg.fingerprint()
    for path in sorted(out.glob("shard-*.parquet")):
        summary = _read_shard_summary(path)
        k = summary.get("shard") if summary else None
        if summary is None or summary.get("fingerprint") != fp or k is None or path != shard_path(out, k) \
                or not 0 <= k < cfg.n_shards:
            path.unlink()  # truncated or foreign: recomputed below
            continue
        done[k] = summary
    return done, created


# ------------------------------------------------------------------------------------------ driver
@dataclass
class DatasetRun:
    """What :func:`simulate_dataset` did."""

    out: Path
    manifest: dict
    shards_computed: int
    shards_skipped: int
    seconds: float
    rows_computed: int = 0

    @property
    def cells_per_s(self) -> float:
        """Return the cells computed per second of compute (NaN without any time)."""
        return self.rows_computed / self.seconds if self.seconds > 0 else float("nan")


def simulate_dataset(config: DatasetConfig, out: str | os.PathLike, workers: int = 0,
                     scheduler: str | None = None, dask_local: int | None = None, progress: bool = True,
                     n_threads: int | None = None, max_shards: int | None = None,
                     device: str = "cpu") -> DatasetRun:
    """Generate (or resume) a training set in folder ``out``; see the module docstring.

    Parameters
    ----------
    workers : 0 for in-process (numba threads, ``n_threads``), N >= 1 for N spawned processes.
    scheduler : address of a running Dask scheduler (``tcp://host:port``).
    dask_local : start a Dask LocalCluster with this many single-threaded worker processes.
    max_shards : stop after computing this many shards (the folder stays resumable).
    device : ``"cuda"`` simulates on the GPU (in-process backend only; populations stay on the CPU).
    """
    cfg = config.resolved()
    out = Path(out)
    if sum(x is not None and x is not False for x in (scheduler, dask_local)) > 1 or \
            ((scheduler or dask_local) and workers):
        raise DatasetError("choose one backend: workers=N, scheduler=... or dask_local=N")
    if workers < 0:
        raise DatasetError(f"workers must be >= 0 (got {workers})")
    if device not in ("cpu", "cuda"):
        raise DatasetError(f"device must be 'cpu' or 'cuda' (got {device!r})")
    if device == "cuda" and (workers or scheduler or dask_local):
        raise DatasetError("device='cuda' runs in-process (one GPU per process): drop workers / Dask")
    from ..io.files import FolderLock

    with FolderLock(out):  # a second run on this folder is refused while this one lives
        return _simulate_locked(cfg, out, workers, scheduler, dask_local, progress, n_threads, max_shards, device)


def _simulate_locked(cfg, out: Path, workers, scheduler, dask_local, progress, n_threads, max_shards,
                     device) -> DatasetRun:
    done, created = _prepare_folder(out, cfg)
    pending = [k for k in range(cfg.n_shards) if k not in done]
    skipped = len(done)
    if max_shards is not None:
        pending = pending[:max_shards]
    _write_manifest(out, cfg, done, created)
    t0 = time.perf_counter()
    computed: list[int] = []

    def finished(data: bytes, summary: dict) -> int:
        k = summary["shard"]
        atomic_write_bytes(shard_path(out, k), data)
        done[k] = summary
        computed.append(k)
        _write_manifest(out, cfg, done, created)
        return summary["rows"]

    planned = len(pending) * cfg.targets_per_shard * cfg.cells_per_target
    rows = 0
    with ProgressBar(progress, planned, f"{cfg.model} cells") as bar:
        for data, summary in _execute(cfg, pending, workers, scheduler, dask_local, n_threads, device):
            rows += finished(data, summary)
            rate = rows / max(time.perf_counter() - t0, 1e-9)
            # a shard's planned cells count as done even if some targets were unreachable
            bar.advance(summary["targets"] * cfg.cells_per_target, info=f"{rate:,.1f} cells/s")
    seconds = time.perf_counter() - t0
    return DatasetRun(out, read_manifest(out), len(computed), skipped, seconds,
                      sum(done[k]["rows"] for k in computed))


def _write_manifest(out: Path, cfg: DatasetConfig, done: dict[int, dict], created: str) -> None:
    from ..io.files import atomic_write_text

    atomic_write_text(out / MANIFEST, json.dumps(_manifest(cfg, done, created), indent=1) + "\n")


def _execute(cfg: DatasetConfig, pending: list[int], workers: int, scheduler: str | None,
             dask_local: int | None, n_threads: int | None, device: str = "cpu") -> Iterable[tuple[bytes, dict]]:
    """Yield (bytes, summary) for every pending shard, in completion order, on the chosen backend."""
    if not pending:
        return
    if scheduler or dask_local:
        yield from _execute_dask(cfg, pending, scheduler, dask_local)
    elif workers >= 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            futures = [pool.submit(_shard_job, cfg.to_dict(), k) for k in pending]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            finally:
                for fut in futures:
                    fut.cancel()
    else:
        for k in pending:
            yield compute_shard(cfg, k, n_threads=n_threads, device=device)


def _worker_init() -> None:
    import numba

    numba.set_num_threads(1)
    _die_with_parent()


def _die_with_parent() -> None:
    """Have the kernel kill this worker when its parent dies (even by SIGKILL), on Linux; a no-op elsewhere.

    So an interrupted run never leaves orphaned workers computing shards nobody will write.
    """
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except OSError:
            pass


def _execute_dask(cfg: DatasetConfig, pending: list[int], scheduler: str | None,
                  dask_local: int | None) -> Iterable[tuple[bytes, dict]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as e:  # pragma: no cover - dask is a declared dependency
        raise DatasetError("the Dask backend needs 'dask[distributed]' (pip install 'dask[distributed]')") from e
    cluster = None
    if dask_local:
        cluster = LocalCluster(n_workers=int(dask_local), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as e:
            raise DatasetError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    try:
        futures = client.map(_shard_job, [cfg.to_dict()] * len(pending), pending, pure=False)
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
