"""Training sets: determinism across backends, resume after a kill, labels that recompute, refusals."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from dicsbi.datasets.config import DatasetConfig, DatasetError, design_targets
from dicsbi.datasets.generate import simulate_dataset
from dicsbi.datasets.storage import load_dataset, read_manifest, shard_path, subset_trains, validation_mask
from dicsbi.dics import compute_dics
from dicsbi.models import STG
from dicsbi.simulate import simulate

# short windows keep every shard around a second
TINY = dict(model="stg", n_targets=6, cells_per_target=4, seed=11, duration_ms=400.0, transient_ms=150.0,
            targets_per_shard=2)


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.parquet"))}


def assert_tables_equal(a, b):
    """Row for row, column for column (NaN features equal NaN), shard by shard."""
    ta = [pq.read_table(p) for p in sorted(a.glob("shard-*.parquet"))]
    tb = [pq.read_table(p) for p in sorted(b.glob("shard-*.parquet"))]
    assert len(ta) == len(tb)
    for x, y in zip(ta, tb):
        assert x.schema.equals(y.schema, check_metadata=True) and x.num_rows == y.num_rows
        for name in x.column_names:
            u, v = x.column(name).to_pylist(), y.column(name).to_pylist()
            np.testing.assert_array_equal(np.array(u, dtype=object if name == "spike_times_ms" else None),
                                          np.array(v, dtype=object if name == "spike_times_ms" else None))


@pytest.fixture(scope="module")
def reference_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "stg"
    simulate_dataset(DatasetConfig(**TINY), out, progress=False)
    return out


def test_manifest_and_loader(reference_set):
    man = read_manifest(reference_set)
    assert man["complete"] and man["n_shards"] == 3 and man["totals"]["rows"] == 24
    assert man["config"]["duration_ms"] == 400.0 and man["config"]["dt_ms"] == STG.tier_dt_ms("fast") == 0.05
    assert man["config"]["tier"] == "fast"  # training sets are simulated at the fast tier by default
    assert set(man["versions"]) >= {"dicsbi", "numpy", "numba", "pyarrow"}
    assert [man["shards"][k]["rows"] for k in sorted(man["shards"])] == [8, 8, 8]
    d = load_dataset(reference_set)
    assert len(d) == 24 and d.conductances.shape == (24, STG.n_conductances)
    assert np.array_equal(np.unique(d.target_index), np.arange(6))
    # each population shares its target, and cells are in (target, cell) order with no duplicate
    targets = design_targets(DatasetConfig(**TINY))
    np.testing.assert_array_equal(d.targets, targets[d.target_index])
    assert len({(t, c) for t, c in zip(d.target_index, np.tile(np.arange(4), 6))}) == 24
    np.testing.assert_array_equal(d.trains.counts, [len(t) for t in d.trains])
    assert (d.status == 0).all() and set(np.unique(d.firing_class)) <= {0, 1, 2}
    val, train = load_dataset(reference_set, "val", 0.34), load_dataset(reference_set, "train", 0.34)
    assert len(val) + len(train) == 24 and len(val) == 8
    assert not set(val.target_index) & set(train.target_index)


def test_subsets_keep_whole_populations_nest_and_split_as_the_set(reference_set):
    d = load_dataset(reference_set)
    val = validation_mask(d, 0.34)
    small, large = subset_trains(d, 3, 0.34, seed=1), subset_trains(d, 9, 0.34, seed=1)
    for sub in (small, large):
        kept = np.isin(d.target_index, sub.target_index)  # whole populations, rows and trains as in the set
        assert len(sub) == kept.sum() and len(sub) % 4 == 0
        np.testing.assert_array_equal(sub.conductances, d.conductances[kept])
        assert all(np.array_equal(a, b) for a, b in zip(sub.trains, d.trains.select(kept)))
        np.testing.assert_array_equal(validation_mask(sub, 0.34), val[kept])  # the split is the set's
        assert sub.manifest["subset"]["of"] == d.manifest["fingerprint"] != sub.manifest["fingerprint"]
    ok = (d.status == 0) & (d.trains.counts >= 3)
    n_small = (np.isin(d.target_index, small.target_index) & ok & ~val).sum()
    assert n_small >= 3 and set(small.target_index) <= set(large.target_index)  # nested under one seed
    assert subset_trains(d, 10**6, 0.34).target_index.size == len(d)
    with pytest.raises(DatasetError, match="positive"):
        subset_trains(d, 0)


def test_targets_cover_the_box_by_design():
    cfg = DatasetConfig("stg", n_targets=50, seed=3)
    t = design_targets(cfg)
    (a, b), (c, d) = STG.dic_box
    assert t[:, 0].min() >= a and t[:, 0].max() <= b and t[:, 1].min() >= c and t[:, 1].max() <= d
    # Latin hypercube: exactly one target in each of the 50 strata of each axis
    for k, (lo, hi) in enumerate(STG.dic_box):
        strata = np.floor((t[:, k] - lo) / (hi - lo) * 50).astype(int)
        assert np.array_equal(np.sort(strata), np.arange(50))
    assert not np.array_equal(t, design_targets(DatasetConfig("stg", n_targets=50, seed=4)))


def test_stored_labels_recompute(reference_set):
    """Stored achieved DICs equal the DICs recomputed from the stored conductances; they hit the targets."""
    d = load_dataset(reference_set)
    np.testing.assert_allclose(compute_dics(STG, d.conductances, d.vth_mV), d.dics, rtol=0, atol=1e-9)
    np.testing.assert_allclose(d.dics[:, 1:], d.targets, atol=1e-6)
    assert (d.conductances >= 0).all()


def test_stored_trains_resimulate(tmp_path):
    """Cells re-simulated one by one from their stored conductances and seeds give their stored trains."""
    cfg = DatasetConfig(**{**TINY, "n_targets": 2, "noise_std": 3.0})
    simulate_dataset(cfg, tmp_path / "noisy", progress=False)
    d = load_dataset(tmp_path / "noisy")
    c = d.manifest["config"]
    for i in (0, 3, 6):
        res = simulate(STG, d.conductances[i], c["duration_ms"], c["dt_ms"], c["transient_ms"],
                       noise_std=c["noise_std"], seed=int(d.noise_seed[i]), noise_keys=[d.noise_index[i]])
        np.testing.assert_array_equal(res.trains[0], d.trains[i])
        assert res.trains.counts[0] > 0


def test_one_and_two_worker_processes_give_identical_shards(tmp_path, reference_set):
    cfg = DatasetConfig(**TINY)
    simulate_dataset(cfg, tmp_path / "w1", workers=1, progress=False)
    simulate_dataset(cfg, tmp_path / "w2", workers=2, progress=False)
    ref = shard_bytes(reference_set)
    assert shard_bytes(tmp_path / "w1") == ref == shard_bytes(tmp_path / "w2")


def test_dask_local_cluster_gives_identical_shards(tmp_path, reference_set):
    simulate_dataset(DatasetConfig(**TINY), tmp_path / "dask", dask_local=2, progress=False)
    assert shard_bytes(tmp_path / "dask") == shard_bytes(reference_set)


def test_killed_run_resumes_to_the_identical_set(tmp_path, reference_set):
    out = tmp_path / "killed"
    cfg = {**TINY, "n_targets": 12}  # 6 shards: the kill lands mid-way
    args = [sys.executable, "-m", "dicsbi.cli", "simulate-dataset", "--out", str(out), "--no-progress",
            "--model", "stg", "--n-targets", "12", "--cells-per-target", "4", "--seed", "11",
            "--duration-ms", "400", "--transient-ms", "150", "--targets-per-shard", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not shard_path(out, 0).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not read_manifest(out)["complete"] and 1 <= len(list(out.glob("shard-*.parquet"))) < 6
    # a truncated shard and a stale temporary file, as a crash during a write would leave them
    last = shard_path(out, 5)
    last.write_bytes(b"PAR1 truncated")
    (out / ".shard-00004.parquet.123.tmp").write_bytes(b"partial")
    (out / ".manifest.json.x1y2.tmp").write_text("{")
    with pytest.raises(DatasetError, match="only .* shards are done"):
        load_dataset(out)
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "complete" in r.stderr
    full = tmp_path / "full"
    simulate_dataset(DatasetConfig(**cfg), full, progress=False)
    assert_tables_equal(out, full)
    assert shard_bytes(out) == shard_bytes(full)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + [f"shard-{k:05d}.parquet" for k in range(6)]
    a, b = load_dataset(out), load_dataset(full)
    np.testing.assert_array_equal(a.trains.times_ms, b.trains.times_ms)
    assert len({(t, c) for t, c in zip(a.target_index, a.population_seed)}) == 12


def test_other_configuration_on_a_used_folder_is_refused(reference_set):
    with pytest.raises(DatasetError, match=r"another configuration \(seed: 11 -> 12\)"):
        simulate_dataset(DatasetConfig(**{**TINY, "seed": 12}), reference_set, progress=False)
    # the same configuration resumes as a no-op
    run = simulate_dataset(DatasetConfig(**TINY), reference_set, progress=False)
    assert run.shards_computed == 0 and run.shards_skipped == 3


def test_bad_configurations_and_folders(tmp_path):
    with pytest.raises(DatasetError, match="n_targets must be >= 1"):
        DatasetConfig("stg", n_targets=0).resolved()
    with pytest.raises(DatasetError, match="design must be one of"):
        DatasetConfig("stg", n_targets=5, design="grid").resolved()
    with pytest.raises(DatasetError, match="g_s_range"):
        DatasetConfig("stg", n_targets=5, g_s_range=(3.0, 1.0)).resolved()
    with pytest.raises(DatasetError, match="choose one backend"):
        simulate_dataset(DatasetConfig(**TINY), tmp_path / "x", workers=2, dask_local=2)
    with pytest.raises(DatasetError, match="not a dicsbi data set"):
        load_dataset(tmp_path)
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="damaged manifest"):
        simulate_dataset(DatasetConfig(**TINY), tmp_path / "y")


def test_unreachable_targets_are_counted_not_dropped(tmp_path):
    """A box no pair reaches (DA, g_s far above the seed population) is recorded per shard in the manifest."""
    cfg = DatasetConfig("da", n_targets=2, cells_per_target=2, seed=0, design="uniform",
                        g_s_range=(40.0, 41.0), g_u_range=(19.0, 20.0), duration_ms=300.0, transient_ms=100.0)
    run = simulate_dataset(cfg, tmp_path / "da", progress=False)
    man = run.manifest
    assert man["totals"]["unreachable_targets"] == 2 and man["totals"]["rows"] == 0
    assert man["shards"]["0"]["unreachable_targets"] == [0, 1]
    assert json.loads((tmp_path / "da" / "manifest.json").read_text())["complete"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_killed_coordinator_leaves_no_worker_processes(tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "w"
    args = [sys.executable, "-m", "dicsbi.cli", "simulate-dataset", "--out", str(out), "--no-progress",
            "--model", "stg", "--n-targets", "40", "--cells-per-target", "4", "--seed", "1", "--duration-ms", "400",
            "--transient-ms", "150", "--targets-per-shard", "2", "--workers", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not shard_path(out, 0).exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_lives(tmp_path):
    from dicsbi.errors import DicsbiError

    out = tmp_path / "set"
    out.mkdir()
    (out / ".dicsbi.lock").write_text(str(os.getppid()))  # a live process holds the folder
    with pytest.raises(DicsbiError, match="another dicsbi run .* is writing this folder"):
        simulate_dataset(DatasetConfig(**TINY), out, progress=False)
    assert not any(out.glob("shard-*")) and not (out / "manifest.json").exists()
    (out / ".dicsbi.lock").write_text("999999999")  # stale (no such process): taken over
    run = simulate_dataset(DatasetConfig(**TINY), out, progress=False, max_shards=1)
    assert run.shards_computed == 1 and not (out / ".dicsbi.lock").exists()


def test_the_step_follows_the_tier_and_is_recorded():
    fast = DatasetConfig("stg", n_targets=4).resolved()
    exact = DatasetConfig("da", n_targets=4, tier="exact").resolved()
    custom = DatasetConfig("stg", n_targets=4, dt_ms=0.02).resolved()
    assert (fast.dt_ms, fast.tier) == (0.05, "fast") and (exact.dt_ms, exact.tier) == (0.02, "exact")
    assert (custom.dt_ms, custom.tier) == (0.02, "custom") and custom.resolved() == custom
    assert fast.fingerprint() != DatasetConfig("stg", n_targets=4, tier="exact").fingerprint()
    with pytest.raises(DatasetError, match="tier must be one of"):
        DatasetConfig("stg", n_targets=4, tier="rough").resolved()
