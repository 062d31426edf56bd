"""dicsbi diagnose: the calibration checks pass a calibrated posterior and fail a shrunk one; outputs round-trip."""

import json

import numpy as np
import pytest

from dicsbi.diagnostics.runner import diagnose, write_diagnostics
from dicsbi.report.page import CSS

CALIBRATION = ("sbc", "coverage", "tarp")


class Shrunk:
    """A deliberately overconfident posterior: samples pulled towards their mean by ``factor`` (density to match)."""

    def __init__(self, post, factor):
        self.post, self.factor = post, factor
        self.model, self.vth_mV, self.config = post.model, post.vth_mV, post.config

    def sample(self, trains, n, seed=0):
        x = self.post.sample(trains, n, seed=seed)
        m = x.mean(1, keepdims=True)
        return m + self.factor * (x - m)

    def log_prob(self, theta, trains):
        m = self.post.sample(trains, 300, seed=123).mean(1)
        return self.post.log_prob(m + (theta - m) / self.factor, trains) - 2 * np.log(self.factor)


@pytest.fixture(scope="module")
def calibrated_case(tiny_posteriors, tiny_set):
    """Test pairs whose truths are drawn from the posterior itself: calibrated by construction."""
    from dicsbi.datasets.storage import load_dataset

    post = tiny_posteriors["summary"][0]
    d = load_dataset(tiny_set)
    ok = np.flatnonzero((d.status == 0) & (d.trains.counts >= 3))
    trains = d.trains.select(ok)
    return post, trains, post.sample(trains, 1, seed=5)[:, 0]


def test_calibrated_posterior_passes_and_shrunk_one_fails(calibrated_case):
    post, trains, theta = calibrated_case
    good = diagnose(post, data=(trains, theta), n_samples=300, check=0, c2st=False, progress=False)
    assert all(good.verdicts[k][0] == "pass" for k in CALIBRATION), good.verdicts
    bad = diagnose(Shrunk(post, 0.4), data=(trains, theta), n_samples=300, check=0, c2st=False, progress=False)
    assert all(bad.verdicts[k][0] == "fail" for k in CALIBRATION), bad.verdicts
    assert bad.verdict == "fail" and bad.figures.coverage_joint[0.8] < 0.5
    assert bad.figures.tarp_atc < -0.05  # overconfident: negative area to curve
    line = bad.key_line()
    assert line.startswith("sbc_ks_min=") and line.endswith("verdict=fail")


def test_outputs_and_netcdf_round_trip(calibrated_case, tmp_path):
    from dicsbi.io.netcdf import from_netcdf

    post, trains, theta = calibrated_case
    diag = diagnose(post, data=(trains, theta), n_samples=200, check=3, progress=False)
    assert 0 <= diag.figures.predictive.class_match <= 1 and "predictive" in diag.verdicts
    write_diagnostics(diag, tmp_path / "diag", post.config)
    out = tmp_path / "diag"
    assert sorted(p.name for p in out.iterdir()) == ["diagnostics.json", "diagnostics.nc", "figures", "report.html"]
    assert len(list((out / "figures").glob("*.png"))) == 5
    js = json.loads((out / "diagnostics.json").read_text())
    assert js["verdict"] == diag.verdict and set(js["verdicts"]) == set(diag.verdicts)
    idata = from_netcdf(out / "diagnostics.nc")
    assert dict(idata.posterior.sizes) == {"chain": 1, "draw": 200, "simulation": len(trains)}
    np.testing.assert_allclose(idata.posterior["g_s"].values[0].T, diag.samples[..., 0])
    np.testing.assert_allclose(idata.observed_data["g_u_true"].values, theta[:, 1])
    np.testing.assert_allclose(idata.sample_stats["rank_g_s"].values, diag.ranks[:, 0])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "verdict" in page.lower()
    assert CSS in page  # the one page template


def test_cli_diagnose_on_a_held_out_set(tiny_posteriors, tiny_set, tmp_path):
    from typer.testing import CliRunner

    from dicsbi.cli import app

    tiny_posteriors["summary"][0].save(tmp_path / "post")
    r = CliRunner().invoke(app, ["diagnose", "--posterior", str(tmp_path / "post"), "--data", str(tiny_set),
                                 "--n-sims", "100", "--n-samples", "100", "--check", "0", "--out",
                                 str(tmp_path / "d"), "--no-progress"])
    assert r.exit_code == 0, r.output
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("sbc_ks_min=") and "verdict=" in last
    assert (tmp_path / "d" / "report.html").exists()


def test_fresh_test_simulations_use_the_fast_tier_and_say_so(tiny_posteriors):
    from dicsbi.diagnostics.runner import test_set

    post, _ = tiny_posteriors["summary"]
    trains, theta, source = test_set(post, 24, seed=5, progress=False)
    assert len(trains) == len(theta) > 0 and "fast tier, dt 0.05 ms" in source
    _, _, exact = test_set(post, 6, seed=5, progress=False, tier="exact")
    assert "exact tier, dt 0.01 ms" in exact
