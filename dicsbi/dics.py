"""Dynamic Input Conductances (DICs): the sensitivity matrix S(V; g), DIC curves and the threshold V_th.

Definition (``dic-and-neuromodulation.md`` 1.2-1.5, ``paper-and-models.md`` 2).  Every current is
``g_i p_i(x) B_i(V) (V - E_i)`` with steady-state gates ``x = x_inf(V)``.  For each channel (a column of S):

* the static term ``p_i(x_inf) B_i`` goes to the fast row;
* each gate x contributes ``sigma = dp_i/dx * dx_inf/dV * B_i * (V - E_i)``, split into the fast, slow and
  ultraslow rows with weights ``w_fs``, ``w_su - w_fs`` and ``1 - w_su`` of that gate;
* an instantaneous factor (NMDA's Mg block) contributes ``p_i B_i'(V) (V - E_i)``, fully fast (its time
  constant is zero);
* the STG KCa gate depends on calcium, whose steady state ``Ca_inf(V) = beta - alpha I_Ca,inf(V)`` depends on
  g_CaT and g_CaS: its direct voltage path is weighted with ``tau_m,KCa``; its calcium path
  ``dp/dx * dx_inf/dCa * dCa_inf/dV * (V - E_K)`` is weighted by the model's ``dic_calcium_path``:
  ``"tau_ca"`` (default, the published pipeline: the constant tau_Ca = 20 ms, about 74 % slow and 26 %
  ultraslow at -51 mV) or ``"ultraslow"`` (Fyon et al.: fully ultraslow).  The two conventions shift g_s and
  g_u by equal and opposite amounts and leave g_f + g_s + g_u unchanged; both are tested.

Weights: with reference time constants ``tau_1 < tau_2`` (fast/slow for w_fs, slow/ultraslow for w_su),
``w = clip((ln tau_2 - ln tau_x) / (ln tau_2 - ln tau_1), 0, 1)``.  References are the model's
``dic_reference_taus`` (STG: tau_m,Na, tau_m,Kd, tau_m,H; DA: tau_m,Na, tau_n,Kd, 100 ms); a gate with
``dic_band`` set (DA's ERG: ultraslow) ignores them.

Every S entry is divided by the cell's g_leak, so the leak column is (1, 0, 0) / g_leak and the DICs are in
units of g_leak.  Derivatives of the steady states are taken by complex-step differentiation (exact to
rounding, no step size to tune); ``tests/test_dics.py`` checks ``g_f + g_s + g_u`` against a finite
difference of the steady-state total current.
"""

from __future__ import annotations

import numpy as np

from .errors import DicsbiError
from .models import CalciumPool, Model, get_model

DIC_NAMES = ("g_f", "g_s", "g_u")
CALCIUM_PATHS = ("tau_ca", "ultraslow")
_H = 1e-30  # complex step
_BANDS = {"fast": (1.0, 1.0), "slow": (0.0, 1.0), "ultraslow": (0.0, 0.0)}


def timescale_weight(tau, tau_1, tau_2):
    """Log-interpolated weight: 1 for ``tau <= tau_1``, 0 for ``tau >= tau_2``, linear in ln tau between."""
    return np.clip((np.log(tau_2) - np.log(tau)) / (np.log(tau_2) - np.log(tau_1)), 0.0, 1.0)


def _reference_taus(model: Model, V: np.ndarray) -> list[np.ndarray]:
    taus = []
    for ref in model.dic_reference_taus:
        if isinstance(ref, str):
            taus.append(np.asarray(model.gates[model.gate_index(ref)].tau(V), dtype=float))
        else:
            taus.append(np.full(V.shape, float(ref)))
    return taus


def gate_weights(model: Model, V) -> tuple[np.ndarray, np.ndarray]:
    """``(w_fs, w_su)`` of every gate, each of shape ``V.shape + (n_gates,)``."""
    V = np.asarray(V, dtype=float)
    tf, ts, tu = _reference_taus(model, V)
    tau = model.time_constants(V)
    w_fs = timescale_weight(tau, tf[..., None], ts[..., None])
    w_su = timescale_weight(tau, ts[..., None], tu[..., None])
    for k, gate in enumerate(model.gates):
        if gate.dic_band is not None:
            w_fs[..., k], w_su[..., k] = _BANDS[gate.dic_band]
    return w_fs, w_su


def _pool(model: Model) -> CalciumPool:
    """Return the model's calcium pool (the callers handle calcium, so the model must have one)."""
    assert model.calcium is not None, f"model {model.name!r} has no calcium pool"
    return model.calcium


def _calcium_weights(model: Model, V: np.ndarray, calcium_path: str):
    if calcium_path == "ultraslow":
        return np.zeros(V.shape), np.zeros(V.shape)
    tf, ts, tu = _reference_taus(model, V)
    tau = np.full(V.shape, _pool(model).tau_ms)
    return timescale_weight(tau, tf, ts), timescale_weight(tau, ts, tu)


def _complex_derivative(fn, V):
    return np.imag(fn(V + 1j * _H)) / _H


def _leak_index(model: Model) -> int:
    try:
        return model.conductance_names.index("g_leak")
    except ValueError:
        raise DicsbiError(f"model {model.name!r} has no leak channel to normalise the DICs by") from None


def _calcium_current_coefficients(model: Model, V):
    """``a(V)`` with ``I_Ca,inf(V; g) = g . a(V)``: steady open fraction times driving force (0 for non-Ca)."""
    x = model.steady_state(V)
    coef = []
    for ch in model.channels:
        p = np.zeros(np.shape(V), dtype=x.dtype)
        if ch.carries_calcium:
            p = p + 1.0
            for gate_name, exponent in ch.gates:
                p = p * x[..., model.gate_index(gate_name)] ** exponent
            p = p * (V - ch.reversal_mV)
        coef.append(p)
    return np.stack(coef, axis=-1)


def _voltage_steady_state(model: Model, V):
    """Steady states with calcium-dependent gates reduced to their voltage part ``inf(V)``."""
    x = model.steady_state(V)
    for k, gate in enumerate(model.gates):
        if gate.calcium_dependent:
            x[..., k] = gate.inf(V)
    return x


def steady_calcium(model: Model, V, g) -> np.ndarray:
    """Steady-state calcium ``beta - alpha I_Ca,inf(V; g)`` (uM), shape ``broadcast(V, g[..., 0])``."""
    pool = _pool(model)
    return pool.beta - pool.alpha * np.sum(g * _calcium_current_coefficients(model, V), -1)


class SensitivityOperator:
    """S(V; g) at fixed voltages, split into what depends on g and what does not.

    Everything that depends on V only (steady states, their derivatives, weights, every column whose gates
    do not depend on calcium) is computed once at construction; calling the operator with conductances
    recomputes only the steady-state calcium (linear in g) and the columns of calcium-dependent channels.
    This is what makes the compensation fixed point cheap.  ``sensitivity_matrix`` is this operator applied
    once.
    """

    def __init__(self, model: str | Model, V, calcium_path: str | None = None):
        model = get_model(model)
        calcium_path = calcium_path or model.dic_calcium_path
        if calcium_path not in CALCIUM_PATHS:
            raise DicsbiError(f"calcium_path must be one of {CALCIUM_PATHS}, got {calcium_path!r}")
        self.model = model
        self.V = V = np.asarray(V, dtype=float)
        self.leak = _leak_index(model)
        gates = model.gates
        self.ca_gates = [k for k, gate in enumerate(gates) if gate.calcium_dependent]
        # steady states without the calcium factor, and their V-derivatives (complex step)
        self.x = _voltage_steady_state(model, V)
        self.dx = _complex_derivative(lambda v: _voltage_steady_state(model, v), V)
        self.w_fs, self.w_su = gate_weights(model, V)
        self.ca_channels = [c for c, ch in enumerate(model.channels)
                            if any(gates[model.gate_index(n)].calcium_dependent for n, _ in ch.gates)]
        if self.ca_channels:
            self.ca_coef = _calcium_current_coefficients(model, V).real
            self.dca_coef = _complex_derivative(lambda v: _calcium_current_coefficients(model, v), V)
            self.cw = _calcium_weights(model, V, calcium_path)
        self.static = np.zeros(V.shape + (3, model.n_conductances))
        for c in range(model.n_conductances):
            if c not in self.ca_channels:
                self.static[..., c] = self._column(c, self.x, self.dx)
        # A channel with one calcium-dependent gate of exponent e has the column
        # F^e u + F^(e-1) dF/dCa dCa/dV w, with F = Ca/(Ca+K): u and w are fixed at fixed V.
        self.ca_forms: list[tuple[int, int, np.ndarray, np.ndarray]] | None = []
        for c in self.ca_channels:
            ca_gates = [(n, e) for n, e in model.channels[c].gates
                        if gates[model.gate_index(n)].calcium_dependent]
            if len(ca_gates) != 1:
                self.ca_forms = None
                break
            u = self._column(c, self.x, self.dx)
            w = self._column(c, self.x, self.dx, dx_dca=self.x, dca_dv=np.ones(V.shape), cw=self.cw) - u
            self.ca_forms.append((c, ca_gates[0][1], u, w))

    def _column(self, c: int, x, dx, dx_dca=None, dca_dv=None, V=None, cw=None, index=None) -> np.ndarray:
        """Return the column of channel ``c`` from steady states ``x`` and their V-derivatives ``dx``.

        For calcium-dependent gates it also uses ``dx/dCa`` and ``dCa_inf/dV`` (weighted with ``cw``).
        """
        model = self.model
        V = self.V if V is None else V
        w_fs, w_su = self.w_fs, self.w_su
        if index is not None and self.V.ndim:
            w_fs, w_su = w_fs[index], w_su[index]
        ch = model.channels[c]
        drive = V - ch.reversal_mV
        factor = ch.voltage_factor(V) if ch.voltage_factor is not None else 1.0
        p_gates = 1.0
        for gate_name, exponent in ch.gates:
            p_gates = p_gates * x[..., model.gate_index(gate_name)] ** exponent
        dtype = np.result_type(np.asarray(p_gates).dtype, dx.dtype, float)
        col = np.zeros(np.broadcast_shapes(np.shape(p_gates), V.shape) + (3,), dtype=dtype)
        col[..., 0] += p_gates * factor
        for gate_name, exponent in ch.gates:
            k = model.gate_index(gate_name)
            dp_dx = exponent * x[..., k] ** (exponent - 1) * factor
            for other, e in ch.gates:
                if other != gate_name:
                    dp_dx = dp_dx * x[..., model.gate_index(other)] ** e
            _split(col, dp_dx * dx[..., k] * drive, w_fs[..., k], w_su[..., k])
            if dx_dca is not None and model.gates[k].calcium_dependent:
                _split(col, dp_dx * dx_dca[..., k] * dca_dv * drive, *cw)
        if ch.voltage_factor is not None:  # instantaneous: fully fast
            col[..., 0] += p_gates * _complex_derivative(ch.voltage_factor, V) * drive
        return col

    def __call__(self, g, normalise: bool = True, index=None) -> np.ndarray:
        """S for conductances ``g`` (..., n_g), broadcast against the operator's V.

        ``index`` selects cells of a per-cell V (``g`` then holds only those cells).
        """
        g = np.asarray(g)
        g = g.astype(np.result_type(g.dtype, float), copy=False)  # complex g: complex-step Jacobians
        static, x0, dx0, cw = self.static, self.x, self.dx, getattr(self, "cw", None)
        ca_coef, dca_coef, V = getattr(self, "ca_coef", None), getattr(self, "dca_coef", None), self.V
        if index is not None and self.V.ndim:
            static, x0, dx0, V = static[index], x0[index], dx0[index], V[index]
            if self.ca_channels:
                assert ca_coef is not None and dca_coef is not None and cw is not None
                ca_coef, dca_coef, cw = ca_coef[index], dca_coef[index], (cw[0][index], cw[1][index])
        shape = np.broadcast_shapes(V.shape, g.shape[:-1])
        S = np.array(np.broadcast_to(static, shape + static.shape[-2:]), dtype=np.result_type(g.dtype, float))
        if self.ca_channels:
            pool = _pool(self.model)
            ca = pool.beta - pool.alpha * np.sum(g * ca_coef, axis=-1)
            dca_dv = -pool.alpha * np.sum(g * dca_coef, axis=-1)
            factor = ca / (ca + pool.half_activation_uM)
            dfactor = pool.half_activation_uM / (ca + pool.half_activation_uM) ** 2
        if self.ca_channels and self.ca_forms is not None:
            for c, e, u, w in self.ca_forms:
                if index is not None and self.V.ndim:
                    u, w = u[index], w[index]
                S[..., c] = (factor**e)[..., None] * u + (factor ** (e - 1) * dfactor * dca_dv)[..., None] * w
        elif self.ca_channels:
            x = np.array(np.broadcast_to(x0, shape + x0.shape[-1:]), dtype=S.dtype)
            dx = np.array(np.broadcast_to(dx0, shape + dx0.shape[-1:]), dtype=S.dtype)
            dx_dca = np.zeros_like(x)
            for k in self.ca_gates:
                dx_dca[..., k] = x[..., k] * dfactor
                x[..., k] *= factor
                dx[..., k] *= factor
            for c in self.ca_channels:
                S[..., c] = self._column(c, x, dx, dx_dca, dca_dv, V=V, cw=cw, index=index)
        if normalise:
            S /= np.broadcast_to(g, shape + g.shape[-1:])[..., self.leak][..., None, None]
        return S


def sensitivity_matrix(model: str | Model, V, g, calcium_path: str | None = None,
                       normalise: bool = True) -> np.ndarray:
    """Sensitivity matrix S(V; g), shape ``broadcast(V.shape, g.shape[:-1]) + (3, n_g)``.

    Parameters
    ----------
    model : str or Model
    V : float or array
        Membrane potential(s), mV; broadcast against the cells of ``g``.
    g : array, shape (..., n_g)
        Maximal conductances (mS/cm^2).  S depends on g only through calcium (STG g_CaT, g_CaS) and through
        the normalisation by g_leak.
    calcium_path : {"tau_ca", "ultraslow"}, optional
        Weighting of the calcium -> KCa path (default: the model's ``dic_calcium_path``).
    normalise : bool
        Divide by each cell's g_leak (the convention everywhere in dicsbi).
    """
    return SensitivityOperator(model, V, calcium_path)(g, normalise)


def _split(column: np.ndarray, sigma: np.ndarray, w_fs: np.ndarray, w_su: np.ndarray) -> None:
    column[..., 0] += w_fs * sigma
    column[..., 1] += (w_su - w_fs) * sigma
    column[..., 2] += (1.0 - w_su) * sigma


def compute_dics(model: str | Model, g, V=None, calcium_path: str | None = None) -> np.ndarray:
    """DICs ``(g_f, g_s, g_u)`` in units of g_leak, shape ``broadcast(V, cells) + (3,)``.

    ``V`` defaults to the model's reference threshold ``model.vth_mV``.
    """
    model = get_model(model)
    g = model.check_conductances(g) if np.ndim(g) <= 2 else np.asarray(g, dtype=float)
    if np.ndim(g) == 2 and np.ndim(V) == 1 and np.size(V) != g.shape[0]:
        raise DicsbiError(f"got {np.size(V)} voltages for {g.shape[0]} cells; use dic_curves for a V grid")
    V = model.vth_mV if V is None else V
    S = sensitivity_matrix(model, V, g, calcium_path)
    return np.einsum("...ij,...j->...i", S, np.broadcast_to(g, S.shape[:-2] + (g.shape[-1],)))


def dic_curves(model: str | Model, g, V_grid, calcium_path: str | None = None) -> np.ndarray:
    """DIC curves of every cell on a voltage grid: shape ``(N, n_V, 3)``."""
    model = get_model(model)
    g = model.check_conductances(g)
    V_grid = np.asarray(V_grid, dtype=float).ravel()
    return compute_dics(model, g[:, None, :], V_grid[None, :], calcium_path)


def find_vth(model: str | Model, g, v_min: float = -80.0, v_max: float = 0.0, n_grid: int = 161,
             tol_mV: float = 1e-6) -> np.ndarray:
    """Per-cell threshold: first + to - zero crossing of ``g_f + g_s + g_u`` in ``[v_min, v_max]`` (mV).

    A grid scan finds the first bracketing interval, then vectorised bisection narrows it to ``tol_mV``.
    Cells without a crossing get NaN (most random DA cells have none: the fixed -55.5 mV is a convention).
    """
    model = get_model(model)
    g = model.check_conductances(g)
    grid = np.linspace(v_min, v_max, n_grid)
    total = dic_curves(model, g, grid).sum(axis=-1)
    crossing = (total[:, :-1] > 0) & (total[:, 1:] <= 0)
    has = crossing.any(axis=1)
    first = np.argmax(crossing, axis=1)
    lo, hi = grid[first], grid[first + 1]
    for _ in range(int(np.ceil(np.log2((grid[1] - grid[0]) / tol_mV))) + 1):
        mid = 0.5 * (lo + hi)
        positive = compute_dics(model, g, mid).sum(axis=-1) > 0
        lo = np.where(positive, mid, lo)
        hi = np.where(positive, hi, mid)
    return np.where(has, 0.5 * (lo + hi), np.nan)
