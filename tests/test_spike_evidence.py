"""The spike-level modulation evidence: its training pairs, the classifier, calibration and persistence."""

from __future__ import annotations

import numpy as np
import pytest

from dicsbi.compensation import plausible_upper_bounds
from dicsbi.models import get_model
from dicsbi.modulation import enumerate_hypotheses
from dicsbi.modulation.pairs import simulate_pairs
from dicsbi.modulation.scenarios import visible_change
from dicsbi.modulation.spike_evidence import (
    SpikeEvidence,
    SpikeEvidenceError,
    fit_spike_evidence,
    fit_temperature,
    pair_features,
)
from dicsbi.spikes import SpikeTrains


@pytest.fixture(scope="module")
def block():
    return simulate_pairs("stg", 6, 3, seed=11, block=2)


def test_pairs_follow_the_prior_program(block):
    m = get_model("stg")
    hyps = enumerate_hypotheses(m)
    assert len(block.hypothesis) == 3 * len(block.before_g) and len(block.after) == len(block.hypothesis)
    after_g = block.before_g[block.cell] * np.exp(block.log_ratio)
    assert np.all(after_g > 0) and np.all(after_g <= plausible_upper_bounds(m) * (1 + 1e-12))
    for k, h in enumerate(block.hypothesis):
        changed = {m.conductance_names[j] for j in np.flatnonzero(block.log_ratio[k])}
        assert changed == set(hyps[h].channels)  # exactly the hypothesis' channels move
        assert block.visible[k] == visible_change(block.firing_class[k], block.main_hz[k])
    again = simulate_pairs("stg", 6, 3, seed=11, block=2)
    np.testing.assert_array_equal(again.log_ratio, block.log_ratio)
    np.testing.assert_array_equal(again.after.times_ms, block.after.times_ms)
    other = simulate_pairs("stg", 6, 3, seed=11, block=3)
    assert not np.array_equal(other.before_g, block.before_g)


def test_pair_features_are_both_trains_and_their_difference():
    a = SpikeTrains.from_list([np.arange(0, 3000, 50.0)], t_stop_ms=3000)
    b = SpikeTrains.from_list([np.arange(0, 3000, 20.0)], t_stop_ms=3000)
    f = pair_features(a, b)
    assert f.shape == (1, 66)
    np.testing.assert_allclose(f[0, 44:], f[0, 22:44] - f[0, :22])
    with pytest.raises(SpikeEvidenceError, match="pairs are needed"):
        pair_features(a, SpikeTrains.concat([b, b]))


def _toy(n=3000, seed=0):
    """Three hypotheses, features whose class-conditional means differ: a learnable problem."""
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    x = rng.normal(size=(n, 66))
    x[:, 0] += 3.0 * y  # Bayes accuracy 0.91
    return x, y


def test_classifier_learns_and_round_trips(tmp_path):
    x, y = _toy()
    val = np.arange(len(y)) % 5 == 0
    ev = fit_spike_evidence(x, y, val, ["a", "b", "c"], "stg", hidden=32, depth=2, max_epochs=40, progress=False)
    rec = ev.config["training"]
    assert rec["val_top1"] > 0.8 and rec["val_nll"] < rec["val_nll_prior"] - 0.4
    ev.save(tmp_path)
    back = SpikeEvidence.load(tmp_path)
    import torch

    xt = torch.as_tensor(x[:20], dtype=torch.float32)
    with torch.no_grad():
        np.testing.assert_allclose(back.logits(xt).numpy(), ev.logits(xt).numpy())
    assert back.temperature == ev.temperature
    (tmp_path / "spike_evidence.pt").write_bytes(b"not weights")
    with pytest.raises(SpikeEvidenceError, match="checksum"):
        SpikeEvidence.load(tmp_path)
    with pytest.raises(SpikeEvidenceError, match="missing"):
        SpikeEvidence.load(tmp_path / "nowhere")


def test_temperature_recovers_a_known_overconfidence():
    import torch

    rng = np.random.default_rng(1)
    true_logits = torch.as_tensor(rng.normal(scale=2.0, size=(20000, 5)))
    y = torch.multinomial(torch.softmax(true_logits, -1), 1, generator=torch.Generator().manual_seed(0))[:, 0]
    assert fit_temperature(true_logits * 2.5, y) == pytest.approx(2.5, rel=0.06)


def test_neurons_combine_as_likelihood_ratios():
    x, y = _toy(600)
    ev = fit_spike_evidence(x, y, np.arange(600) % 5 == 0, ["a", "b", "c"], "stg", hidden=8, depth=1,
                            max_epochs=3, progress=False)
    lq = np.log(np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]]))
    ratio = np.exp(lq - ev.log_prior).prod(0) * np.exp(ev.log_prior)
    np.testing.assert_allclose(ev.combine(lq), ratio / ratio.sum())
    np.testing.assert_allclose(ev.combine(lq[:1]), np.exp(lq[0]))  # one neuron: its own posterior


def test_dic_features_extend_the_spike_statistics():
    from dicsbi.posterior.artifact import load_posterior

    post = load_posterior("stg")
    a = SpikeTrains.from_list([np.arange(0, 3000, 50.0)], t_stop_ms=3000)
    b = SpikeTrains.from_list([np.sort(np.concatenate([np.arange(0, 3000, 400.0) + d for d in (0, 8, 16, 24)]))],
                              t_stop_ms=3000)
    f = pair_features(a, b, post)
    assert f.shape == (1, 78)
    np.testing.assert_array_equal(f[:, :66], pair_features(a, b))
    draws_b = post.sample(a, 64, seed=0)
    np.testing.assert_allclose(f[0, 66:68], draws_b[0].mean(0))
    np.testing.assert_allclose(f[0, 74:], f[0, 70:74] - f[0, 66:70])
