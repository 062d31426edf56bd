"""Conductance-based neuron models as data.

A model is a list of ionic channels, the gating variables they use, an optional intracellular calcium pool
and a handful of constants.  Every voltage dependence is a plain numpy function of ``V`` (mV) that works on
scalars and arrays alike; nothing here is compiled.  The simulator tabulates those functions for its numba
kernel, the DIC code differentiates them, and the tight-tolerance scipy reference integrates
:meth:`Model.rhs`.  Adding a model therefore means writing a new module like :mod:`dicsbi.models.stg`, never
touching the simulator.

Units everywhere: V in mV, t in ms, maximal conductances in mS/cm^2, currents in uA/cm^2, capacitance in
uF/cm^2, calcium in uM.

Every gating variable obeys one linear equation with voltage-dependent coefficients,

    dx/dt = (x_inf(V) * M(Ca) + k(V) * y_other - x) / tau(V),

which covers Hodgkin-Huxley gates (``k = 0``, ``M = 1``), the calcium-dependent KCa activation
(``M = Ca / (Ca + K)``) and the two coupled states of a three-state Markov scheme such as DA's ERG channel
(``k != 0``).  Holding V, Ca and ``y_other`` fixed over a step makes the update exact (Rush-Larsen form), which
is what keeps the simulator stable for stiff sodium conductances.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConductanceError

FloatOrArray = float | np.ndarray
ArrayFn = Callable[[FloatOrArray], FloatOrArray]  # works on floats and arrays alike
TIERS = ("exact", "fast")  # named integration steps, see Model.tier_dt_ms and docs/simulator.md


def boltzmann(V, half_mV: float, slope_mV: float):
    """``1 / (1 + exp((V + half) / slope))``; a negative slope gives an increasing (activation) curve.

    Works on floats and arrays alike (no conversion, so the scalar path used by the scipy reference is fast).
    """
    return 1.0 / (1.0 + np.exp((V + half_mV) / slope_mV))


@dataclass(frozen=True)
class Gate:
    """One gating variable ``x`` with ``dx/dt = (inf(V) * M(Ca) + k(V) * y[coupled_to] - x) / tau(V)``.

    Parameters
    ----------
    name : str
        State name, e.g. ``"m_Na"``.
    inf : callable
        Voltage-only part of the steady state (dimensionless).  For a calcium-dependent gate the steady state
        is ``inf(V) * Ca / (Ca + K)``.
    tau : callable
        Time constant in ms; must be positive and finite for every V.
    calcium_dependent : bool
        Multiply ``inf`` by the calcium factor ``Ca / (Ca + K)`` of the model's calcium pool.
    coupled_to : str or None
        Name of another gate entering linearly (Markov schemes).
    coupling : callable or None
        The voltage-dependent coefficient ``k(V)`` of that gate.
    dic_band : {"fast", "slow", "ultraslow"} or None
        Force the whole feedback of this gate into one DIC band instead of splitting it by its time constant
        (DA's ERG is fully ultraslow).
    """

    name: str
    inf: ArrayFn
    tau: ArrayFn
    calcium_dependent: bool = False
    coupled_to: str | None = None
    coupling: ArrayFn | None = None
    dic_band: str | None = None


@dataclass(frozen=True)
class Channel:
    """An ionic current ``g * prod(x_i ** p_i) * f(V) * (V - E)``.

    ``gates`` pairs gate names with integer exponents; ``voltage_factor`` is an optional instantaneous
    factor ``f(V)`` (e.g. the magnesium block of NMDA); ``carries_calcium`` marks the currents that feed the
    calcium pool.
    """

    name: str
    reversal_mV: float
    gates: tuple[tuple[str, int], ...] = ()
    voltage_factor: ArrayFn | None = None
    carries_calcium: bool = False


@dataclass(frozen=True)
class CalciumPool:
    """``tau dCa/dt = -alpha * I_Ca - Ca + beta`` (Ca in uM); KCa sees ``Ca / (Ca + half_activation_uM)``."""

    tau_ms: float
    alpha: float
    beta: float
    initial_uM: float
    half_activation_uM: float


@dataclass(frozen=True)
class SeedSpec:
    """How to draw the tonic-spiking seed population of the two-step population generator.

    Free conductances are drawn uniformly in ``uniform`` (values per reference leak), ``fixed`` ones are set,
    g_leak is drawn from the gamma distribution matched to the mean and variance of ``U[leak_range]``, every
    other conductance is then multiplied by ``g_leak / mean_leak``, and ``solve_for`` are solved so that the
    DICs at V_th equal ``dic_targets`` (g_f, g_s, g_u).  ``candidate_pairs_from`` lists the conductances
    whose pairs may be re-solved to reach a target; ``published_pair(g_s, g_u)`` is the published fixed rule.
    """

    uniform: Mapping[str, tuple[float, float]]
    fixed: Mapping[str, float]
    leak_range: tuple[float, float]
    solve_for: tuple[str, ...]
    dic_targets: tuple[float, float, float]
    candidate_pairs_from: tuple[str, ...]
    published_pair: Callable[[float, float], tuple[str, str]] | None = None


@dataclass(frozen=True)
class Model:
    """A conductance-based neuron model (frozen; compare by name).

    Attributes
    ----------
    name : str
        Registry name (``"stg"``, ``"da"``).
    channels : tuple of Channel
        In conductance order: conductance ``i`` is the maximal conductance of ``channels[i]``.
    gates : tuple of Gate
        In state order after V.
    calcium : CalciumPool or None
        Intracellular calcium (last state) when present.
    bounds : mapping
        Default (Monte-Carlo) range of each maximal conductance, mS/cm^2.
    vth_mV : float
        Reference threshold voltage where DICs are evaluated.
    v0_mV : float
        Initial membrane potential; gates start at steady state unless ``initial_overrides`` says otherwise.
    initial_overrides : mapping
        State name -> initial value, for states not started at steady state.
    dic_reference_taus : tuple
        Names (or constants in ms) of the fast, slow and ultraslow reference time constants of the DICs.
    dic_calcium_path : {"tau_ca", "ultraslow"}
        How the calcium -> KCa feedback is split between DIC bands (see :mod:`dicsbi.dics`).
    seed_spec : SeedSpec or None
        The tonic-spiking seed population of the population generator.
    dic_box : ((g_s min, g_s max), (g_u min, g_u max))
        The (g_s, g_u) region the posterior is trained on (units of g_leak).
    default_dt_ms, default_duration_ms, default_transient_ms, noise_dt_ms : float
        Simulation defaults: integration step, recorded window, discarded transient, and the sampling step of
        the band-limited noise current (the reference draws its noise on its output grid).
        ``default_dt_ms`` is the step of the *exact* tier, found for each shipped model by
        ``experiments/validate_simulator.py`` (``docs/simulator.md``).
    fast_dt_ms : float or None
        Step of the *fast* tier (training sets, screening, predictive checks), validated by
        ``experiments/validate_simulator.py`` (0.05 ms for both shipped models: class agreement 1.000, median
        mean-ISI error under 0.5 %, ``docs/simulator.md``); None means the exact step (the safe choice for a
        model nobody has validated at a coarser step).
    """

    name: str
    description: str
    channels: tuple[Channel, ...]
    gates: tuple[Gate, ...]
    calcium: CalciumPool | None
    bounds: Mapping[str, tuple[float, float]]
    vth_mV: float
    v0_mV: float
    default_dt_ms: float
    default_duration_ms: float
    default_transient_ms: float
    noise_dt_ms: float
    capacitance_uF_cm2: float = 1.0
    fast_dt_ms: float | None = None
    initial_overrides: Mapping[str, float] = field(default_factory=dict)
    dic_reference_taus: tuple[str | float, str | float, str | float] = ("", "", "")
    dic_calcium_path: str = "tau_ca"
    seed_spec: SeedSpec | None = None
    dic_box: tuple[tuple[float, float], tuple[float, float]] = ((-20.0, 20.0), (0.0, 20.0))

    # ------------------------------------------------------------------ accuracy tiers
    def tier_of(self, dt_ms: float) -> str:
        """Name of the accuracy tier whose step is ``dt_ms`` (``"exact"`` first), or ``"custom"``."""
        return next((t for t in TIERS if self.tier_dt_ms(t) == float(dt_ms)), "custom")

    def tier_dt_ms(self, tier: str) -> float:
        """Integration step of a named accuracy tier, ``"exact"`` or ``"fast"`` (see ``docs/simulator.md``)."""
        if tier == "exact":
            return float(self.default_dt_ms)
        if tier == "fast":
            return float(self.fast_dt_ms if self.fast_dt_ms is not None else self.default_dt_ms)
        raise ValueError(f"unknown accuracy tier {tier!r}; expected 'exact' or 'fast'")

    # ------------------------------------------------------------------ names and shapes
    @property
    def conductance_names(self) -> tuple[str, ...]:
        """Maximal conductance names in the order used by every array, e.g. ``("g_Na", ..., "g_leak")``."""
        return tuple(f"g_{c.name}" for c in self.channels)

    @property
    def n_conductances(self) -> int:
        """Number of maximal conductances (one per channel)."""
        return len(self.channels)

    @property
    def state_names(self) -> tuple[str, ...]:
        """State names in state-vector order: ``"V"``, the gates, then ``"Ca"`` when the model has calcium."""
        names = ("V",) + tuple(g.name for g in self.gates)
        return names + (("Ca",) if self.calcium is not None else ())

    @property
    def n_states(self) -> int:
        """Length of the state vector."""
        return len(self.state_names)

    @property
    def units(self) -> Mapping[str, str]:
        """Units of time, voltage, conductance, current, capacitance and calcium."""
        return {"time": "ms", "voltage": "mV", "conductance": "mS/cm^2", "current": "uA/cm^2",
                "capacitance": "uF/cm^2", "calcium": "uM"}

    @property
    def lower_bounds(self) -> np.ndarray:
        """Lower ends of :attr:`bounds` in conductance order (mS/cm^2)."""
        return np.array([self.bounds[n][0] for n in self.conductance_names])

    @property
    def upper_bounds(self) -> np.ndarray:
        """Upper ends of :attr:`bounds` in conductance order (mS/cm^2)."""
        return np.array([self.bounds[n][1] for n in self.conductance_names])

    @property
    def _state_index(self) -> dict[str, int]:
        cached = self.__dict__.get("_state_index_cache")
        if cached is None:
            cached = {name: i for i, name in enumerate(self.state_names)}
            object.__setattr__(self, "_state_index_cache", cached)
        return cached

    def gate_index(self, name: str) -> int:
        """Position of a gate in :attr:`gates` (state index minus one)."""
        for i, gate in enumerate(self.gates):
            if gate.name == name:
                return i
        raise KeyError(f"model {self.name!r} has no gate {name!r}")

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.name == self.name

    # ------------------------------------------------------------------ voltage functions
    def steady_state(self, V, ca=None) -> np.ndarray:
        """Steady state of every gate, shape ``V.shape + (n_gates,)``.

        ``ca`` (uM, broadcast against V) feeds calcium-dependent gates; it defaults to the pool's initial
        value.  Coupled (Markov) pairs are solved jointly.
        """
        V = np.asarray(V)
        V = V.astype(np.result_type(V.dtype, float), copy=False)  # complex V allowed (complex-step derivatives)
        ca_factor = 1.0
        if self.calcium is not None:
            ca = np.asarray(self.calcium.initial_uM if ca is None else ca)
            ca_factor = ca / (ca + self.calcium.half_activation_uM)
        out = np.empty(np.broadcast_shapes(V.shape, np.shape(ca_factor)) + (len(self.gates),),
                       dtype=np.result_type(V.dtype, np.asarray(ca_factor).dtype))
        for i, gate in enumerate(self.gates):
            out[..., i] = gate.inf(V) * (ca_factor if gate.calcium_dependent else 1.0)
        for i, gate in enumerate(self.gates):
            if gate.coupled_to is None:
                continue
            j = self.gate_index(gate.coupled_to)
            partner = self.gates[j]
            assert gate.coupling is not None, f"gate {gate.name!r} is coupled but has no coupling"
            k_i = gate.coupling(V)
            k_j: FloatOrArray = 0.0
            if partner.coupled_to == gate.name:
                assert partner.coupling is not None, f"gate {partner.name!r} is coupled but has no coupling"
                k_j = partner.coupling(V)
            # x_i = a_i + k_i x_j and x_j = a_j + k_j x_i, with a_* the uncoupled drives computed above.
            a_i, a_j = gate.inf(V), partner.inf(V)
            out[..., i] = (a_i + k_i * a_j) / (1.0 - k_i * k_j)
        return out

    def time_constants(self, V) -> np.ndarray:
        """Time constant (ms) of every gate, shape ``V.shape + (n_gates,)``."""
        V = np.asarray(V, dtype=float)
        return np.stack([np.broadcast_to(g.tau(V), V.shape) for g in self.gates], axis=-1)

    def initial_state(self) -> np.ndarray:
        """Return the initial state vector (V0, gates at steady state at V0 unless overridden, Ca0)."""
        y = np.empty(self.n_states)
        y[0] = self.v0_mV
        y[1 : 1 + len(self.gates)] = self.steady_state(np.array(self.v0_mV))
        if self.calcium is not None:
            y[-1] = self.calcium.initial_uM
        for name, value in self.initial_overrides.items():
            y[self.state_names.index(name)] = value
        return y

    # ------------------------------------------------------------------ the ODE itself
    def currents(self, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Ionic currents (uA/cm^2), shape ``(n_channels,) + y.shape[1:]``; ``y`` is ``(n_states, ...)``."""
        V = y[0]
        out = []
        for c, ch in enumerate(self.channels):
            p = np.ones_like(V)
            for gate_name, exponent in ch.gates:
                p = p * y[1 + self.gate_index(gate_name)] ** exponent
            if ch.voltage_factor is not None:
                p = p * ch.voltage_factor(V)
            out.append(g[c] * p * (V - ch.reversal_mV))
        return np.array(out)

    def rhs(self, t: float, y: np.ndarray, g: np.ndarray, current_uA_cm2: float = 0.0) -> np.ndarray:
        """Right-hand side ``dy/dt`` of the model for one neuron (for scipy's ``solve_ivp``).

        Plain Python floats throughout (numpy only for ``exp``), written straight from the equations: no
        tables and no splitting, so it is an independent check of the simulator.  ``current_uA_cm2`` is an
        injected current (positive depolarises).
        """
        s = [float(v) for v in y]
        V = s[0]
        index = self._state_index
        dy = np.empty(len(s))
        total = 0.0
        i_ca = 0.0
        for c, ch in enumerate(self.channels):
            p = float(g[c])
            for gate_name, exponent in ch.gates:
                p *= s[index[gate_name]] ** exponent
            if ch.voltage_factor is not None:
                p *= float(ch.voltage_factor(V))
            current = p * (V - ch.reversal_mV)
            total += current
            if ch.carries_calcium:
                i_ca += current
        dy[0] = (current_uA_cm2 - total) / self.capacitance_uF_cm2
        ca = s[-1]
        for i, gate in enumerate(self.gates):
            drive = float(gate.inf(V))
            if gate.calcium_dependent:
                assert self.calcium is not None, f"gate {gate.name!r} needs a calcium pool"
                drive *= ca / (ca + self.calcium.half_activation_uM)
            if gate.coupled_to is not None:
                assert gate.coupling is not None, f"gate {gate.name!r} is coupled but has no coupling"
                drive += float(gate.coupling(V)) * s[index[gate.coupled_to]]
            dy[1 + i] = (drive - s[1 + i]) / float(gate.tau(V))
        if self.calcium is not None:
            pool = self.calcium
            dy[-1] = (-pool.alpha * i_ca - ca + pool.beta) / pool.tau_ms
        return dy

    # ------------------------------------------------------------------ validation
    def check_conductances(self, conductances, *, where: str = "conductances") -> np.ndarray:
        """Return ``conductances`` as a float64 array ``(N, n_g)`` or raise :class:`ConductanceError`.

        Accepts one vector ``(n_g,)`` or a batch ``(N, n_g)``.  Rejects the wrong column count, NaN or
        infinite values and negative values, naming the first offending row and conductance.
        """
        try:
            arr = np.array(conductances, dtype=float, ndmin=2)
        except (TypeError, ValueError) as exc:
            raise ConductanceError(f"{where}: expected numbers, got {type(conductances).__name__}") from exc
        if arr.ndim != 2 or arr.shape[1] != self.n_conductances:
            raise ConductanceError(
                f"{where}: model {self.name!r} needs {self.n_conductances} conductances per neuron "
                f"({', '.join(self.conductance_names)}), got an array of shape {arr.shape}"
            )
        for test, what in ((~np.isfinite(arr), "is not finite"), (arr < 0, "is negative")):
            if test.any():
                row, col = np.argwhere(test)[0]
                raise ConductanceError(
                    f"{where}: row {row}, {self.conductance_names[col]} = {float(arr[row, col])!r} {what} "
                    f"(maximal conductances are finite and >= 0 mS/cm^2)"
                )
        return arr
