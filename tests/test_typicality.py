"""The out-of-world flag of the shipped posteriors (dicsbi.posterior.typicality)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import read_csv

from dicsbi.compensation import generate_population
from dicsbi.errors import DicsbiError
from dicsbi.posterior.artifact import load_posterior
from dicsbi.posterior.typicality import FEATURE_NAMES, ORDER_NAMES, Typicality, typicality_features
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains


@pytest.fixture(scope="module")
def stg():
    return load_posterior("stg")


def _poisson(seed, rate_hz=13.0, dead_ms=2.0, window_ms=3000.0):
    """A Poisson train with a dead time (every interval above the 1 ms input floor)."""
    isi = dead_ms + np.random.default_rng(seed).exponential(1000.0 / rate_hz - dead_ms, 200)
    t = np.cumsum(isi)
    return t[t < window_ms]


def _cells(model, targets, seed):
    return np.vstack([generate_population(model, gs, gu, 1, seed=seed + k).conductances for k, (gs, gu) in
                      enumerate(targets)])


def test_shipped_posteriors_carry_a_typicality_fitted_for_a_one_to_two_percent_flag_rate(stg):
    for post in (stg, load_posterior("da")):
        t = post.typicality
        assert t is not None and 0.98 <= t.quantile <= 0.99
        op = t.info.get("operating_point")   # chosen on validation trains from training data (Typicality.calibrate)
        assert op is None or (t.quantile == pytest.approx(1.0 - op["rate"]) and 0 <= op["density_share"] <= 1)
        assert t.features.shape == (t.info["n_reference"], len(FEATURE_NAMES)) and t.info["n_calibration"] >= 1000
        assert t.rivals == ({"stg": "da", "da": "stg"}[post.config.model],) and np.isfinite(t.rival_threshold)


def test_trains_of_the_other_model_are_flagged_and_in_world_trains_are_not(stg):
    own = simulate("stg", _cells("stg", [(4.0, 5.0), (-6.0, 5.0), (8.0, 8.0), (-2.0, 6.0)], 11), seed=1,
                   tier="fast").trains
    score, flagged = stg.typicality.flag(own)
    assert not flagged.any(), score
    da = simulate("da", _cells("da", [(-3.0, 5.0), (-1.5, 5.0), (1.0, 6.0)], 3), seed=2, tier="fast").trains
    da = da.select(np.flatnonzero(da.counts >= 3))
    s_da, f_da = stg.typicality.flag(da)
    assert f_da.all() and s_da.min() > score.max()
    assert (stg.typicality.like_model(own) == "").all()
    poisson = SpikeTrains.from_list([_poisson(k) for k in range(5)], 0.0, 3000.0)
    assert stg.typicality.flag(poisson)[1].all()


def test_infer_marks_out_of_world_recordings_in_summary_and_netcdf(stg, tmp_path):

    from dicsbi.io.netcdf import from_netcdf
    from dicsbi.pipeline import run_to_folder

    own = simulate("stg", _cells("stg", [(4.0, 5.0)], 11), seed=1, tier="fast").trains
    poisson = _poisson(0)
    trains = SpikeTrains.from_list([own[0], poisson], 0.0, 3000.0, ids=["cell", "poisson"])
    n_rec, _, flagged = run_to_folder(trains, tmp_path, "stg", 10, stg, seed=0)
    assert n_rec == 2 and flagged == ["poisson"]
    rows = {r["recording"]: r for r in read_csv(tmp_path / "summary.csv")}
    assert rows["poisson"]["out_of_world"] == "1" and rows["cell"]["out_of_world"] == "0"
    assert float(rows["poisson"]["typicality"]) > stg.typicality.threshold > float(rows["cell"]["typicality"])
    obs = from_netcdf(tmp_path / "posterior.nc").observed_data
    assert obs["out_of_world"].values.tolist() == [0, 1]
    assert "unlike the spike trains" in obs["out_of_world"].attrs["meaning"]
    assert obs["like_model"].values.tolist() == ["", ""] and rows["poisson"]["like_model"] == ""
    assert "OUT OF WORLD" in (tmp_path / "report.html").read_text()


def test_typicality_round_trips_and_refuses_damaged_files(stg, tmp_path):
    stg.typicality.save(tmp_path)
    back = Typicality.load(tmp_path)
    np.testing.assert_array_equal(back.features, stg.typicality.features)
    assert back.threshold == stg.typicality.threshold
    own = simulate("stg", _cells("stg", [(4.0, 5.0), (-6.0, 5.0)], 11), seed=1, tier="fast").trains
    np.testing.assert_array_equal(back.score(own), stg.typicality.score(own))
    assert Typicality.load(tmp_path / "nothing") is None
    (tmp_path / "typicality.pt").write_bytes(b"not the weights")
    with pytest.raises(DicsbiError, match="damaged typicality"):
        Typicality.load(tmp_path)


def test_burst_order_statistics_see_a_shuffled_burster():
    t = np.concatenate([b * 500.0 + np.arange(5) * 8.0 for b in range(12)])
    isi = np.diff(t)
    shuffled = np.concatenate([[t[0]], t[0] + np.cumsum(np.random.default_rng(1).permutation(isi))])
    jittered = np.arange(40) * 70.0 + np.random.default_rng(2).normal(0, 0.05, 40)
    f = typicality_features(SpikeTrains.from_list([t, shuffled, jittered], 0.0, 6000.0))
    col = {name: f[:, k] for k, name in enumerate(FEATURE_NAMES)}
    order = np.column_stack([col[n] for n in ORDER_NAMES])
    assert order[0] == pytest.approx([0.0, 0.0, 0.0, 0.0], abs=1e-12)   # regular bursts: 5 spikes every 500 ms
    assert col["cv_spikes_per_burst"][1] > 0.3 and col["cv_burst_period"][1] > 0.0  # spikes per burst vary now
    assert col["spikes_per_burst_range"][1] > 0.5
    assert (order[2] == 0).all()   # a regular spiker's timing jitter is no burst pattern


def test_a_fitted_typicality_flags_about_one_percent_of_its_calibration_trains():
    rng = np.random.default_rng(3)
    trains = SpikeTrains.from_list([np.cumsum(rng.gamma(20.0, 5.0 / (1 + k % 7), 60)) for k in range(600)], 0.0)
    typ = Typicality.fit(trains.select(np.arange(400)), trains.select(np.arange(400, 600)), epochs=2, seed=1)
    assert (typ.score(trains.select(np.arange(400, 600))) > typ.threshold).mean() <= 0.01
    assert typ.info["n_reference"] == 400 and typ.info["epochs"] == 2
    again = Typicality.fit(trains.select(np.arange(400)), trains.select(np.arange(400, 600)), epochs=2, seed=1)
    assert again.threshold == typ.threshold   # seeded


def test_the_rival_world_classifier_flags_trains_of_another_world_at_the_joint_rate(tmp_path):
    """Two worlds that overlap: both hold regular spikers at 8-12 Hz; the rival adds bursters.  The density of the
    own world alone cannot flag a rival's regular spiker; the rival classifier can, and the union of the two
    flags keeps 1 - quantile of the calibration trains."""
    rng = np.random.default_rng(4)

    def regular(n, lo, hi):
        return [np.cumsum(rng.normal(1000.0 / rng.uniform(lo, hi), 0.5, 40)) for _ in range(n)]

    def bursts(n):
        return [np.concatenate([b * 400.0 + np.arange(4) * rng.uniform(6, 9) for b in range(10)]) for _ in range(n)]

    own = SpikeTrains.from_list(regular(900, 5.0, 12.0), 0.0)
    rival = SpikeTrains.from_list(regular(450, 10.0, 30.0) + bursts(450), 0.0)
    typ = Typicality.fit(own.select(np.arange(600)), own.select(np.arange(600, 900)), epochs=3, seed=2,
                         rivals={"other": rival})
    cal = own.select(np.arange(600, 900))
    assert typ.rivals == ("other",)
    assert 0.0 < typ.flag(cal)[1].mean() <= 0.02   # the union of the two thresholds: ~1% of calibration
    fresh_rival = SpikeTrains.from_list(regular(100, 20.0, 30.0), 0.0)   # fast regular spikers: only the rival's
    like = typ.like_model(fresh_rival)
    assert (like == "other").mean() > 0.9 and typ.flag(fresh_rival)[1].mean() > 0.9
    typ.save(tmp_path)
    back = Typicality.load(tmp_path)
    assert back.rivals == ("other",) and back.rival_threshold == typ.rival_threshold
    np.testing.assert_array_equal(back.like_model(fresh_rival), like)
    np.testing.assert_array_equal(back.rival_score(cal), typ.rival_score(cal))


def test_the_shipped_examples_are_in_world_whatever_the_solver_step(stg):
    """The examples are simulated at the exact tier (0.01 ms), the training world at the fast one (0.05 ms): the
    flag reads times on a 0.5 ms grid, so a periodic spiker's timing floor is no evidence of another world."""
    from pathlib import Path

    from dicsbi.io.readers import read_spike_trains
    from dicsbi.posterior.typicality import TIME_GRID_MS, on_grid

    root = Path(__file__).resolve().parents[1] / "examples"
    for model, post in (("stg", stg), ("da", load_posterior("da"))):
        trains, _ = read_spike_trains(root / f"{model}_recordings.csv")
        score, flagged = post.typicality.flag(trains)
        assert not flagged.any(), (model, score, post.typicality.like_model(trains))
        assert (post.typicality.like_model(trains) == "").all()
    t = SpikeTrains.from_list([[1.26, 70.1, 139.74]], 0.0, 200.0)
    np.testing.assert_allclose(on_grid(t).times_ms, [1.5, 70.0, 139.5])
    assert TIME_GRID_MS == 0.5


def test_split_thresholds_spend_the_in_world_budget_between_the_two_scores():
    from dicsbi.posterior.rival import split_thresholds

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=2000), rng.normal(size=2000)
    for rate in (0.01, 0.02):
        budget = int(np.floor(rate * a.size))
        for share in (0.0, 0.3, 0.5, 1.0):
            ta, tb = split_thresholds(a, b, rate, share)
            assert ((a > ta) | (b > tb)).sum() == budget
            assert (a > ta).sum() == int(np.floor(share * budget))
    assert split_thresholds(a, b, 0.01, 0.0)[0] == np.inf and split_thresholds(a, b, 0.01, 1.0)[1] == np.inf


def test_the_operating_point_gives_the_budget_to_the_score_that_sees_each_kind():
    """Kind "far" is seen by the density only, kind "rival" by the classifier only: each alone gets the whole
    budget; both together share it; a rate is raised only until every kind reaches the floor."""
    from dicsbi.posterior.rival import operating_point

    rng = np.random.default_rng(6)
    a, b = rng.normal(size=4000), rng.normal(size=4000)
    far = (rng.normal(size=1000) + 3.0, rng.normal(size=1000))
    rival = (rng.normal(size=1000), rng.normal(size=1000) + 3.0)
    assert operating_point(a, b, {"far": far})["share"] == 1.0
    assert operating_point(a, b, {"rival": rival})["share"] == 0.0
    both = operating_point(a, b, {"far": far, "rival": rival}, floor=0.5, z=0.0)
    assert 0.0 < both["share"] < 1.0 and both["rate"] == 0.01 and min(both["flagged"].values()) >= 0.5
    strict = operating_point(a, b, {"far": far, "rival": rival}, floor=0.68, z=0.0)
    assert strict["rate"] > 0.01 and strict["worst"] == min(strict["flagged"].values()) >= 0.68
    assured = operating_point(a, b, {"far": far, "rival": rival}, floor=0.68)  # the 95 % lower bound must clear it
    assert assured["rate"] > strict["rate"] and assured["worst"] < min(assured["flagged"].values())
    assert ((a > strict["ta"]) | (b > strict["tb"])).mean() == pytest.approx(strict["rate"], abs=1e-3)
    hopeless = operating_point(a, b, {"far": far, "rival": rival}, floor=0.999, z=0.0)   # no rate reaches it: the best
    assert hopeless["rate"] == 0.02


def test_calibrate_with_validation_trains_records_its_operating_point(tmp_path):
    rng = np.random.default_rng(7)

    def regular(n, lo, hi):
        return [np.cumsum(rng.normal(1000.0 / rng.uniform(lo, hi), 0.5, 40)) for _ in range(n)]

    own = SpikeTrains.from_list(regular(900, 5.0, 12.0), 0.0)
    rival = SpikeTrains.from_list(regular(400, 10.0, 30.0), 0.0)
    typ = Typicality.fit(own.select(np.arange(600)), own.select(np.arange(600, 900)), epochs=2, seed=3,
                         rivals={"other": rival},
                         validation={"other": SpikeTrains.from_list(regular(200, 12.0, 30.0), 0.0),
                                     "poisson": SpikeTrains.from_list([_poisson(k, 8.0) for k in range(100)], 0.0)})
    op = typ.info["operating_point"]
    assert op["rate"] in (0.01, 0.0125, 0.015, 0.0175, 0.02) and typ.quantile == pytest.approx(1 - op["rate"])
    assert set(op["validation_flagged"]) == {"other", "poisson"}
    assert op["n_validation"] == {"other": 200, "poisson": 100}
    cal = own.select(np.arange(600, 900))
    assert typ.flag(cal)[1].mean() <= op["rate"] + 1e-9
    typ.save(tmp_path)
    back = Typicality.load(tmp_path)
    assert (back.threshold, back.rival_threshold, back.quantile) == (typ.threshold, typ.rival_threshold, typ.quantile)
    assert back.info["operating_point"] == op
