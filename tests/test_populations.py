"""The pipeline: posterior samples -> one compensated model each; predictive check."""

import numpy as np
import pytest

from dicsbi.compensation import plausible_upper_bounds
from dicsbi.dics import compute_dics
from dicsbi.errors import DicsbiError
from dicsbi.models import STG
from dicsbi.populations import infer
from dicsbi.spikes import SpikeTrains


@pytest.fixture(scope="module")
def recordings(tiny_set):
    from dicsbi.datasets import load_dataset

    d = load_dataset(tiny_set)
    cls = d.firing_class
    pick = [int(np.flatnonzero(cls == 1)[0]), int(np.flatnonzero(cls == 2)[0])]
    trains = d.trains.select(pick)
    silent = SpikeTrains.from_list([[5.0, 900.0]], 0.0, 1000.0, ids=["quiet"])
    both = SpikeTrains.from_list([*trains.to_list(), silent[0]], 0.0, 1000.0, ids=["tonic", "burst", "quiet"])
    return both


def test_every_model_hits_the_posterior_sample_it_came_from(tiny_posteriors, recordings):
    post, _ = tiny_posteriors["summary"]
    res = infer(recordings, "stg", n_models=200, posterior=post, seed=3)
    assert [r.id for r in res.recordings] == ["tonic", "burst"] and res.silent == ["quiet"]
    ub = plausible_upper_bounds(STG)
    for rec in res.recordings:
        assert rec.conductances.shape == (200, STG.n_conductances)
        # recomputed independently of the solver's own DICs
        np.testing.assert_allclose(compute_dics(STG, rec.conductances)[:, 1:], rec.samples, atol=1e-5)
        np.testing.assert_allclose(rec.dics, compute_dics(STG, rec.conductances), atol=1e-9)
        assert (rec.conductances > 0).all() and (rec.conductances <= ub).all()
        assert np.unique(rec.sample_index).size == 200  # one model per posterior sample
        assert rec.samples.std(0).min() > 0  # the posterior's spread reaches the population
    again = infer(recordings, "stg", n_models=200, posterior=post, seed=3)
    for a, b in zip(res.recordings, again.recordings):
        np.testing.assert_array_equal(a.conductances, b.conductances)


def test_predictive_check_reports_fractions(tiny_posteriors, recordings):
    post, _ = tiny_posteriors["summary"]
    res = infer(recordings.select([1]), "stg", n_models=20, posterior=post, seed=0, check=6)
    c = res.recordings[0].check
    assert c["n"] == 6 and 0 <= c["class_match"] <= 1 and 0 <= c["reproduce"] <= c["class_match"]
    assert c["frequency_key"] == "f_inter_hz" and np.isfinite(c["vr_median"]) and c["diverged"] == 0


def test_wrong_model_is_refused(tiny_posteriors, recordings):
    post, _ = tiny_posteriors["summary"]
    with pytest.raises(DicsbiError, match="posterior is for model 'stg', not 'da'"):
        infer(recordings, "da", posterior=post)


def test_inference_data_round_trips_through_netcdf(tiny_posteriors, recordings, tmp_path):
    from dicsbi.arviz_io import from_netcdf, inference_data, to_netcdf

    post, _ = tiny_posteriors["summary"]
    res = infer(recordings, "stg", n_models=25, posterior=post, seed=2)
    idata = inference_data(res, recordings)
    to_netcdf(idata, tmp_path / "posterior.nc")
    back = from_netcdf(tmp_path / "posterior.nc")
    assert dict(back.posterior.sizes) == {"chain": 1, "draw": 25, "recording": 2}
    assert list(back.posterior.recording.values) == ["tonic", "burst"]  # the silent one has no posterior
    np.testing.assert_array_equal(back.posterior.g_s.values[0, :, 1], res.recordings[1].samples[:, 0])
    g = back.posterior_predictive.conductance
    assert g.dims == ("chain", "draw", "recording", "channel") and list(g.channel.values) == list(STG.conductance_names)
    np.testing.assert_array_equal(g.values[0, :, 0], res.recordings[0].conductances)
    assert back.observed_data.n_spikes.values.tolist() == recordings.counts[:2].tolist()
    assert back.posterior.attrs["model"] == "stg" and back.posterior.attrs["seed"] == 2
