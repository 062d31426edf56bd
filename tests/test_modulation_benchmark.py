"""The modulation benchmark's parts: scenarios drawn from the model's own prior (reproducible, conditioned on a
visible change), the published cost rule (exact on a planted pair), the oracle comparison and the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from dicsbi.compensation import generate_population, plausible_upper_bounds
from dicsbi.dics import compute_dics
from dicsbi.errors import DicsbiError
from dicsbi.models import get_model
from dicsbi.modulation import ComparisonOptions, enumerate_hypotheses, hypothesis_log_prior, scoring
from dicsbi.modulation.compare import compare_population
from dicsbi.modulation.cost_rule import order_by_cost, rank_by_cost_population
from dicsbi.modulation.likelihood import GaussianLikelihood
from dicsbi.modulation.model import change_prior, cost_scale
from dicsbi.modulation.scenarios import DRIFT_SD, draw_scenario, main_frequency, scenario_seed, visible_change
from dicsbi.spikes import SpikeTrains


def _same(a, b):
    assert a.truth == b.truth and a.log_ratio == b.log_ratio and a.target == b.target
    np.testing.assert_array_equal(a.before, b.before)
    np.testing.assert_array_equal(a.after, b.after)
    for x, y in zip(a.trains, b.trains, strict=True):
        np.testing.assert_array_equal(x.times_ms, y.times_ms)


@pytest.mark.parametrize("set_name", ["prior", "drift", "bio"])
def test_a_scenario_is_a_pure_function_of_its_seed(set_name):
    a, b = draw_scenario("stg", set_name, 3, base_seed=5), draw_scenario("stg", set_name, 3, base_seed=5)
    _same(a, b)
    c = draw_scenario("stg", set_name, 4, base_seed=5)
    assert not np.array_equal(a.before, c.before)
    assert scenario_seed(5, set_name, 3) != scenario_seed(6, set_name, 3)


@pytest.mark.parametrize("model", ["stg", "da"])
def test_prior_scenarios_hold_the_visible_change_filter_and_the_bounds(model):
    m = get_model(model)
    upper = plausible_upper_bounds(m)
    for i in range(4):
        sc = draw_scenario(model, "prior", i)
        cls, freq = main_frequency(SpikeTrains.concat(list(sc.trains)))   # recomputed from the stored trains
        assert tuple(cls) == sc.firing_class and 0 not in sc.firing_class
        assert visible_change(cls, freq) and sc.changed
        assert np.all(sc.after > 0) and np.all(sc.after <= upper)
        changed = ~np.isclose(sc.after, sc.before, rtol=1e-12, atol=0)
        assert tuple(np.array(m.conductance_names)[changed]) == sc.truth
        assert {c: np.log(sc.after[m.conductance_names.index(c)] / sc.before[m.conductance_names.index(c)])
                for c in sc.truth} == pytest.approx(sc.log_ratio)
        assert compute_dics(m, sc.before[None])[0, 1:] == pytest.approx(sc.target, abs=1e-5)


def test_drift_scenarios_move_every_untargeted_channel_a_little_and_keep_the_truth():
    m = get_model("stg")
    sc = draw_scenario("stg", "drift", 1)
    untargeted = [c for c in m.seed_spec.candidate_pairs_from if c not in sc.truth]
    assert sorted(sc.drift) == sorted(untargeted)
    for c in untargeted:
        j = m.conductance_names.index(c)
        assert np.log(sc.after[j] / sc.before[j]) == pytest.approx(sc.drift[c])
        assert abs(sc.drift[c]) < 6 * DRIFT_SD
    assert sc.after[m.conductance_names.index("g_leak")] == sc.before[m.conductance_names.index("g_leak")]


def test_visible_change_rule():
    assert visible_change((1, 2), (10.0, 10.0))          # class changed
    assert visible_change((1, 1), (10.0, 13.0))          # +30 %
    assert not visible_change((1, 1), (10.0, 12.0))      # +20 %
    assert not visible_change((0, 1), (np.nan, 10.0))    # silent before
    assert not visible_change((2, 2), (np.nan, 1.0))


def test_change_prior_draws_the_hypothesis_prior_and_the_truncated_cost_prior():
    m = get_model("stg")
    hyps = enumerate_hypotheses(m)
    lp = hypothesis_log_prior(hyps)
    index = [[m.conductance_names.index(c) for c in h.channels] for h in hyps]
    high = np.full(m.n_conductances, 0.2)
    draws = [change_prior(lp, index, high, cost_scale(1.5), seed=s) for s in range(600)]
    assert change_prior(lp, index, high, cost_scale(1.5), seed=7)[1] == pytest.approx(draws[7][1])
    sizes = np.array([hyps[h].size for h, _ in draws])
    assert [np.mean(sizes == s) for s in (1, 2, 3)] == pytest.approx([1 / 3] * 3, abs=0.07)
    theta = np.concatenate([t for _, t in draws])
    assert theta.max() <= 0.2 and theta.min() < -0.5            # truncated above only
    assert np.median(np.abs(theta[theta < 0])) == pytest.approx(np.log(2) * cost_scale(1.5), rel=0.2)


def test_cost_rule_recovers_a_planted_pair_change_exactly_on_a_noise_free_target():
    m = get_model("stg")
    cell = generate_population(m, 4.0, 5.0, 1, seed=3).conductances[0]
    after = cell.copy()
    planted = {"g_CaS": 0.5, "g_A": -0.4}
    for c, v in planted.items():
        after[m.conductance_names.index(c)] *= np.exp(v)
    r = rank_by_cost_population(cell[None], compute_dics(m, after[None])[0, 1:], "stg")
    t = [h.channels for h in r.hypotheses].index(("g_CaS", "g_A"))
    assert r.median_change(t) == pytest.approx(planted, abs=1e-9)
    assert r.cost[t] == pytest.approx(0.9, abs=1e-9) and r.fraction[t] == 1.0
    assert r.order()[0] == t
    # its supersets carry the same change (the extra channel untouched) and rank after the distinct hypotheses
    supersets = [i for i, h in enumerate(r.hypotheses) if h.size == 3 and {"g_CaS", "g_A"} <= set(h.channels)]
    assert np.all(np.isclose(r.cost[supersets], 0.9, atol=1e-6))
    small = [i for i, h in enumerate(r.hypotheses) if h.size <= 2]
    assert r.rank()[supersets].min() > r.rank()[small].max()


def test_order_by_cost_puts_redundant_supersets_after_distinct_hypotheses():
    subsets = [("A",), ("A", "B"), ("B",), ("A", "B", "C")]
    order = order_by_cost([np.inf, 0.5, 0.7, 0.5], [0.2, 1.0, 1.0, 1.0], subsets)
    assert order.tolist() == [1, 2, 0, 3]


def test_cost_rule_refuses_bad_settings():
    cell = generate_population("stg", 4.0, 5.0, 1, seed=3).conductances
    with pytest.raises(DicsbiError, match="cost must be one of"):
        rank_by_cost_population(cell, (0.0, 5.0), "stg", cost="l3")
    with pytest.raises(DicsbiError, match="tolerance must be a positive"):
        rank_by_cost_population(cell, (0.0, 5.0), "stg", tolerance=0.0)


def test_oracle_comparison_from_the_true_cells_puts_a_planted_pair_on_top():
    """A one-member population (the true before cell) and a narrow likelihood at the true after DICs: the
    comparison with both oracles names a clearly planted (CaS, A) change among its top three."""
    m = get_model("stg")
    cell = generate_population(m, 4.0, 5.0, 1, seed=3).conductances[0]
    after = cell.copy()
    after[m.conductance_names.index("g_CaS")] *= np.exp(0.5)
    after[m.conductance_names.index("g_A")] *= np.exp(-0.4)
    d = compute_dics(m, after[None])[0, 1:]
    res = compare_population(cell[None], GaussianLikelihood(d, 0.2**2 * np.eye(2)), "stg", seed=1,
                             options=ComparisonOptions(n_pilot=32, n_particles=128))
    labels = [res.hypotheses[i].label for i in res.order()[:3]]
    assert "CaS+A" in labels
    assert np.isfinite(res.log_evidence).all() and res.probability.sum() == pytest.approx(1.0)


def test_benchmark_metrics_on_hand_made_rows():
    labels = ["A", "B", "A+B"]
    rows = [{"truth_index": 0, "methods": {"x": {"p": [0.7, 0.2, 0.1]}}},      # right, confident
            {"truth_index": 1, "methods": {"x": {"p": [0.6, 0.3, 0.1]}}},      # wrong, confident, rank 2
            {"truth_index": 2, "methods": {"x": {"p": [0.5, 0.1, 0.4]}}},      # wrong, rank 2
            {"truth_index": 1, "methods": {"x": {"failed": "no before-population"}}}]
    s = scoring.score_rows("toy", rows, labels, "x")
    assert s["rank"].tolist() == [1, 2, 2, 3] and s["top1"].tolist() == [1, 0, 0, 0]
    assert s["p_top"][3] == pytest.approx(1 / 3) and s["auc"][3] == 0.5     # a refusal says nothing
    out = scoring.summary({k: v[:3] for k, v in s.items()})
    assert out["brier"] == pytest.approx(np.mean([0.3**2, 0.6**2, 0.5**2]))
    assert out["confident_share"] == pytest.approx(1.0) and out["confident_right"] == pytest.approx(1 / 3)
    assert scoring.ece(np.array([0.2, 0.8]), np.array([0.0, 1.0]), 2) == pytest.approx(0.2)
    assert s["auc"][0] == 1.0   # row 0: A (0.8) above B (0.3)
    assert frozenset({"CaS", "H"}) in scoring.swaps("stg", frozenset({"CaT", "H"}))
    cost_rows = [{"truth_index": 1, "methods": {"c": {"cost": [None, 0.5, 0.5], "fraction": [0.1, 1.0, 1.0]}}}]
    c = scoring.score_rows("toy", cost_rows, labels, "c")
    assert c["rank"].tolist() == [1] and np.isnan(c["p_top"][0])   # A+B is B's change with A untouched
    d, lo, hi = scoring.paired_difference(np.ones(50), np.zeros(50), scoring.bootstrap_index(50))
    assert d == lo == hi == 1.0
