"""The numba simulator: against scipy, spike-detection rule, noise, errors and divergence."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from dicsbi.errors import ConductanceError, DicsbiError, ModelError
from dicsbi.models import DA, STG
from dicsbi.reference import compare_trains, run_references
from dicsbi.simulate import simulate
from dicsbi.spikes import firing_class

sim = importlib.import_module("dicsbi.simulate")  # the module: the package attribute is the function
SETS = json.loads((Path(__file__).parent / "data" / "simulator_sets.json").read_text())


@pytest.mark.parametrize("model", [STG, DA], ids=["stg", "da"])
def test_matches_tight_scipy_reference(model):
    """20 balanced sets per model (from experiments/validate_simulator.py): LSODA rtol = atol = 1e-8.

    The sets are well-conditioned by criteria that never look at the kernel: non-marginal, LSODA 1e-8 and
    1e-10 agree, and the reference train stays within these tolerances when every conductance moves by
    +-0.1% (:func:`dicsbi.reference.parameter_sensitive`)."""
    g = np.array(SETS["sets"][model.name])
    assert len(g) >= 20
    duration, transient = SETS["duration_ms"], SETS["transient_ms"]
    refs = run_references(model, g, duration, transient, workers=2)
    res = simulate(model, g, duration, None, transient)
    cmp = compare_trains(res.trains, refs)
    assert not cmp["marginal"].any()
    classes = set(cmp["class_reference"].tolist())
    assert classes >= {0, 1} and (model is DA or 2 in classes)  # silent, tonic and (STG) bursting covered
    np.testing.assert_array_equal(cmp["class_kernel"], cmp["class_reference"])
    assert cmp["count_ok"].all(), (cmp["count_kernel"], cmp["count_reference"])
    err = cmp["isi_relerr"][np.isfinite(cmp["isi_relerr"])]
    assert err.size >= 8 and err.max() < 0.01, err


def test_spikes_follow_the_published_detection_rule():
    """Spikes from the kernel equal those found on the recorded trace by the published rule."""
    g = np.array(SETS["sets"]["stg"])
    res = simulate(STG, g, 600.0, None, 300.0, record_voltage=np.arange(len(g)))
    dt = res.settings["dt_ms"]
    assert res.voltage_mV.shape == (len(g), round(600.0 / dt))
    n_checked = 0
    for k, v in enumerate(res.voltage_mV):  # v[m] is V at t = (m + 1) dt
        up = np.flatnonzero((v[:-1] <= 10) & (v[1:] > 10)) + 1
        down = np.flatnonzero((v[:-1] >= 0) & (v[1:] < 0)) + 1
        expected = (up[up < down[-1]] + 1) * dt if down.size else np.empty(0)
        got = res.trains[k]
        got = got[got > 1.5 * dt]  # a crossing on the very first sample needs V before the window
        np.testing.assert_allclose(got, expected, atol=1e-9)
        n_checked += got.size
    assert n_checked > 50


def test_da_cell_crossing_the_sodium_tau_pole():
    """A spiking DA cell sweeps through V = -38.727 mV, where the published tau_m,Na has a pole."""
    g = np.array(SETS["sets"]["da"])
    cls = firing_class(simulate(DA, g, 2000.0, None, 500.0).trains)
    k = int(np.flatnonzero(cls == 1)[0])
    res = simulate(DA, g[k], 2000.0, None, 500.0, record_voltage=0)
    v = res.voltage_mV[0]
    assert v.min() < -38.73 < v.max() and np.all(np.isfinite(v))
    assert res.status[0] == sim.OK and res.trains.counts[0] >= 3


def test_batch_threads_and_chunks_do_not_change_results(monkeypatch):
    g = np.array(SETS["sets"]["stg"])
    a = simulate(STG, g, 500.0, None, 200.0, noise_std=5.0, seed=3, n_threads=1)
    b = simulate(STG, g, 500.0, None, 200.0, noise_std=5.0, seed=3, n_threads=2)
    monkeypatch.setattr(sim, "CHUNK_BYTES", 1)  # one neuron per chunk
    c = simulate(STG, g, 500.0, None, 200.0, noise_std=5.0, seed=3)
    for other in (b, c):
        np.testing.assert_array_equal(a.trains.times_ms, other.trains.times_ms)
        np.testing.assert_array_equal(a.trains.offsets, other.trains.offsets)
    d = simulate(STG, g, 500.0, None, 200.0, noise_std=5.0, seed=4)
    assert not np.array_equal(a.trains.times_ms, d.trains.times_ms)
    assert a.settings["seed"] == 3 and a.settings["noise_std_uA_cm2"] == 5.0


def test_noise_is_gaussian_band_limited_and_seeded():
    x = sim.noise_current(STG, 64, 2000.0, 5.0, seed=1)
    y = sim.noise_current(STG, 64, 2000.0, 5.0, seed=1)
    np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(sim.noise_current(STG, 4, 2000.0, 5.0, seed=1, first_neuron=10), x[10:14])
    assert abs(x.mean()) < 0.05
    spec = np.abs(np.fft.rfft(x, axis=1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[1], d=STG.noise_dt_ms / 1000.0)
    low, high = spec[:, freqs < 500].mean(), spec[:, freqs > 2500].mean()
    assert high < 1e-3 * low  # zero-phase 4th-order Butterworth at 1 kHz (applied twice)
    # filtfilt of unit white noise at fs = 10 kHz keeps ~ sqrt(2 * 1 kHz * 0.78 / 10 kHz) of the std
    assert 0.3 * 5.0 < x.std() < 0.7 * 5.0


def test_noise_changes_spike_times_but_not_deterministic_runs():
    g = np.array(SETS["sets"]["stg"])
    a = simulate(STG, g, 500.0, None, 200.0)
    b = simulate(STG, g, 500.0, None, 200.0)
    np.testing.assert_array_equal(a.trains.times_ms, b.trains.times_ms)
    c = simulate(STG, g, 500.0, None, 200.0, noise_std=5.0, seed=0)
    assert not np.array_equal(a.trains.times_ms, c.trains.times_ms)


def test_divergence_is_flagged_and_nan_free():
    g = np.zeros((2, STG.n_conductances))
    g[:, -1] = 1e-6  # almost no conductance: a huge current drives V beyond any physical range
    res = simulate(STG, g, 200.0, None, 0.0, noise_std=1e7, seed=0)
    assert res.diverged.all()
    assert res.trains.counts.sum() == 0 and np.all(np.isfinite(res.trains.times_ms))


def test_bad_arguments_raise_dicsbi_errors():
    with pytest.raises(ConductanceError, match="is negative"):
        simulate(STG, -np.ones(8), 10.0)
    with pytest.raises(ConductanceError, match="is not finite"):
        simulate(STG, np.full(8, np.nan), 10.0)
    with pytest.raises(ConductanceError, match="needs 8 conductances"):
        simulate(STG, np.ones(7), 10.0)
    with pytest.raises(ModelError, match="unknown model"):
        simulate("purkinje", np.ones(8), 10.0)
    with pytest.raises(DicsbiError, match="duration_ms > 0"):
        simulate(STG, np.ones(8), -5.0)
    with pytest.raises(DicsbiError, match="too coarse"):
        simulate(STG, np.ones(8), 10.0, dt_ms=0.5)
    with pytest.raises(DicsbiError, match="noise_std"):
        simulate(STG, np.ones(8), 10.0, noise_std=-1.0)
    with pytest.raises(DicsbiError, match="record_voltage"):
        simulate(STG, np.ones(8), 10.0, record_voltage=3)


def test_result_layout():
    g = np.array(SETS["sets"]["stg"][:3])
    res = simulate(STG, g, 300.0, None, 100.0, ids=["a", "b", "c"])
    assert list(res.trains.ids) == ["a", "b", "c"]
    assert np.all(res.trains.t_start_ms == 0.0) and np.allclose(res.trains.t_stop_ms, 300.0)
    assert res.voltage_mV is None and res.status.dtype == np.int8
    for t in res.trains:
        assert np.all(np.diff(t) > 0) and (t.size == 0 or (t[0] > 0 and t[-1] <= 300.0))
