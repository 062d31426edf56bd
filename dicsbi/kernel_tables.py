"""The simulation kernel's lookup tables and its staggered initial state (see :mod:`dicsbi.simulate`).

Every voltage function of a model is tabulated once per (model, dt) on a :data:`TABLE_STEP_MV` grid from
:data:`TABLE_V_MIN_MV` to :data:`TABLE_V_MAX_MV` as ``E(V)`` and ``x_inf(V)(1 - E(V))``, stored as value and
slope in the column layout of :mod:`dicsbi.kernel` (:func:`kernel_tables`); coupled gate pairs get their exact
pair step (:func:`_pair_step`).  The gates start half a step ahead of V and Ca
(:func:`staggered_initial_state`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import DicsbiError
from .kernel import column_layout
from .models import Model

TABLE_V_MIN_MV = -200.0
TABLE_V_MAX_MV = 200.0
TABLE_STEP_MV = 0.02


@dataclass(frozen=True)
class KernelTables:
    """A model's tabulated voltage functions for one step, as the kernel reads them (:func:`kernel_tables`)."""

    table: np.ndarray  # (n_rows, 2 n_functions): value and slope to the next row of each tabulated function
    ca_decay: float    # exp(-dt / tau_Ca) (1 without a pool)


@lru_cache(maxsize=16)
def kernel_tables(model: Model, dt_ms: float) -> KernelTables:
    """Tabulate a model's voltage functions for step ``dt_ms`` in the column layout of :mod:`dicsbi.kernel`."""
    V = np.arange(TABLE_V_MIN_MV, TABLE_V_MAX_MV + TABLE_STEP_MV / 2, TABLE_STEP_MV)
    lay = column_layout(model)
    funcs = np.zeros((lay["n"], V.size))
    with np.errstate(over="ignore", under="ignore"):
        for k, gate in enumerate(model.gates):
            tau = np.broadcast_to(gate.tau(V), V.shape)
            if not (np.all(np.isfinite(tau)) and np.all(tau > 0)):
                raise DicsbiError(f"model {model.name!r}: tau of {gate.name} is not positive and finite "
                                  f"on [{TABLE_V_MIN_MV}, {TABLE_V_MAX_MV}] mV")
            if gate.coupled_to is not None and gate.calcium_dependent:
                raise DicsbiError(f"model {model.name!r}: gate {gate.name} cannot be both "
                                  "calcium-dependent and coupled")
            if k in lay["gate_e"]:
                decay = np.exp(-dt_ms / tau)
                funcs[lay["gate_e"][k]] = decay
                funcs[lay["gate_p"][k]] = gate.inf(V) * (1.0 - decay)
        for k, (j, first) in lay["pair"].items():
            funcs[first : first + 6] = _pair_step(model, k, j, V, dt_ms)
        for c, first in lay["vf"].items():
            funcs[first] = model.channels[c].voltage_factor(V)
    table = np.empty((V.size, 2 * lay["n"]))
    table[:, 0::2] = funcs.T
    table[:-1, 1::2] = np.diff(funcs, axis=1).T
    table[-1, 1::2] = 0.0
    pool = model.calcium
    ca_decay = 1.0 if pool is None else math.exp(-dt_ms / pool.tau_ms)
    return KernelTables(np.ascontiguousarray(table), ca_decay)


def staggered_initial_state(model: Model, dt_ms: float) -> np.ndarray:
    """Return the initial state with the gates advanced by half a step (they live on the half-step grid).

    V and Ca stay at t = 0; every gate is advanced exactly over ``[0, dt/2]`` with V0 and Ca0 fixed, in state
    order (so a Markov partner sees its already-advanced value, as in the kernel).
    """
    y = model.initial_state()
    V0 = np.array(y[0])
    ca_factor = 1.0
    if model.calcium is not None:
        ca_factor = y[-1] / (y[-1] + model.calcium.half_activation_uM)
    for k, gate in enumerate(model.gates):
        decay = math.exp(-0.5 * dt_ms / float(gate.tau(V0)))
        drive = float(gate.inf(V0)) * (ca_factor if gate.calcium_dependent else 1.0)
        if gate.coupled_to is not None:
            assert gate.coupling is not None, f"gate {gate.name!r} is coupled but has no coupling"
            drive += float(gate.coupling(V0)) * y[1 + model.gate_index(gate.coupled_to)]
        y[1 + k] = y[1 + k] * decay + drive * (1.0 - decay)
    return y


def _pair_step(model: Model, k: int, j: int, V: np.ndarray, dt_ms: float) -> np.ndarray:
    """Tabulate over ``V`` the exact step of a coupled gate pair ``z = (x_k, x_j)``: ``z <- Phi z + w``.

    With ``dz/dt = A z + b`` and V frozen, ``Phi = expm(A dt)`` and ``w = (Phi - I) A^-1 b``.  Returns six
    rows (Phi row-major, then w).  A Markov pair such as ERG's open and inactivated states is stiff during
    spikes (ai ~ 1/ms), so advancing it gate by gate is only first order; the exact pair step keeps the
    scheme second order.
    """
    from scipy.linalg import expm

    gk, gj = model.gates[k], model.gates[j]
    tk, tj = gk.tau(V), gj.tau(V)
    A = np.empty(V.shape + (2, 2))
    assert gk.coupling is not None, f"gate {gk.name!r} is coupled but has no coupling"
    A[..., 0, 0] = -1.0 / tk
    A[..., 0, 1] = gk.coupling(V) / tk
    if gj.coupled_to == gk.name:
        assert gj.coupling is not None, f"gate {gj.name!r} is coupled but has no coupling"
        A[..., 1, 0] = gj.coupling(V) / tj
    else:
        A[..., 1, 0] = 0.0
    A[..., 1, 1] = -1.0 / tj
    b = np.stack([gk.inf(V) / tk, np.broadcast_to(gj.inf(V) / tj, V.shape)], axis=-1)
    phi = expm(A * dt_ms)
    w = np.einsum("...ij,...j->...i", phi - np.eye(2), np.linalg.solve(A, b[..., None])[..., 0])
    return np.stack([phi[..., 0, 0], phi[..., 0, 1], phi[..., 1, 0], phi[..., 1, 1], w[..., 0], w[..., 1]])
