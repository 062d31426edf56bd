"""DICs against finite differences of the steady-state current, weights, calcium path, V_th."""

import numpy as np
import pytest

from dicsbi.dics import (
    _calcium_weights,
    compute_dics,
    dic_curves,
    find_vth,
    gate_weights,
    sensitivity_matrix,
    steady_calcium,
)
from dicsbi.errors import DicsbiError
from dicsbi.models import DA, STG


def steady_total_current(model, V, g):
    """Total ionic current with every gate (and calcium) at steady state, via Model.currents."""
    ca = steady_calcium(model, V, g) if model.calcium else None
    x = model.steady_state(V, ca=ca)
    y = np.concatenate([V[None], np.moveaxis(x, -1, 0)] + ([ca[None]] if model.calcium else []))
    return model.currents(y, g.T).sum(axis=0)


@pytest.mark.parametrize("model", [STG, DA], ids=["stg", "da"])
@pytest.mark.parametrize("calcium_path", ["tau_ca", "ultraslow"])
def test_total_dic_is_derivative_of_steady_state_current(model, calcium_path, rng):
    g = rng.uniform(model.lower_bounds, model.upper_bounds, size=(200, model.n_conductances))
    g[:, -1] = rng.uniform(0.005, 0.02, 200)
    V = rng.uniform(-80, 0, 200)
    total = compute_dics(model, g, V, calcium_path=calcium_path).sum(axis=-1)
    h = 1e-4
    fd = (steady_total_current(model, V + h, g) - steady_total_current(model, V - h, g)) / (2 * h) / g[:, -1]
    scale = np.maximum(np.abs(fd), np.abs(compute_dics(model, g, V)).sum(-1) * 1e-3)
    assert np.max(np.abs(total - fd) / scale) <= 1e-5


@pytest.mark.parametrize("model,V", [(STG, -51.0), (DA, -55.5)], ids=["stg", "da"])
def test_weights_are_fractions_summing_to_one(model, V):
    w_fs, w_su = gate_weights(model, np.linspace(-80, 0, 81))
    fractions = np.stack([w_fs, w_su - w_fs, 1 - w_su])
    assert np.all(fractions >= 0) and np.all(fractions <= 1)
    np.testing.assert_allclose(fractions.sum(axis=0), 1.0)


def test_weights_match_published_worked_values():
    w_fs, w_su = gate_weights(STG, -51.0)
    frac = np.stack([w_fs, w_su - w_fs, 1 - w_su], axis=-1)
    expected = {"h_Na": (0.40, 0.60, 0), "m_CaT": (0, 0.96, 0.04), "h_CaS": (0, 0.34, 0.66),
                "m_KCa": (0, 0.52, 0.48), "m_H": (0, 0, 1), "m_Na": (1, 0, 0)}
    for name, vals in expected.items():
        np.testing.assert_allclose(frac[STG.gate_index(name)], vals, atol=0.006)
    w_fs, w_su = gate_weights(DA, -55.5)
    frac = np.stack([w_fs, w_su - w_fs, 1 - w_su], axis=-1)
    np.testing.assert_allclose(frac[DA.gate_index("h_Na")], (0, 0.46, 0.54), atol=0.006)
    np.testing.assert_allclose(frac[DA.gate_index("m_CaL")], (0, 0.70, 0.30), atol=0.006)
    np.testing.assert_allclose(frac[DA.gate_index("o_ERG")], (0, 0, 1))


def test_calcium_path_conventions_shift_slow_into_ultraslow(rng):
    g = rng.uniform(STG.lower_bounds, STG.upper_bounds, size=(50, 8))
    a = compute_dics(STG, g, calcium_path="tau_ca")
    b = compute_dics(STG, g, calcium_path="ultraslow")
    np.testing.assert_allclose(a[:, 0], b[:, 0])
    np.testing.assert_allclose(a.sum(-1), b.sum(-1))
    shift = a[:, 1] - b[:, 1]
    np.testing.assert_allclose(b[:, 2] - a[:, 2], shift)
    assert np.any(np.abs(shift) > 1e-3)
    # tau_Ca = 20 ms at -51 mV: 74 % of the calcium path is slow, 26 % ultraslow (reference worked values)
    w_fs, w_su = _calcium_weights(STG, np.array(-51.0), "tau_ca")
    np.testing.assert_allclose([w_fs, w_su - w_fs, 1 - w_su], [0, 0.74, 0.26], atol=0.006)
    # only the KCa column moves between the conventions
    S_tau = sensitivity_matrix(STG, -51.0, g[0], "tau_ca")
    S_ultra = sensitivity_matrix(STG, -51.0, g[0], "ultraslow")
    moved = np.any(~np.isclose(S_tau, S_ultra), axis=0)
    assert moved.tolist() == [name == "g_KCa" for name in STG.conductance_names]
    with pytest.raises(DicsbiError, match="calcium_path"):
        compute_dics(STG, g, calcium_path="fast")


def test_dics_are_linear_in_g_except_through_calcium(rng):
    g = rng.uniform(DA.lower_bounds, DA.upper_bounds, size=(2, 7))
    S = sensitivity_matrix(DA, -55.5, g, normalise=False)  # DA: S does not depend on g at all
    np.testing.assert_allclose(S[0], S[1])
    np.testing.assert_allclose(sensitivity_matrix(DA, -55.5, g)[0] * g[0, -1], S[0])
    g = rng.uniform(STG.lower_bounds, STG.upper_bounds, size=8)
    S1 = sensitivity_matrix(STG, -51.0, g)
    g2 = g.copy()
    g2[[0, 1, 4, 5, 6]] *= 1.7  # everything but CaT, CaS and leak
    np.testing.assert_allclose(sensitivity_matrix(STG, -51.0, g2), S1)
    g2[3] *= 1.7
    assert not np.allclose(sensitivity_matrix(STG, -51.0, g2), S1)
    leak = STG.conductance_names.index("g_leak")
    np.testing.assert_allclose(S1[:, leak] * g[leak], [1, 0, 0])


def test_curves_shape_and_default_vth(rng):
    g = rng.uniform(STG.lower_bounds, STG.upper_bounds, size=(4, 8))
    curves = dic_curves(STG, g, np.linspace(-80, 0, 11))
    assert curves.shape == (4, 11, 3)
    np.testing.assert_allclose(curves[:, 0], compute_dics(STG, g, -80.0))
    np.testing.assert_allclose(curves[:, 3], compute_dics(STG, g, -56.0))
    np.testing.assert_allclose(compute_dics(STG, g), compute_dics(STG, g, -51.0))


def test_vth_finder_matches_published_statistics(rng):
    """Random MC STG cells scaled by g_leak / 0.01: median V_th near -51 mV (reference: -50.96 mV)."""
    g = rng.uniform(STG.lower_bounds, STG.upper_bounds, size=(1000, 8))
    g[:, :-1] *= g[:, -1:] / 0.01
    vth = find_vth(STG, g)
    ok = np.isfinite(vth)
    assert 0.9 < ok.mean() < 1.0
    assert -52.0 < np.median(vth[ok]) < -50.0
    np.testing.assert_allclose(compute_dics(STG, g[ok][:50], vth[ok][:50]).sum(-1), 0.0, atol=1e-5)


def test_fast_calcium_form_matches_general_columns(rng):
    from dicsbi.dics import SensitivityOperator

    g = rng.uniform(STG.lower_bounds, STG.upper_bounds, size=(30, 8))
    for V in (-51.0, rng.uniform(-70, -30, 30)):
        fast = SensitivityOperator(STG, V)
        general = SensitivityOperator(STG, V)
        general.ca_forms = None  # force the general per-gate path
        np.testing.assert_allclose(fast(g), general(g), rtol=1e-10, atol=1e-12)
