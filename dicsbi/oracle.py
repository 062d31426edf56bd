"""Tight-tolerance scipy reference integration, the independent check of :mod:`dicsbi.simulate`.

This integrates :meth:`dicsbi.models.base.Model.rhs` (the ODE itself, plain Python floats, no tables, no
splitting) with ``scipy.integrate.solve_ivp`` and finds spikes with the solver's event location: upward
crossings of +10 mV are spike starts and downward crossings of 0 mV confirm them, the same rule as the
kernel.  It is slow (seconds per neuron) and meant for validation and benchmarks only.

Marginal cells
--------------
A cell whose oscillation peaks lie close to +10 mV (or whose troughs lie close to 0 mV) has an ill-posed spike
count: whether a peak counts changes with any perturbation, including between two tight-tolerance solvers
(seen here: one DA cell gave 166, 178, 190 and 191 spikes with LSODA 1e-8, BDF 1e-8, Radau 1e-8 and
LSODA 1e-10).  The reference flags a cell as *marginal* when the numbers of upward crossings of +5 and
+15 mV differ, or those of downward crossings of -5 and +5 mV; validation reports such cells separately.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
from scipy.integrate import solve_ivp

from .models import Model, get_model

if TYPE_CHECKING:
    from .spikes import SpikeTrains

_LEVELS = ((10.0, 1.0), (0.0, -1.0), (5.0, 1.0), (15.0, 1.0), (-5.0, -1.0), (5.0, -1.0))


class _Crossing:
    """A ``solve_ivp`` event: ``V - level``, a crossing counted only in ``direction`` (+1 up, -1 down)."""

    def __init__(self, level: float, direction: float):
        self.level = level
        self.direction = direction  # read by solve_ivp

    def __call__(self, t, y, *args):
        return y[0] - self.level


def _event(level: float, direction: float) -> _Crossing:
    return _Crossing(level, direction)


@dataclass(frozen=True)
class ReferenceResult:
    """One neuron's reference integration (:func:`reference_simulate`).

    Attributes
    ----------
    spike_times_ms : ndarray
        Spike times, ms after the transient.
    marginal : bool
        The cell's spike count is ill-posed (see "Marginal cells" in the module docstring).
    n_rhs_evaluations : int
        Right-hand side evaluations of the solver.
    cpu_s : float
        Processor time of the integration (benchmarks); NaN when not measured.
    """

    spike_times_ms: np.ndarray
    marginal: bool
    n_rhs_evaluations: int
    cpu_s: float = float("nan")  # processor time of the integration (benchmarks)


def reference_simulate(model: str | Model, g, duration_ms: float, transient_ms: float,
                       method: str = "LSODA", rtol: float = 1e-8, atol: float = 1e-8,
                       v0_shift_mV: float = 0.0, stimulus=None) -> ReferenceResult:
    """Spike times (ms after the transient) of one neuron integrated by ``solve_ivp``.

    Spike time = exact crossing time of +10 mV (the kernel reports the first sample above it, at most one
    step later).  A start is kept only if a downward crossing of 0 mV follows it within the window.
    ``v0_shift_mV`` perturbs the initial voltage (used to detect chaotic cells).  ``stimulus``
    (:class:`dicsbi.stimulus.Stimulus`) is integrated piece by piece: the solver restarts at every
    breakpoint, and inside a piece the current is the exact linear function of time.
    """
    cpu0 = time.process_time()
    model = get_model(model)
    g = model.check_conductances(g)[0]
    y = model.initial_state()
    y[0] += v0_shift_mV
    t_end = transient_ms + duration_ms
    cuts = [0.0, t_end]
    if stimulus is not None and not stimulus.is_empty:
        inner = stimulus.breakpoints_ms() + transient_ms
        cuts = [0.0, *inner[(inner > 0.0) & (inner < t_end)].tolist(), t_end]
    events = [_event(lv, d) for lv, d in _LEVELS]
    found: list[list[np.ndarray]] = [[] for _ in _LEVELS]
    nfev = 0
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b <= a:
            continue
        if stimulus is None or stimulus.is_empty:
            c0, slope = 0.0, 0.0
        else:  # the current is linear on (a, b): take it from two interior points
            ta, tb = a + 0.25 * (b - a), a + 0.75 * (b - a)
            ia, ib = (float(stimulus(t - transient_ms)) for t in (ta, tb))
            slope = (ib - ia) / (tb - ta)
            c0 = ia - slope * (ta - a)

        def rhs(t, z, row, a=a, c0=c0, slope=slope):
            return model.rhs(t, z, row, c0 + slope * (t - a))

        sol = solve_ivp(rhs, (a, b), y, method=method, rtol=rtol, atol=atol, args=(g,), events=events)
        if sol.status != 0:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        for k, t in enumerate(sol.t_events):
            found[k].append(t)
        y = sol.y[:, -1]
        nfev += int(sol.nfev)
    ev = [np.concatenate(f) for f in found]
    ev = [t[t > transient_ms] for t in ev]
    ups, downs = ev[0], ev[1]
    times = ups[ups < downs[-1]] - transient_ms if downs.size else np.empty(0)
    marginal = ev[2].size != ev[3].size or ev[4].size != ev[5].size
    return ReferenceResult(times, bool(marginal), nfev, time.process_time() - cpu0)


def reference_spike_times(model: str | Model, g, duration_ms: float, transient_ms: float,
                          **kwargs) -> np.ndarray:
    """Only the spike times of :func:`reference_simulate`."""
    return reference_simulate(model, g, duration_ms, transient_ms, **kwargs).spike_times_ms


# ---------------------------------------------------------------------------- simulator vs reference
def _reference_job(args):
    model, g, duration_ms, transient_ms, tol, atol, method, cache = args  # a model name in worker processes
    key = None
    if cache is not None:
        from pathlib import Path

        name = getattr(model, "name", model)
        key = Path(cache) / f"{_cache_key(name, g, duration_ms, transient_ms, tol, atol, method)}.json"
        if key.exists():
            d = json.loads(key.read_text())
            return ReferenceResult(np.array(d["spike_times_ms"]), d["marginal"], d["n_rhs_evaluations"],
                                   d.get("cpu_s", float("nan")))
    res = reference_simulate(model, g, duration_ms, transient_ms, method=method, rtol=tol, atol=atol)
    if key is not None:
        tmp = key.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"spike_times_ms": res.spike_times_ms.tolist(), "marginal": res.marginal,
                                   "n_rhs_evaluations": res.n_rhs_evaluations, "cpu_s": res.cpu_s}))
        os.replace(tmp, key)
    return res


def _cache_key(model_name, g, duration_ms, transient_ms, tol, atol, method) -> str:
    extra = [] if atol == tol else [float(atol)]  # keys of rtol = atol runs predate the atol argument
    blob = json.dumps([model_name, np.asarray(g, float).tolist(), float(duration_ms), float(transient_ms),
                       float(tol), method, *extra]).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def run_references(model: str | Model, conductances, duration_ms: float, transient_ms: float,
                   workers: int = 1, tol: float = 1e-8, method: str = "LSODA",
                   cache: str | None = None, atol: float | None = None) -> list[ReferenceResult]:
    """Run :func:`reference_simulate` for every row, on ``workers`` processes (spawned).

    The tolerances are rtol = ``tol``, atol = ``atol`` or ``tol``.

    With more than one worker the model must be a registered one (it is looked up by name in each worker).
    ``cache`` names a folder where each cell's result is kept (keyed by model, conductances, durations,
    tolerance and method), so a rerun of a validation or benchmark only integrates what is new.
    """
    model = get_model(model)
    g = model.check_conductances(conductances)
    atol = tol if atol is None else atol
    if cache is not None:
        os.makedirs(cache, exist_ok=True)
    if workers <= 1:
        return [_reference_job((model, row, duration_ms, transient_ms, tol, atol, method, cache)) for row in g]
    jobs = [(model.name, row, duration_ms, transient_ms, tol, atol, method, cache) for row in g]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_reference_job, jobs))


def _reference_trains(reference: list[ReferenceResult], t_stop_ms: float | np.ndarray) -> SpikeTrains:
    """Return the spike trains of reference results as :class:`~dicsbi.spikes.SpikeTrains` (from 0 ms)."""
    from .spikes import SpikeTrains

    # from_list converts each train with np.asarray: arrays are the 1-D float sequences it expects
    return SpikeTrains.from_list([cast(Sequence[float], r.spike_times_ms) for r in reference], 0.0, t_stop_ms)


def compare_trains(kernel_trains, reference: list[ReferenceResult]) -> dict[str, np.ndarray]:
    """Per-cell agreement between kernel spike trains and reference results.

    Returns arrays: ``class_kernel``, ``class_reference``, ``count_kernel``, ``count_reference``,
    ``count_ok`` (|difference| <= max(1, 2% of the reference count)), ``isi_relerr`` (relative error of the
    mean ISI; NaN when either train has fewer than 2 spikes) and ``marginal``.
    """
    from .spikes import firing_class

    ref = _reference_trains(reference, kernel_trains.t_stop_ms)
    ck, cr = firing_class(kernel_trains), firing_class(ref)
    nk, nr = kernel_trains.counts, ref.counts

    def mean_isi(trains):
        return np.array([np.diff(t).mean() if t.size > 1 else np.nan for t in trains])

    with np.errstate(invalid="ignore"):
        isi_err = np.abs(mean_isi(kernel_trains) / mean_isi(ref) - 1.0)
    return {
        "class_kernel": ck, "class_reference": cr, "count_kernel": nk, "count_reference": nr,
        "count_ok": np.abs(nk - nr) <= np.maximum(1, 0.02 * nr), "isi_relerr": isi_err,
        "marginal": np.array([r.marginal for r in reference]),
    }


def ill_conditioned(reference: list[ReferenceResult], tighter: list[ReferenceResult]) -> np.ndarray:
    """Return the cells whose spike train is not pinned down by a tight solver.

    Such a cell is marginal, or two references (e.g. LSODA at 1e-8 and 1e-10) disagree on class, on the count
    (beyond max(1, 2%)) or on the mean ISI (beyond 0.5%).

    Chaotic bursters are the usual case: their trains change with any perturbation, so no integrator can be
    held to them.
    """
    a = _reference_trains(reference, 1.0)
    cmp = compare_trains(a, tighter)
    with np.errstate(invalid="ignore"):
        isi_bad = cmp["isi_relerr"] > 0.005
    return (cmp["marginal"] | (cmp["class_kernel"] != cmp["class_reference"]) | ~cmp["count_ok"] | isi_bad)


def parameter_sensitive(model: str | Model, conductances, reference: list[ReferenceResult], duration_ms: float,
                        transient_ms: float, workers: int = 1, rel: float = 1e-3, n_directions: int = 2,
                        seed: int = 0) -> np.ndarray:
    """Cells whose reference train leaves the validation tolerances when every conductance moves by ``rel``.

    Each cell is integrated again at ``g * (1 + rel * s)`` for ``n_directions`` random sign vectors ``s``;
    a cell is sensitive if any perturbed train differs from ``reference`` in class, in count beyond
    max(1, 2%) or in mean ISI beyond 1% (the test's own tolerances).  A 0.1% change of a conductance is far
    below anything measurable, yet some bursters with long irregular transients change their count by 10%
    under it (one STG set went from 41 spikes to 36, 38 or 43 with +-0.1% on g_Na, g_KCa or g_CaS while
    LSODA 1e-7/1e-8/1e-10 and DOP853 1e-10 all agreed on 41): for such a cell the kernel's discretisation
    error, a perturbation of the same kind, decides the count, and no fixed-step integrator can be held to it.
    """
    model = get_model(model)
    g = model.check_conductances(conductances)
    rng = np.random.default_rng(seed)
    base = _reference_trains(reference, duration_ms)
    bad = np.zeros(len(g), bool)
    for _ in range(n_directions):
        signs = rng.choice([-1.0, 1.0], size=g.shape)
        moved = run_references(model, g * (1.0 + rel * signs), duration_ms, transient_ms, workers=workers)
        cmp = compare_trains(base, moved)
        with np.errstate(invalid="ignore"):
            isi_bad = cmp["isi_relerr"] > 0.01
        bad |= cmp["marginal"] | (cmp["class_kernel"] != cmp["class_reference"]) | ~cmp["count_ok"] | isi_bad
    return bad


def stratified_sets(model: str | Model, n: int, seed: int, duration_ms: float = 2000.0,
                    transient_ms: float = 1000.0, pool: int = 4000, pilot_dt_ms: float = 0.01) -> np.ndarray:
    """``n`` random Monte-Carlo conductance sets balanced across silent, spiking and bursting.

    Sets are drawn uniformly from the model's bounds; a pilot simulation at a finer step than the default
    classifies them, and about n/3 of each class are kept (classes too rare in the pool are topped up from
    the others).  Only the pilot's class is used, never its spike times, so the comparison stays independent.
    """
    from .simulate import simulate
    from .spikes import firing_class

    model = get_model(model)
    rng = np.random.default_rng(seed)
    g = rng.uniform(model.lower_bounds, model.upper_bounds, size=(pool, model.n_conductances))
    cls = firing_class(simulate(model, g, duration_ms, pilot_dt_ms, transient_ms).trains)
    per = [rng.permutation(np.flatnonzero(cls == c)) for c in range(3)]
    quota = [n // 3 + (1 if c < n % 3 else 0) for c in range(3)]
    take = [min(q, p.size) for q, p in zip(quota, per)]
    short = n - sum(take)
    for c in np.argsort([-p.size for p in per]):
        extra = min(short, per[c].size - take[c])
        take[c] += extra
        short -= extra
    return np.concatenate([g[p[:k]] for p, k in zip(per, take)])
