"""Model definitions against equations written out by hand from paper-and-models.md section 1."""

import numpy as np
import pytest

from dicsbi.errors import ConductanceError, ModelError
from dicsbi.models import DA, STG, get_model
from dicsbi.models.da import erg_rates, tau_m_na


def sig(V, half, slope):
    return 1.0 / (1.0 + np.exp((V + half) / slope))


def stg_rhs_by_hand(y, g):
    """STG equations typed directly from the reference table (independent of the Gate machinery)."""
    V, mNa, hNa, mKd, mCaT, hCaT, mCaS, hCaS, mKCa, mA, hA, mH, Ca = y
    gNa, gKd, gCaT, gCaS, gKCa, gA, gH, gl = g
    I_CaT = gCaT * mCaT**3 * hCaT * (V - 80)
    I_CaS = gCaS * mCaS**3 * hCaS * (V - 80)
    I = (gNa * mNa**3 * hNa * (V - 50) + gKd * mKd**4 * (V + 80) + I_CaT + I_CaS
         + gKCa * mKCa**4 * (V + 80) + gA * mA**3 * hA * (V + 80) + gH * mH * (V + 20) + gl * (V + 50))
    inf_tau = [
        (sig(V, 25.5, -5.29), 1.32 - 1.26 / (1 + np.exp((V + 120) / -25))),
        (sig(V, 48.9, 5.18), 0.67 / (1 + np.exp((V + 62.9) / -10)) * (1.5 + 1 / (1 + np.exp((V + 34.9) / 3.6)))),
        (sig(V, 12.3, -11.8), 7.2 - 6.4 / (1 + np.exp((V + 28.3) / -19.2))),
        (sig(V, 27.1, -7.2), 21.7 - 21.3 / (1 + np.exp((V + 68.1) / -20.5))),
        (sig(V, 32.1, 5.5), 105 - 89.8 / (1 + np.exp((V + 55) / -16.9))),
        (sig(V, 33, -8.1), 1.4 + 7 / (np.exp((V + 27) / 10) + np.exp((V + 70) / -13))),
        (sig(V, 60, 6.2), 60 + 150 / (np.exp((V + 55) / 9) + np.exp((V + 65) / -16))),
        (Ca / (Ca + 3) * sig(V, 28.3, -12.6), 90.3 - 75.1 / (1 + np.exp((V + 46) / -22.7))),
        (sig(V, 27.2, -8.7), 11.6 - 10.4 / (1 + np.exp((V + 32.9) / -15.2))),
        (sig(V, 56.9, 4.9), 38.6 - 29.2 / (1 + np.exp((V + 38.9) / -26.5))),
        (sig(V, 70, 6), 272 + 1499 / (1 + np.exp((V + 42.2) / -8.73))),
    ]
    gates = [mNa, hNa, mKd, mCaT, hCaT, mCaS, hCaS, mKCa, mA, hA, mH]
    dgates = [(inf - x) / tau for (inf, tau), x in zip(inf_tau, gates)]
    dCa = (-0.94 * (I_CaT + I_CaS) - Ca + 0.05) / 20
    return np.array([-I, *dgates, dCa])


def da_rhs_by_hand(y, g):
    V, mNa, hNa, nKd, mCaL, mCaN, o, i = y
    gNa, gKd, gCaL, gCaN, gERG, gNMDA, gl = g
    I = (gNa * mNa**3 * hNa * (V - 60) + gKd * nKd**3 * (V + 85) + gCaL * mCaL**2 * (V - 60)
         + gCaN * mCaN * (V - 60) + gERG * o * (V + 85) + gNMDA * V / (1 + 1.4 * np.exp(-0.08 * V) / 10)
         + gl * (V + 50))
    a = -(15.6504 + 0.4043 * V) / (np.exp(-19.565 - 0.5052 * V) - 1)
    tau_m = 0.01 + 1 / abs(a + 3.0212 * np.exp(-0.007463 * V))
    tau_h = 0.4 + 1 / (5.0754e-4 * np.exp(-0.063213 * V) + 9.7529 * np.exp(0.13442 * V))
    a0, b0 = 0.0036 * np.exp(0.0759 * V), 1.2523e-5 * np.exp(-0.0671 * V)
    ai, bi = 0.1 * np.exp(0.1189 * V), 0.003 * np.exp(-0.0733 * V)
    return np.array([
        -I,
        (sig(V, 30.0907, -9.7264) - mNa) / tau_m,
        (sig(V, 54.0289, 10.7665) - hNa) / tau_h,
        (sig(V, 25, -12) - nKd) / (20 - 18 / (1 + np.exp((V + 38) / -10))),
        (sig(V, 50, -2) - mCaL) / (30 - 28 / (1 + np.exp((V + 45) / -3))),
        (sig(V, 30, -7) - mCaN) / (30 - 25 / (1 + np.exp((V + 55) / -6))),
        a0 * (1 - o - i) + bi * i - o * (ai + b0),
        ai * o - bi * i,
    ])


@pytest.mark.parametrize("model,by_hand", [(STG, stg_rhs_by_hand), (DA, da_rhs_by_hand)])
def test_rhs_matches_equations_typed_by_hand(model, by_hand, rng):
    for _ in range(50):
        y = rng.uniform(0.0, 1.0, model.n_states)
        y[0] = rng.uniform(-90, 40)
        if model is STG:
            y[-1] = rng.uniform(0.05, 5.0)
        g = rng.uniform(model.lower_bounds, model.upper_bounds)
        np.testing.assert_allclose(model.rhs(0.0, y, g), by_hand(y, g), rtol=1e-10, atol=1e-12)


def test_shapes_names_and_constants():
    assert STG.n_states == 13 and DA.n_states == 8
    assert STG.conductance_names == ("g_Na", "g_Kd", "g_CaT", "g_CaS", "g_KCa", "g_A", "g_H", "g_leak")
    assert DA.conductance_names == ("g_Na", "g_Kd", "g_CaL", "g_CaN", "g_ERG", "g_NMDA", "g_leak")
    assert STG.vth_mV == -51.0 and DA.vth_mV == -55.5
    assert STG.units["conductance"] == "mS/cm^2"
    assert STG.bounds["g_Na"] == (0.0, 8000.0) and DA.bounds["g_CaN"] == (0.0, 12.0)


def test_initial_states():
    y = STG.initial_state()
    assert y[0] == -70.0 and y[-1] == 0.5
    assert y[1] == pytest.approx(sig(-70.0, 25.5, -5.29))
    assert y[8] == pytest.approx(0.5 / 3.5 * sig(-70.0, 28.3, -12.6))  # KCa with Ca0
    y = DA.initial_state()
    assert y[0] == -90.0
    assert y[6] == pytest.approx(0.0036 * np.exp(0.0759 * -90.0)) and y[7] == 0.0  # o = a0(V0), i = 0


@pytest.mark.parametrize("model", [STG, DA])
def test_steady_state_zeroes_gate_derivatives(model, rng):
    for V in rng.uniform(-90, 30, 10):
        ca = 0.7
        y = np.concatenate([[V], model.steady_state(np.array(V), ca=ca)] + ([[ca]] if model.calcium else []))
        dy = model.rhs(0.0, y, np.zeros(model.n_conductances))
        np.testing.assert_allclose(dy[1 : 1 + len(model.gates)], 0.0, atol=1e-12)


def test_erg_steady_state_is_published_closed_form():
    V = np.linspace(-90, 20, 23)
    a0, b0, ai, bi = erg_rates(V)
    o_inf = a0 * bi / (a0 * (ai + bi) + b0 * bi)
    np.testing.assert_allclose(DA.steady_state(V)[:, DA.gate_index("o_ERG")], o_inf, rtol=1e-12)


def test_da_sodium_tau_positive_through_the_pole():
    V = np.linspace(-38.8, -38.6, 200001)  # 1 uV grid through the cancellation at -38.727 mV
    tau = tau_m_na(V)
    assert np.all(np.isfinite(tau)) and np.all(tau > 0.01)
    away = np.abs(V + 38.7255) > 0.01
    a = -(15.6504 + 0.4043 * V) / (np.exp(-19.565 - 0.5052 * V) - 1)
    np.testing.assert_allclose(tau[away], (0.01 + 1 / (a + 3.0212 * np.exp(-0.007463 * V)))[away])


def test_get_model_and_conductance_checks():
    assert get_model("STG") is STG and get_model(DA) is DA
    with pytest.raises(ModelError, match="unknown model 'hh'"):
        get_model("hh")
    g = np.ones(8)
    assert STG.check_conductances(g).shape == (1, 8)
    with pytest.raises(ConductanceError, match="needs 8 conductances"):
        STG.check_conductances(np.ones((2, 7)))
    bad = np.ones((3, 8))
    bad[2, 4] = -1.0
    with pytest.raises(ConductanceError, match="row 2, g_KCa = -1.0 is negative"):
        STG.check_conductances(bad)
    bad[2, 4] = np.nan
    with pytest.raises(ConductanceError, match="row 2, g_KCa = nan is not finite"):
        STG.check_conductances(bad)
