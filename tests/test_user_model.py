"""A third model defined outside the package runs through the unchanged simulator."""

import numpy as np
from scipy.special import exprel

from dicsbi.models import Channel, Gate, Model
from dicsbi.oracle import compare_trains, run_references
from dicsbi.simulate import simulate


def _rates_to_gate(name, alpha, beta):
    return Gate(name, lambda V: alpha(V) / (alpha(V) + beta(V)), lambda V: 1.0 / (alpha(V) + beta(V)))


def _a_m(V):
    return 1.0 / exprel(-(V + 40.0) / 10.0)  # 0.1 (V+40) / (1 - exp(-(V+40)/10)), smooth at V = -40


def _a_n(V):
    return 0.1 / exprel(-(V + 55.0) / 10.0)


HH = Model(
    name="hh_test",
    description="Hodgkin-Huxley squid axon with a depolarised leak so that it fires on its own",
    channels=(
        Channel("Na", 50.0, (("m", 3), ("h", 1))),
        Channel("K", -77.0, (("n", 4),)),
        Channel("leak", -30.0),
    ),
    gates=(
        _rates_to_gate("m", _a_m, lambda V: 4.0 * np.exp(-(V + 65.0) / 18.0)),
        _rates_to_gate("h", lambda V: 0.07 * np.exp(-(V + 65.0) / 20.0),
                       lambda V: 1.0 / (1.0 + np.exp(-(V + 35.0) / 10.0))),
        _rates_to_gate("n", _a_n, lambda V: 0.125 * np.exp(-(V + 65.0) / 80.0)),
    ),
    calcium=None,
    bounds={"g_Na": (0.0, 240.0), "g_K": (0.0, 72.0), "g_leak": (0.0, 3.0)},
    vth_mV=-55.0, v0_mV=-65.0, default_dt_ms=0.01, default_duration_ms=200.0, default_transient_ms=50.0,
    noise_dt_ms=0.05,
)


def test_user_defined_model_matches_reference():
    g = np.array([[120.0, 36.0, 0.3], [120.0, 36.0, 1.0], [120.0, 36.0, 0.01]])
    res = simulate(HH, g)
    refs = run_references(HH, g, HH.default_duration_ms, HH.default_transient_ms)
    cmp = compare_trains(res.trains, refs)
    assert res.trains.counts[1] > 5 and res.trains.counts[2] == 0
    np.testing.assert_array_equal(cmp["class_kernel"], cmp["class_reference"])
    assert cmp["count_ok"].all()
    err = cmp["isi_relerr"][np.isfinite(cmp["isi_relerr"])]
    assert err.size and err.max() < 0.005
