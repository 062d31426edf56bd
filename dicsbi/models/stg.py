"""Stomatogastric (STG) neuron after Liu et al. (1998), without activity-dependent regulation.

Equations and constants follow ``paper-and-models.md`` section 1.1 (the published Spike2Pop / data-set
generator code): fixed reversal potentials (E_Ca = +80 mV, no Nernst), C = 1 uF/cm^2, no applied current,
calcium pool ``20 dCa/dt = -0.94 (I_CaT + I_CaS) - Ca + 0.05``.  13 states:
V, m_Na, h_Na, m_Kd, m_CaT, h_CaT, m_CaS, h_CaS, m_KCa, m_A, h_A, m_H, Ca.
"""

from __future__ import annotations

import numpy as np

from .base import CalciumPool, Channel, Gate, Model, SeedSpec, boltzmann


def _sig(V, half, slope):
    return boltzmann(V, half, slope)


def _tau_m_cas(V):
    return 1.4 + 7.0 / (np.exp((V + 27.0) / 10.0) + np.exp((V + 70.0) / -13.0))


def _tau_h_cas(V):
    return 60.0 + 150.0 / (np.exp((V + 55.0) / 9.0) + np.exp((V + 65.0) / -16.0))


def _tau_h_na(V):
    return (0.67 * _sig(V, 62.9, -10.0)) * (1.5 + _sig(V, 34.9, 3.6))


GATES = (
    Gate("m_Na", lambda V: _sig(V, 25.5, -5.29), lambda V: 1.32 - 1.26 * _sig(V, 120.0, -25.0)),
    Gate("h_Na", lambda V: _sig(V, 48.9, 5.18), _tau_h_na),
    Gate("m_Kd", lambda V: _sig(V, 12.3, -11.8), lambda V: 7.2 - 6.4 * _sig(V, 28.3, -19.2)),
    Gate("m_CaT", lambda V: _sig(V, 27.1, -7.2), lambda V: 21.7 - 21.3 * _sig(V, 68.1, -20.5)),
    Gate("h_CaT", lambda V: _sig(V, 32.1, 5.5), lambda V: 105.0 - 89.8 * _sig(V, 55.0, -16.9)),
    Gate("m_CaS", lambda V: _sig(V, 33.0, -8.1), _tau_m_cas),
    Gate("h_CaS", lambda V: _sig(V, 60.0, 6.2), _tau_h_cas),
    Gate("m_KCa", lambda V: _sig(V, 28.3, -12.6), lambda V: 90.3 - 75.1 * _sig(V, 46.0, -22.7),
         calcium_dependent=True),
    Gate("m_A", lambda V: _sig(V, 27.2, -8.7), lambda V: 11.6 - 10.4 * _sig(V, 32.9, -15.2)),
    Gate("h_A", lambda V: _sig(V, 56.9, 4.9), lambda V: 38.6 - 29.2 * _sig(V, 38.9, -26.5)),
    Gate("m_H", lambda V: _sig(V, 70.0, 6.0), lambda V: 272.0 + 1499.0 * _sig(V, 42.2, -8.73)),
)

E_NA, E_K, E_H, E_LEAK, E_CA = 50.0, -80.0, -20.0, -50.0, 80.0

CHANNELS = (
    Channel("Na", E_NA, (("m_Na", 3), ("h_Na", 1))),
    Channel("Kd", E_K, (("m_Kd", 4),)),
    Channel("CaT", E_CA, (("m_CaT", 3), ("h_CaT", 1)), carries_calcium=True),
    Channel("CaS", E_CA, (("m_CaS", 3), ("h_CaS", 1)), carries_calcium=True),
    Channel("KCa", E_K, (("m_KCa", 4),)),
    Channel("A", E_K, (("m_A", 3), ("h_A", 1))),
    Channel("H", E_H, (("m_H", 1),)),
    Channel("leak", E_LEAK),
)

STG = Model(
    name="stg",
    description="Stomatogastric neuron (Liu et al. 1998; fixed reversal potentials)",
    channels=CHANNELS,
    gates=GATES,
    calcium=CalciumPool(tau_ms=20.0, alpha=0.94, beta=0.05, initial_uM=0.5, half_activation_uM=3.0),
    bounds={
        "g_Na": (0.0, 8000.0), "g_Kd": (0.0, 350.0), "g_CaT": (0.0, 12.0), "g_CaS": (0.0, 50.0),
        "g_KCa": (0.0, 250.0), "g_A": (0.0, 600.0), "g_H": (0.0, 0.7), "g_leak": (0.0, 0.02),
    },
    vth_mV=-51.0,
    v0_mV=-70.0,
    default_dt_ms=0.01,
    fast_dt_ms=0.05,
    default_duration_ms=3000.0,
    default_transient_ms=3000.0,
    noise_dt_ms=0.1,
    dic_box=((-20.0, 20.0), (0.0, 20.0)),
    dic_reference_taus=("m_Na", "m_Kd", "m_H"),
    # Published seed (Spike2Pop): Kd U[70, 140], KCa U[140, 180], CaT U[3, 7], CaS U[6, 22]; Fyon's variant swaps
    # the Kd and KCa ranges.  Both spike tonically (reference section 9); we keep the published pipeline's.
    seed_spec=SeedSpec(
        uniform={"g_Kd": (70.0, 140.0), "g_CaT": (3.0, 7.0), "g_CaS": (6.0, 22.0), "g_KCa": (140.0, 180.0)},
        fixed={},
        leak_range=(0.007, 0.014),
        solve_for=("g_Na", "g_A", "g_H"),
        dic_targets=(-6.2, 4.0, 5.0),
        candidate_pairs_from=("g_Na", "g_Kd", "g_CaT", "g_CaS", "g_KCa", "g_A", "g_H"),
        published_pair=lambda gs, gu: ("g_CaS", "g_A") if gu < 0 else (("g_A", "g_H") if gs >= 0 else ("g_CaS", "g_H")),
    ),
)
