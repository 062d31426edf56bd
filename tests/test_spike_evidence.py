"""The spike-level modulation evidence: its training pairs, the classifier, calibration and persistence."""

from __future__ import annotations

from types import SimpleNamespace

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
    ev = fit_spike_evidence(x, y, val, ["a", "b", "c"], "stg", hidden=32, depth=2, max_epochs=40, members=2,
                            progress=False)
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


@pytest.fixture(scope="module")
def stg_toy_evidence():
    """A (barely trained) spike-level model over the real STG hypotheses, spike statistics only."""
    labels = [h.label for h in enumerate_hypotheses("stg")]
    rng = np.random.default_rng(3)
    y = rng.integers(len(labels), size=2000)
    x = rng.normal(size=(2000, 66))
    x[:, 0] += 0.05 * y
    return fit_spike_evidence(x, y, np.arange(2000) % 5 == 0, labels, "stg", hidden=16, depth=1, max_epochs=2,
                              members=1, progress=False)


def _pair(n=2):
    before = SpikeTrains.from_list([np.arange(0, 3000, 50.0 + 10 * i) for i in range(n)], t_stop_ms=3000)
    after = SpikeTrains.from_list([np.arange(0, 3000, 30.0 + 5 * i) for i in range(n)], t_stop_ms=3000)
    return before, after


def test_spike_level_reweights_to_the_comparisons_prior_and_subset(stg_toy_evidence):
    from dicsbi.modulation import hypothesis_log_prior, parse_hypotheses
    from dicsbi.modulation.options import ComparisonOptions
    from dicsbi.modulation.spike_evidence import spike_level

    ev = stg_toy_evidence
    before, after = _pair()
    hyps = enumerate_hypotheses("stg")
    full = spike_level(ev, hyps, hypothesis_log_prior(hyps), before, after)
    np.testing.assert_allclose(full.probability, ev.probability(before, after))  # its own prior: unchanged
    assert full.log_q_neuron.shape == (2, len(hyps)) and full.neurons == ["0", "1"]
    sub = parse_hypotheses("stg", "CaS+A, H, A+H")
    part = spike_level(ev, sub, hypothesis_log_prior(sub, 2.0), before, after)
    idx = [[h.label for h in hyps].index(h.label) for h in sub]
    want = full.probability[idx] * np.exp(hypothesis_log_prior(sub, 2.0) - hypothesis_log_prior(hyps)[idx])
    np.testing.assert_allclose(part.probability, want / want.sum())  # Bayes with the other prior, restricted
    with pytest.raises(SpikeEvidenceError, match="subsets of 1-3 channels"):
        spike_level(ev, [SimpleNamespace(label="CaT+CaS+A+H")], np.zeros(1), before, after)  # e.g. another model
    with pytest.raises(SpikeEvidenceError, match="cost prior"):
        spike_level(ev, hyps, hypothesis_log_prior(hyps), before, after, ComparisonOptions(typical_change=2.0))


def test_modulate_reports_the_spike_level_evidence_beside_the_dic_level(stg_toy_evidence, tmp_path):
    from dicsbi.io.netcdf import modulation_data
    from dicsbi.modulation import ComparisonOptions, modulate
    from dicsbi.modulation.output import hypotheses_table, write_modulation
    from dicsbi.simulate import simulate

    g = np.loadtxt("examples/stg_conductances.csv", delimiter=",", skiprows=1, usecols=range(1, 9))[:1]
    g2 = g.copy()
    g2[:, 5] *= 0.7
    res = simulate("stg", np.vstack([g, g2]), seed=0, tier="fast")
    b, a = (SpikeTrains.from_list([res.trains[k]], 0.0, float(res.trains.t_stop_ms[k]), ids=["LP"]) for k in (0, 1))
    opts = ComparisonOptions(n_pilot=8, n_particles=16)
    r = modulate(b, a, "stg", "A, H, A+H", n_members=8, seed=1, options=opts, spike_evidence=stg_toy_evidence)
    assert r.spike is not None and r.spike.probability.sum() == pytest.approx(1.0)
    assert r.settings["spike_evidence"].startswith("weights ")
    assert r.order("spike")[0] == int(np.argmax(r.spike.probability))
    assert set(r.channel_probability("spike")) == set(r.channel_probability())
    table = hypotheses_table(r)
    assert "probability_spike" in table.splitlines()[0]
    idata = modulation_data(r)
    np.testing.assert_allclose(idata.sample_stats["probability_spike"].values, r.spike.probability)
    write_modulation(r, tmp_path, maps=False)
    assert "spike-level" in (tmp_path / "report.html").read_text().lower()
    off = modulate(b, a, "stg", "A, H, A+H", n_members=8, seed=1, options=opts, spike_evidence=None)
    assert off.spike is None and off.settings["spike_evidence"] == "off"
    np.testing.assert_allclose(off.probability, r.probability)  # the DIC-level evidence does not depend on it
    with pytest.raises(Exception, match="no spike-level evidence"):
        off.order("spike")
