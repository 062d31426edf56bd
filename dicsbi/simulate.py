"""Batch simulation of conductance-based neurons with in-kernel spike detection.

Scheme
------
All N neurons are integrated by one numba kernel (parallel over neurons) with a *staggered exponential*
scheme (the Hines / NEURON staggering, with exponential instead of implicit updates):

* gates live on the half-step grid ``t_{n+1/2}``, V and Ca on the whole-step grid ``t_n``;
* every gate obeys ``dx/dt = (x_inf M + k y - x)/tau`` (see :mod:`dicsbi.models.base`); it is advanced from
  ``n-1/2`` to ``n+1/2`` with V and Ca frozen at their values at ``t_n``, the midpoint of that interval:
  ``x <- x E + (x_inf M + k y)(1 - E)``, ``E = exp(-dt/tau)``.  Exact for frozen V, so stable for any
  ``tau`` however small;
* the membrane equation is linear in V once the gates are known: ``C dV/dt = -G (V - V_inf)`` with
  ``G = sum g p`` evaluated with the midpoint gates, so ``V <- V_inf + (V - V_inf) exp(-dt G / C)``: stable
  for any sodium conductance (forward Euler would need ``dt < 2C/G``, below 1e-4 ms when g_Na is in the
  thousands of mS/cm^2);
* calcium is linear in Ca and is advanced the same way with the midpoint calcium current.

Every coefficient is taken at the midpoint of the interval it is used on, so the scheme is second order in
dt (the validation study shows the mean-ISI error falling ~4x per halving of dt) for the cost of a first-order
exponential Euler step.  The first-order variant (all states on the same grid) was tried first and needed
dt <= 0.001 ms to count DA spikes right; see ``docs/simulator.md``.

Every voltage function is tabulated once per (model, dt) on a 0.02 mV grid from -200 to +200 mV as
``E(V)`` and ``x_inf(V)(1 - E(V))``, stored as value and slope (:mod:`dicsbi.kernel_tables`, which also holds
the staggered initial state); the kernel reads one row and interpolates
linearly, so a step costs no transcendental function but one ``exp`` for V.  The kernel itself is generated
per model structure (:mod:`dicsbi.kernel`, two neurons per thread; the same code runs on a GPU with
``device="cuda"``).

Accuracy tiers
--------------
The step is chosen by purpose (:data:`dicsbi.models.base.TIERS`, :meth:`dicsbi.models.Model.tier_dt_ms`):
the *exact* tier (0.01 ms STG, 0.02 ms DA; every spike count of the tight-scipy unit test within max(1, 2%))
is the default of :func:`simulate` and of anything that reports spike times; the *fast* tier (0.05 ms for
both; class agreement 1.000 and median mean-ISI error below 0.5% against LSODA 1e-8) is the default of
training sets (:class:`dicsbi.datasets.DatasetConfig`), ``infer``'s predictive check and ``diagnose``'s
fresh simulations.  Both come from ``experiments/validate_simulator.py`` (``docs/simulator.md``);
``settings["tier"]`` and ``settings["dt_ms"]`` record the choice.

Spikes are detected inside the kernel on every step of the recorded window, with the published rule: a spike
starts at the first sample above +10 mV (upward crossing) and is kept only if V later falls below 0 mV.  A
simulation therefore returns spike times, never voltage, unless ``record_voltage`` asks for a few traces.

Time axis: the model runs for ``transient_ms + duration_ms``; spike times are reported relative to the end of
the transient, so every train's window is ``[0, duration_ms]``.

Noise
-----
As in the published noisy data sets: Gaussian white noise with standard deviation ``noise_std`` (uA/cm^2) is
drawn on the model's noise grid (``model.noise_dt_ms``: 0.1 ms STG, 0.05 ms DA), low-pass filtered with a
zero-phase 4th-order Butterworth filter at 1 kHz, and interpolated linearly in time.  Unlike the published
code (which held the first value constant during the transient) the noise covers the whole simulation.
Neuron ``i`` of a call always gets the stream ``SeedSequence(seed, spawn_key=(i,))``, so results do not
depend on chunking or thread count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numba
import numpy as np

from . import _seeds
from .errors import DicsbiError
from .kernel import cuda_available, kernel_for, run_cuda
from .kernel_tables import TABLE_STEP_MV, TABLE_V_MIN_MV, KernelTables, kernel_tables, staggered_initial_state
from .models import Model, get_model
from .progress import progress_range
from .spikes import SpikeTrains
from .stimulus import as_stimuli, pack

DIVERGED_ABS_V_MV = 1000.0
MAX_RATE_PER_MS = 0.5  # spike buffer capacity: 500 Hz; a neuron above it is flagged, not truncated silently
NOISE_CUTOFF_HZ = 1000.0
NOISE_ORDER = 4
CHUNK_BYTES = 64 * 2**20
CUDA_CHUNK_BYTES = 4 * 2**30

OK, DIVERGED, OVERFLOW = 0, 1, 2
STATUS_NAMES = ("ok", "diverged", "overflow")


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes
    ----------
    trains : SpikeTrains
        One train per neuron, times in ms relative to the end of the transient; window ``[0, duration_ms]``.
    status : ndarray of int8, shape (N,)
        0 ok, 1 diverged (state left ``|V| < 1000 mV`` or became NaN: the train is emptied), 2 more than
        500 spikes/s (train kept up to the buffer, flagged).
    voltage_mV : ndarray, shape (n_recorded, n_samples) or None
        Traces of the neurons asked for with ``record_voltage``, sampled every ``dt`` in the window.
    voltage_index : ndarray of int
        Which neurons those traces belong to.
    settings : dict
        Model, tier, dt, durations, noise, stimulus and seed: everything needed to reproduce the call.
    """

    trains: SpikeTrains
    status: np.ndarray
    voltage_mV: np.ndarray | None = None
    voltage_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    settings: dict = field(default_factory=dict)

    @property
    def diverged(self) -> np.ndarray:
        """Return which neurons diverged (status ``DIVERGED``)."""
        return self.status == DIVERGED

    @property
    def voltage_time_ms(self) -> np.ndarray:
        """Return the times (ms, from the end of the transient) of the samples of ``voltage_mV``."""
        n = 0 if self.voltage_mV is None else self.voltage_mV.shape[1]
        return np.arange(n) * self.settings.get("dt_ms", np.nan)


# ---------------------------------------------------------------------------- noise
def noise_current(model: Model, n_neurons: int, total_ms: float, noise_std, seed: int,
                  first_neuron: int = 0, keys=None) -> np.ndarray:
    """Band-limited Gaussian current (uA/cm^2) for neurons ``first_neuron ...`` on the model's noise grid.

    Neuron ``k`` uses stream ``first_neuron + k``, or ``keys[k]`` when ``keys`` is given; ``noise_std`` is one
    level or a column ``(n_neurons, 1)`` of levels.
    Shape ``(n_neurons, n_samples)`` with samples every ``model.noise_dt_ms`` from 0 to ``total_ms``
    (inclusive, plus one guard sample).  See the module docstring for the definition and the seeding.
    """
    from scipy.signal import butter, sosfilt_zi, sosfiltfilt

    dt = model.noise_dt_ms
    n_samples = int(math.ceil(total_ms / dt)) + 2
    fs_hz = 1000.0 / dt
    white = np.empty((n_neurons, n_samples))
    for k in range(n_neurons):
        key = first_neuron + k if keys is None else int(keys[k])
        ss = _seeds.stream(seed, key)
        white[k] = np.random.default_rng(ss).standard_normal(n_samples)
    white *= noise_std
    if NOISE_CUTOFF_HZ >= fs_hz / 2:
        return white
    sos = butter(NOISE_ORDER, NOISE_CUTOFF_HZ, btype="low", fs=fs_hz, output="sos")
    edge = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    if n_samples <= edge:  # too short for the padding: scipy says why
        return np.ascontiguousarray(sosfiltfilt(sos, white, axis=1))
    _filtfilt_rows(sos, sosfilt_zi(sos), white, edge)
    return white


@numba.njit(cache=True)
def _sos_pass(sos, zi, x):  # pragma: no cover - compiled
    """Filter ``x`` in place by second-order sections from state ``zi`` (scipy's sosfilt loop, same order)."""
    for n in range(x.size):
        cur = x[n]
        for s in range(sos.shape[0]):
            new = sos[s, 0] * cur + zi[s, 0]
            zi[s, 0] = sos[s, 1] * cur - sos[s, 4] * new + zi[s, 1]
            zi[s, 1] = sos[s, 2] * cur - sos[s, 5] * new
            cur = new
        x[n] = cur


@numba.njit(cache=True)
def _filtfilt_rows(sos, zi0, x, edge):  # pragma: no cover - compiled
    """Zero-phase filter every row of ``x`` in place: scipy's ``sosfiltfilt`` with odd padding of ``edge``.

    The same arithmetic in the same order as scipy (odd extension, initial state ``zi0`` times the first
    sample, forward pass, backward pass from the last output), without its copies; the test compares the two.
    """
    n = x.shape[1]
    ext = np.empty(n + 2 * edge)
    for i in range(x.shape[0]):
        row = x[i]
        for k in range(edge):
            ext[k] = 2.0 * row[0] - row[edge - k]
            ext[n + edge + k] = 2.0 * row[n - 1] - row[n - 2 - k]
        ext[edge:edge + n] = row
        zi = zi0 * ext[0]
        _sos_pass(sos, zi, ext)
        rev = ext[::-1].copy()
        zi = zi0 * rev[0]
        _sos_pass(sos, zi, rev)
        for k in range(n):
            row[k] = rev[n + edge - 1 - k]


# ---------------------------------------------------------------------------- public entry point
def _check_times(duration_ms, dt_ms, transient_ms):
    for name, value in (("duration_ms", duration_ms), ("dt_ms", dt_ms), ("transient_ms", transient_ms)):
        if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value)):
            raise DicsbiError(f"{name} must be a finite number of ms, got {value!r}")
    if duration_ms <= 0 or dt_ms <= 0 or transient_ms < 0:
        raise DicsbiError(f"need duration_ms > 0, dt_ms > 0 and transient_ms >= 0; got duration_ms="
                          f"{duration_ms}, dt_ms={dt_ms}, transient_ms={transient_ms}")
    if dt_ms > 0.1:
        raise DicsbiError(f"dt_ms={dt_ms} is too coarse for spike detection; use <= 0.1 ms "
                          "(see docs/simulator.md)")


def simulate(model: str | Model, conductances, duration_ms: float | None = None,
             dt_ms: float | None = None, transient_ms: float | None = None, noise_std=0.0,
             seed: int = 0, record_voltage=None, n_threads: int | None = None,
             progress: bool = False, ids=None, noise_keys=None, stimulus=None, tier: str = "exact",
             device: str = "cpu") -> SimulationResult:
    """Simulate many neurons of one model and return their spike trains.

    Parameters
    ----------
    model : str or Model
        ``"stg"``, ``"da"`` or a :class:`~dicsbi.models.Model`.
    conductances : array_like, shape (N, n_g) or (n_g,)
        Maximal conductances (mS/cm^2) in ``model.conductance_names`` order.
    duration_ms : float, optional
        Recorded window after the transient (model default: 3000 ms STG, 9000 ms DA).
    dt_ms : float, optional
        Integration step; overrides ``tier``.
    tier : {"exact", "fast"}
        Named accuracy tier choosing the step when ``dt_ms`` is not given (see :data:`dicsbi.models.base.TIERS` and
        ``docs/simulator.md``): ``"exact"`` (the default; 0.01 ms STG, 0.02 ms DA) for anything that reports
        spike times, ``"fast"`` (0.05 ms for both shipped models) for training sets, screening and predictive
        checks.
    transient_ms : float, optional
        Discarded initial period (model default: 3000 ms).
    noise_std : float or array_like, shape (N,)
        Standard deviation (uA/cm^2) of the white noise before its 1 kHz low-pass filter; 0 for none.  One
        value per neuron gives each its own level (a neuron's current is its stream times its level, so a
        neuron simulated alone at level s gets the same current as in a batch).
    seed : int
        Seed of the noise; neuron ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``.
    record_voltage : int, sequence of int or None
        Neuron indices whose voltage to return (sampled every dt over the window).
    n_threads : int, optional
        Numba threads for this call (default: numba's current setting).
    progress : bool
        Show a progress bar over chunks of neurons.
    ids : sequence of str, optional
        Train identifiers (default ``"0" ... "N-1"``).
    noise_keys : sequence of int, optional
        Noise stream of each neuron (default ``0 ... N-1``): neuron ``i`` uses
        ``SeedSequence(seed, spawn_key=(noise_keys[i],))``, so one neuron of a larger batch can be re-run
        alone with the same noise.

    stimulus : Stimulus, sequence of Stimulus or None
        Injected current (uA/cm^2) added to the noise: one protocol for every neuron or one per neuron
        (:class:`dicsbi.stimulus.Stimulus`; times on the recording's axis, 0 = end of the transient).

    device : {"cpu", "cuda"}
        ``"cuda"`` runs the same generated step code as a numba-cuda kernel, one GPU thread per neuron
        (:func:`dicsbi.kernel.run_cuda`), with the same noise streams, stimulus and spike detection.

    Returns
    -------
    SimulationResult
    """
    model = get_model(model)
    g = model.check_conductances(conductances)
    duration_ms = model.default_duration_ms if duration_ms is None else float(duration_ms)
    if dt_ms is None:
        dt_ms, tier_name = model.tier_dt_ms(tier), tier
    else:
        dt_ms = float(dt_ms)
        tier_name = model.tier_of(dt_ms)
    transient_ms = model.default_transient_ms if transient_ms is None else float(transient_ms)
    _check_times(duration_ms, dt_ms, transient_ms)
    n = g.shape[0]
    levels = _noise_levels(noise_std, n)
    keys = _noise_keys(noise_keys, n)
    rec = _record_indices(record_voltage, n)
    n_transient = int(round(transient_ms / dt_ms))
    n_window = int(round(duration_ms / dt_ms))
    tables = kernel_tables(model, dt_ms)
    step = _step_function(model, device)
    stimuli, stim_index = as_stimuli(stimulus, n)
    packed = pack(stimuli)
    capacity = max(4, int(math.ceil(duration_ms * MAX_RATE_PER_MS)))
    total_ms = (n_transient + n_window) * dt_ms
    chunk = _chunk_size(model, n, capacity, total_ms, levels, device)
    plan = _Plan(model, step, tables, dt_ms, n_transient, n_window, total_ms, capacity, packed, stim_index)
    times, counts, status, voltage = _run_chunks(plan, g, levels, seed, keys, rec, chunk, n_threads, progress)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ids_arr = np.array([str(i) for i in (range(n) if ids is None else ids)], dtype=object)
    if ids_arr.shape != (n,):
        raise DicsbiError(f"got {ids_arr.size} ids for {n} neurons")
    trains = SpikeTrains(times, offsets, np.zeros(n), np.full(n, n_window * dt_ms), ids_arr)
    settings = {"model": model.name, "dt_ms": dt_ms, "duration_ms": n_window * dt_ms,
                "transient_ms": n_transient * dt_ms,
                "noise_std_uA_cm2": float(noise_std) if np.ndim(noise_std) == 0 else levels.tolist(),
                "seed": int(seed), "noise_dt_ms": model.noise_dt_ms, "noise_cutoff_hz": NOISE_CUTOFF_HZ,
                "tier": tier_name, "device": device, "stimulus": _stimulus_record(stimuli, stim_index)}
    return SimulationResult(trains, status, voltage if rec.size else None, rec, settings)


def _noise_keys(noise_keys, n: int) -> np.ndarray | None:
    """Return ``noise_keys`` as ``n`` checked non-negative stream keys, or None when not given."""
    if noise_keys is None:
        return None
    keys = np.asarray(noise_keys, dtype=np.int64).ravel()
    if keys.shape != (n,) or (keys < 0).any():
        raise DicsbiError(f"noise_keys must be {n} non-negative integers, got shape {keys.shape}")
    return keys


def _record_indices(record_voltage, n: int) -> np.ndarray:
    """Return the checked indices of the neurons whose voltage to record (empty for none)."""
    rec = np.array([] if record_voltage is None else np.atleast_1d(record_voltage), dtype=np.int64)
    if rec.size and (rec.min() < 0 or rec.max() >= n):
        raise DicsbiError(f"record_voltage indices must lie in [0, {n - 1}], got {rec.tolist()}")
    return rec


def _step_function(model: Model, device: str) -> Callable[..., None]:
    """Return what integrates a chunk on ``device``: the compiled CPU kernel or the CUDA launcher."""
    if device not in ("cpu", "cuda"):
        raise DicsbiError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not cuda_available():
        raise DicsbiError("device='cuda' needs a CUDA GPU visible to numba (or NUMBA_ENABLE_CUDASIM=1 for its "
                          "simulator); none was found: use device='cpu'")
    return kernel_for(model) if device == "cpu" else partial(run_cuda, model)


def _chunk_size(model: Model, n: int, capacity: int, total_ms: float, levels: np.ndarray, device: str) -> int:
    """Return the neurons per kernel call.

    Memory is bounded, and large batches get about 50 updates of the progress bar (a GPU wants large chunks).
    """
    per_neuron = capacity * 8
    if levels.max(initial=0.0) > 0:
        per_neuron += 8 * (int(total_ms / model.noise_dt_ms) + 2)
    budget, least = (CHUNK_BYTES, 256) if device == "cpu" else (CUDA_CHUNK_BYTES, 65536)
    return int(max(1, min(n, budget // per_neuron, max(least, -(-n // 50)))))


@dataclass(frozen=True, eq=False)
class _Plan:
    """What every chunk of one :func:`simulate` call shares."""

    model: Model
    step: Callable[..., None]  # the CPU kernel or the CUDA launcher (:func:`_step_function`)
    tables: KernelTables
    dt_ms: float
    n_transient: int
    n_window: int
    total_ms: float
    capacity: int  # spike buffer per neuron
    stimulus: tuple[np.ndarray, np.ndarray, np.ndarray]  # packed protocols (:func:`dicsbi.stimulus.pack`)
    stim_index: np.ndarray  # protocol of each neuron


def _run_chunks(plan: _Plan, g: np.ndarray, levels: np.ndarray, seed: int, keys: np.ndarray | None,
                rec: np.ndarray, chunk: int, n_threads: int | None,
                progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integrate the neurons chunk by chunk.

    Returns the spike times of all trains in order, the spike counts, the status and the recorded voltage.
    """
    model, n = plan.model, g.shape[0]
    stim_t, stim_i, stim_n = plan.stimulus
    y_start = staggered_initial_state(model, plan.dt_ms)
    rec_slot = np.full(n, -1, np.int64)
    rec_slot[rec] = np.arange(rec.size)
    voltage = np.zeros((rec.size, plan.n_window))
    status = np.zeros(n, np.int8)
    counts_all = np.zeros(n, np.int64)
    pieces: list[np.ndarray] = []
    old_threads = numba.get_num_threads()
    if n_threads is not None:
        numba.set_num_threads(int(n_threads))
    try:
        for start in progress_range(0, n, chunk, progress, f"simulating {n} {model.name} neurons"):
            stop = min(n, start + chunk)
            m = stop - start
            noise = (noise_current(model, m, plan.total_ms, levels[start:stop, None], seed, start,
                                   None if keys is None else keys[start:stop])
                     if levels[start:stop].max(initial=0.0) > 0 else np.zeros((m, 1)))
            spikes = np.empty((m, plan.capacity))
            counts = np.zeros(m, np.int64)
            st = np.zeros(m, np.int8)
            plan.step(g[start:stop], y_start, plan.tables.table, TABLE_V_MIN_MV, 1.0 / TABLE_STEP_MV, plan.dt_ms,
                      plan.dt_ms / model.capacitance_uF_cm2, plan.tables.ca_decay, plan.n_transient,
                      plan.n_window, noise, plan.dt_ms / model.noise_dt_ms, stim_t, stim_i, stim_n,
                      plan.stim_index[start:stop], plan.n_transient * plan.dt_ms, spikes, counts, st,
                      rec_slot[start:stop], voltage)
            pieces.append(spikes[np.arange(plan.capacity)[None, :] < counts[:, None]])
            counts_all[start:stop] = counts
            status[start:stop] = st
    finally:
        numba.set_num_threads(old_threads)
    return (np.concatenate(pieces) if pieces else np.empty(0)), counts_all, status, voltage


def _noise_levels(noise_std, n: int) -> np.ndarray:
    """``noise_std`` (one level or one per neuron) as ``n`` checked levels."""
    try:
        levels = np.asarray(noise_std, dtype=float)
    except (TypeError, ValueError):
        raise DicsbiError(f"noise_std must be a number or one number per neuron, got {noise_std!r}") from None
    if levels.ndim > 1 or (levels.ndim == 1 and levels.shape != (n,)):
        raise DicsbiError(f"noise_std must be one number or {n} numbers (one per neuron), got shape {levels.shape}")
    if not (np.isfinite(levels).all() and (levels >= 0).all()):
        bad = levels.ravel()[~(np.isfinite(levels.ravel()) & (levels.ravel() >= 0))][0]
        raise DicsbiError(f"noise_std must be finite and >= 0 uA/cm^2, got {bad!r}")
    return np.broadcast_to(levels, (n,)).astype(float)


def _stimulus_record(stimuli, index) -> dict | list | None:
    """Return the stimulus as JSON-able data for ``settings``: None, one protocol, or protocols plus an index."""
    if not stimuli or all(s.is_empty for s in stimuli):
        return None
    if len(stimuli) == 1:
        return stimuli[0].to_dict()
    return {"protocols": [s.to_dict() for s in stimuli], "index": index.tolist()}
