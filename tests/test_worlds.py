"""Training worlds: each world's cells are valid and labelled by their own DICs; mixtures are drawn and stored."""

import numpy as np
import pytest
from scipy.stats import kstest

from dicsbi.compensation import plausible_upper_bounds
from dicsbi.datasets.config import DatasetConfig, DatasetError, shard_worlds
from dicsbi.datasets.generate import simulate_dataset
from dicsbi.datasets.storage import combine_datasets, load_dataset
from dicsbi.datasets.worlds import (
    MODULATION_SCALE,
    WORLDS,
    _truncated_laplace,
    choose_worlds,
    make_cells,
    parse_worlds,
)
from dicsbi.dics import compute_dics
from dicsbi.errors import DicsbiError
from dicsbi.models import DA, STG
from dicsbi.posterior.training import _world_shares


def test_world_specifications_normalise_and_refuse():
    assert parse_worlds(None) == {"generator": 1.0}
    assert parse_worlds("generator:1,wide:3") == {"generator": 0.25, "wide": 0.75}
    assert parse_worlds("unseen") == {"unseen": 1.0}
    for bad in ("nowhere:1", "wide:-1", "wide:x", "wide:1,wide:2", "unseen:1,generator:1"):
        with pytest.raises(DicsbiError):
            parse_worlds(bad)
    with pytest.raises(DatasetError, match="unknown world"):
        DatasetConfig("stg", 4, world="nowhere").resolved()
    names = choose_worlds({"generator": 0.25, "wide": 0.75}, np.random.default_rng(0).uniform(size=20000))
    assert abs(names.count("generator") / 20000 - 0.25) < 0.01


@pytest.mark.parametrize("model", [STG, DA], ids=["stg", "da"])
@pytest.mark.parametrize("world", WORLDS)
def test_cells_are_in_range_and_labelled_by_their_recomputed_dics(model, world):
    box = np.array(model.dic_box, dtype=float)
    target = box.mean(axis=1)
    cells = make_cells(model, world, target[0], target[1], 6, seed=3, box=box)
    g = cells.conductances
    assert g.shape == (6, model.n_conductances) and cells.world == world
    assert np.all(g >= 0) and np.all(g <= plausible_upper_bounds(model) * (1 + 1e-9))
    dics = compute_dics(model, g)  # independent of what the world computed
    np.testing.assert_allclose(cells.dics, dics, atol=1e-5)
    np.testing.assert_allclose(cells.labels, dics[:, 1:], atol=1e-5)
    assert np.all((cells.labels >= box[:, 0]) & (cells.labels <= box[:, 1]))
    again = make_cells(model, world, target[0], target[1], 6, seed=3, box=box)
    np.testing.assert_array_equal(again.conductances, g)
    if world in ("generator", "wide", "allpairs"):  # solved for the target
        np.testing.assert_allclose(cells.labels, np.tile(target, (6, 1)), atol=1e-5)


def test_modulated_cells_differ_from_their_generator_cells_in_one_to_three_channels():
    box = np.array(STG.dic_box, dtype=float)
    base = make_cells(STG, "generator", 0.0, 10.0, 20, seed=5, box=box).conductances
    mod = make_cells(STG, "modulated", 0.0, 10.0, 20, seed=5, box=box).conductances
    changed = (~np.isclose(base, mod, rtol=1e-12)).sum(axis=1)
    assert changed.min() >= 1 and changed.max() <= 3


def test_truncated_laplace_matches_the_truncated_cost_prior():
    high = np.full(20000, 0.3)
    x = _truncated_laplace(np.random.default_rng(1), high)
    assert x.max() <= 0.3
    b = MODULATION_SCALE

    def cdf(v):
        return np.where(v < 0, 0.5 * np.exp(v / b), 1 - 0.5 * np.exp(-v / b))

    assert kstest(x, lambda v: cdf(v) / cdf(0.3)).pvalue > 1e-3


def test_a_mixture_data_set_stores_each_cells_world(tmp_path):
    cfg = DatasetConfig("stg", 6, 2, seed=2, duration_ms=300.0, transient_ms=100.0, targets_per_shard=3,
                        world="wide:1,modulated:1")
    plain = DatasetConfig("stg", 6, 2, seed=2, duration_ms=300.0, transient_ms=100.0, targets_per_shard=3)
    assert cfg.fingerprint() != plain.fingerprint() and "world" not in plain.to_dict()
    assert cfg.resolved().world == "wide:0.5,modulated:0.5"
    simulate_dataset(cfg, tmp_path / "mix", progress=False)
    ds = load_dataset(tmp_path / "mix")
    expected = np.repeat(shard_worlds(cfg, 0) + shard_worlds(cfg, 1), 2)
    np.testing.assert_array_equal(ds.world, expected)
    np.testing.assert_allclose(ds.targets, compute_dics(STG, ds.conductances)[:, 1:], atol=1e-5)
    assert ds.manifest["config"]["world"] == "wide:0.5,modulated:0.5"
    simulate_dataset(plain, tmp_path / "plain", progress=False)
    both, _ = combine_datasets([load_dataset(tmp_path / "plain"), ds], 0.1)
    shares = _world_shares(both, np.arange(len(both)))
    assert shares["generator"] == 0.5 and abs(sum(shares.values()) - 1) < 1e-9


def test_the_command_line_makes_an_unseen_world_and_refuses_a_bad_one(tmp_path):
    import subprocess
    import sys

    base = [sys.executable, "-m", "dicsbi.cli", "simulate-dataset", "--no-progress", "--n-targets", "2",
            "--cells-per-target", "3", "--duration-ms", "300", "--transient-ms", "100"]
    r = subprocess.run([*base, "--out", str(tmp_path / "u"), "--world", "unseen"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ds = load_dataset(tmp_path / "u")
    assert list(ds.world) == ["unseen"] * 6
    np.testing.assert_allclose(ds.targets, compute_dics(STG, ds.conductances)[:, 1:], atol=1e-9)
    r = subprocess.run([*base, "--out", str(tmp_path / "bad"), "--world", "unseen:1,wide:1"], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "unseen world is a test world" in r.stderr and not (tmp_path / "bad").exists()
