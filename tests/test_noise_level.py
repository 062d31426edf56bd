"""Noise as an inferred quantity: per-cell noise levels in simulation and data sets, the noise posterior
p(sigma | DICs, train) (dicsbi.posterior.noise_level), its artifact and its use in the predictive check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicsbi.compensation import generate_population
from dicsbi.datasets.config import DatasetConfig, DatasetError, cell_noise_levels
from dicsbi.datasets.generate import simulate_dataset
from dicsbi.datasets.storage import load_dataset
from dicsbi.errors import DicsbiError
from dicsbi.posterior.artifact import PosteriorError, load_posterior
from dicsbi.posterior.inputs import first_window
from dicsbi.posterior.noise_level import NoiseLevelModel, randomised_pit
from dicsbi.posterior.training import TrainConfig, train_posterior
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains

FAST = dict(max_epochs=4, hidden_features=16, num_transforms=2, num_bins=4, batch_size=64, patience=50)


def test_each_neuron_gets_its_own_noise_level_and_the_same_current_alone_as_in_a_batch():
    g = generate_population("stg", 5.0, 5.0, 4, seed=1).conductances
    batch = simulate("stg", g, 1000.0, tier="fast", noise_std=[0.0, 2.0, 5.0, 8.0], seed=3)
    for k, level in enumerate((0.0, 2.0, 5.0, 8.0)):
        alone = simulate("stg", g[k:k + 1], 1000.0, tier="fast", noise_std=level, seed=3, noise_keys=[k])
        np.testing.assert_array_equal(batch.trains[k], alone.trains[0])
    assert batch.settings["noise_std_uA_cm2"] == [0.0, 2.0, 5.0, 8.0]
    with pytest.raises(DicsbiError, match="one number or 4"):
        simulate("stg", g, 100.0, tier="fast", noise_std=[1.0, 2.0])
    with pytest.raises(DicsbiError, match=">= 0"):
        simulate("stg", g, 100.0, tier="fast", noise_std=[1.0, -2.0, 0.0, 0.0])


def test_a_noise_prior_data_set_draws_one_level_per_cell_and_keeps_earlier_fingerprints():
    cfg = DatasetConfig("stg", 8, 2, noise_max=8.0, targets_per_shard=4)
    a, b = cell_noise_levels(cfg, 0, 8), cell_noise_levels(cfg, 1, 8)
    assert ((a > 0) & (a <= 8.0)).all() and not np.allclose(a, b)
    np.testing.assert_array_equal(a, cell_noise_levels(cfg, 0, 8))
    assert "noise_max" not in DatasetConfig("stg", 8, 2).to_dict()  # earlier sets keep their fingerprint
    assert cfg.fingerprint() != DatasetConfig("stg", 8, 2, targets_per_shard=4).fingerprint()
    with pytest.raises(DatasetError, match="noise_max"):
        DatasetConfig("stg", 8, 2, noise_std=5.0, noise_max=8.0).resolved()


@pytest.fixture(scope="module")
def noisy_world(tmp_path_factory):
    """A tiny clean set and a tiny noise-prior set (levels uniform on (0, 8])."""
    root = tmp_path_factory.mktemp("noise")
    common = dict(duration_ms=1000.0, transient_ms=300.0, targets_per_shard=20)
    simulate_dataset(DatasetConfig("stg", 40, 2, seed=5, **common), root / "clean", workers=0)
    simulate_dataset(DatasetConfig("stg", 40, 2, seed=6, noise_max=8.0, **common), root / "noise", workers=0)
    return root


def test_a_posterior_trained_on_several_noise_levels_has_a_noise_posterior_that_round_trips(noisy_world,
                                                                                          tmp_path):
    ds = load_dataset(noisy_world / "noise")
    assert ds.noise_std.shape == (len(ds),) and ds.noise_std.min() > 0
    post, _ = train_posterior([noisy_world / "clean", noisy_world / "noise"], TrainConfig(**FAST), progress=False)
    nl = post.noise_level
    assert nl is not None and nl.max == 8.0 and 0.4 < nl.config["p_zero"] < 0.6
    trains = ds.trains.select(np.flatnonzero(ds.trains.counts >= 3)[:3])
    theta = post.sample(trains, 50, seed=1)
    sig = post.sample_noise(trains, theta, seed=2)
    assert sig.shape == (3, 50) and (sig >= 0).all() and (sig <= 8.0).all()
    assert (sig == 0).any() and (sig > 0).any()  # a mixed distribution, untrained: both parts
    assert post.sample_noise(trains[0], theta[0], seed=2).shape == (50,)
    post.save(tmp_path / "p")
    again = load_posterior(tmp_path / "p")
    np.testing.assert_array_equal(again.sample_noise(trains, theta, seed=2), sig)
    (tmp_path / "p" / "noise_level.pt").write_bytes(b"damaged")
    with pytest.raises(PosteriorError, match="checksum"):
        load_posterior(tmp_path / "p")


def test_a_posterior_of_one_noise_level_says_it_has_no_noise_posterior(tiny_posteriors):
    post, _ = tiny_posteriors["summary"]
    assert post.noise_level is None
    with pytest.raises(DicsbiError, match="one noise level"):
        post.sample_noise(np.arange(5) * 100.0, np.zeros((4, 2)))


def test_the_mixed_likelihood_is_a_probability_at_zero_and_a_normalised_density_above():
    x = torch.randn(64, 5)
    m = NoiseLevelModel.create(x, [[-10, 10], [0, 10]], 8.0, 0.5, hidden=8, components=3)
    theta = torch.full((1, 2), 2.0)
    x1 = x[:1]
    grid = torch.linspace(1e-4, 8.0 - 1e-4, 40001)[:, None]
    with torch.no_grad():
        dens = m.log_prob(grid[:, 0], x1.expand(len(grid), -1), theta.expand(len(grid), -1)).exp()
    mass = float(torch.trapezoid(dens, grid[:, 0]))
    with torch.no_grad():
        p0 = float(m.log_prob(torch.zeros(1), x1, theta).exp())
    assert abs(p0 + mass - 1.0) < 2e-3
    draws = m.sample(x1.expand(20000, -1), theta.expand(20000, -1), generator=torch.Generator().manual_seed(0))
    assert abs((draws == 0).mean() - p0) < 0.02


def test_randomised_pit_is_uniform_for_exact_posteriors_with_a_point_mass():
    rng = np.random.default_rng(0)
    n, s = 4000, 400
    clean = rng.random(n) < 0.4
    truth = np.where(clean, 0.0, rng.uniform(0, 8, n))
    # the exact posterior of an uninformative observation is the prior
    samples = np.where(rng.random((n, s)) < 0.4, 0.0, rng.uniform(0, 8, (n, s)))
    pit = randomised_pit(samples, truth, seed=1)
    assert np.abs(np.histogram(pit, 10, (0, 1))[0] / n - 0.1).max() < 0.025


def test_first_window_cuts_long_trains_from_their_first_spike():
    trains = SpikeTrains.from_list([np.arange(3000.0, 9000.0, 100.0), np.arange(0.0, 500.0, 50.0)], 0.0,
                                   [9000.0, 500.0])
    cut = first_window(trains, 3000.0)
    assert cut[0][0] == 3000.0 and cut[0][-1] <= 6000.0 and cut.counts[0] == 31
    np.testing.assert_array_equal(cut[1], trains[1])


def test_the_shipped_noise_posterior_covers_the_truth_on_simulated_noisy_trains():
    post = load_posterior("stg")
    assert post.noise_level is not None
    targets = [(4.0, 5.0), (-6.0, 5.0), (8.0, 8.0), (-2.0, 6.0), (2.0, 3.0), (-4.0, 7.0), (6.0, 4.0), (0.0, 5.0)]
    levels = np.array([0.0, 0.0, 1.5, 3.0, 4.5, 6.0, 7.0, 7.5])
    g = np.vstack([generate_population("stg", gs, gu, 1, seed=40 + k).conductances
                   for k, (gs, gu) in enumerate(targets)])
    trains = simulate("stg", g, noise_std=levels, seed=9, tier="fast").trains
    theta = post.sample(trains, 400, seed=3)
    sig = post.sample_noise(trains, theta, seed=4)
    lo, hi = np.quantile(sig, [0.025, 0.975], axis=1)
    covered = (levels >= lo) & (levels <= hi)
    assert covered[2:].sum() >= 5, (lo, hi)             # a 95% interval: at most one miss in six
    assert ((sig[:2] == 0).mean(1) > 0.5).all()         # clean trains: most mass at 0
    assert (np.median(sig[-3:], 1) > 3.0).all()         # strongly noisy trains: clearly noisy
