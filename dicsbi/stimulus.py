"""Injected current protocols: steps, ramps and sampled waveforms, as one piecewise-linear current.

A :class:`Stimulus` is a piecewise-linear function of time given by its breakpoints ``(t_k, I_k)``
(ms, uA/cm^2; positive current depolarises, as in :meth:`dicsbi.models.Model.rhs`).  Two breakpoints at the
same time make a jump, so a step is four breakpoints.  Outside ``[t_0, t_last]`` the current is zero.  Times
are on the recording's axis: 0 is the end of the transient, the start of the window in which spikes are
reported; negative times reach into the transient.

Protocols add: ``Stimulus.step(500, 1500, 0.5) + Stimulus.ramp(2000, 3000, 0.0, 1.0)``.  The simulator
evaluates the current at the midpoint of every step and adds it to the noise current;
:func:`dicsbi.oracle.reference_simulate` integrates the same function piece by piece between breakpoints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import DicsbiError


@dataclass(frozen=True, eq=False)
class Stimulus:
    """A piecewise-linear injected current (see the module docstring)."""

    times_ms: np.ndarray
    current_uA_cm2: np.ndarray

    def __post_init__(self):
        t = np.array(self.times_ms, dtype=float).ravel()
        c = np.array(self.current_uA_cm2, dtype=float).ravel()
        if t.shape != c.shape:
            raise DicsbiError(f"stimulus: {t.size} breakpoint times but {c.size} current values")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(c))):
            raise DicsbiError("stimulus: breakpoint times and currents must be finite numbers")
        if t.size and np.any(np.diff(t) < 0):
            k = int(np.argmax(np.diff(t) < 0))
            raise DicsbiError(f"stimulus: breakpoint times must not decrease (t[{k}] = {t[k]} ms > "
                              f"t[{k + 1}] = {t[k + 1]} ms)")
        t.setflags(write=False)
        c.setflags(write=False)
        object.__setattr__(self, "times_ms", t)
        object.__setattr__(self, "current_uA_cm2", c)

    # ------------------------------------------------------------------ protocols
    @classmethod
    def none(cls) -> Stimulus:
        """Return the empty stimulus (no breakpoints: zero current throughout)."""
        return cls(np.empty(0), np.empty(0))

    @classmethod
    def step(cls, start_ms: float, stop_ms: float, amplitude_uA_cm2: float) -> Stimulus:
        """Return a rectangular current pulse of ``amplitude`` from ``start_ms`` to ``stop_ms``."""
        if not stop_ms > start_ms:
            raise DicsbiError(f"stimulus step: stop ({stop_ms} ms) must come after start ({start_ms} ms)")
        a = float(amplitude_uA_cm2)
        return cls(np.array([start_ms, start_ms, stop_ms, stop_ms], dtype=float), np.array([0.0, a, a, 0.0]))

    @classmethod
    def ramp(cls, start_ms: float, stop_ms: float, from_uA_cm2: float, to_uA_cm2: float) -> Stimulus:
        """Return a current rising (or falling) linearly from ``from`` to ``to`` between ``start`` and ``stop``."""
        if not stop_ms > start_ms:
            raise DicsbiError(f"stimulus ramp: stop ({stop_ms} ms) must come after start ({start_ms} ms)")
        return cls(np.array([start_ms, start_ms, stop_ms, stop_ms], dtype=float),
                   np.array([0.0, from_uA_cm2, to_uA_cm2, 0.0], dtype=float))

    @classmethod
    def waveform(cls, start_ms: float, dt_ms: float, values_uA_cm2) -> Stimulus:
        """Return a sampled current (samples every ``dt_ms`` from ``start_ms``), linearly interpolated."""
        v = np.asarray(values_uA_cm2, dtype=float).ravel()
        if not dt_ms > 0 or v.size < 2:
            raise DicsbiError("stimulus waveform: need dt_ms > 0 and at least two samples")
        return cls(start_ms + dt_ms * np.arange(v.size), v)

    @classmethod
    def parse_step(cls, text: str) -> Stimulus:
        """``"START_MS:STOP_MS:AMPLITUDE"`` (the CLI's ``--step``), e.g. ``"1000:2000:0.5"``."""
        m = re.fullmatch(r"\s*([-+0-9.eE]+):([-+0-9.eE]+):([-+0-9.eE]+)\s*", text)
        if not m:
            raise DicsbiError(f"--step {text!r}: expected START_MS:STOP_MS:AMPLITUDE, e.g. 1000:2000:0.5 "
                              "(ms on the recording's axis, uA/cm^2)")
        try:
            start, stop, amp = (float(x) for x in m.groups())
        except ValueError as exc:
            raise DicsbiError(f"--step {text!r}: {exc}") from None
        return cls.step(start, stop, amp)

    # ------------------------------------------------------------------ algebra and evaluation
    @property
    def is_empty(self) -> bool:
        """True when the stimulus has no breakpoints (zero current throughout)."""
        return self.times_ms.size == 0

    def __call__(self, t_ms):
        """Return the current at ``t_ms`` (right-continuous at jumps)."""
        t = np.asarray(t_ms, dtype=float)
        if self.is_empty:
            return np.zeros_like(t)
        tk, ck = self.times_ms, self.current_uA_cm2
        k = np.searchsorted(tk, t, side="right")  # breakpoints at or before t
        inside = (k > 0) & (k < tk.size)
        lo = np.clip(k - 1, 0, tk.size - 1)
        hi = np.clip(k, 0, tk.size - 1)
        span = tk[hi] - tk[lo]
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(span > 0, (t - tk[lo]) / span, 0.0)
        return np.where(inside, ck[lo] + w * (ck[hi] - ck[lo]), 0.0)

    def _limits(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Left and right limits of the current at times ``t``."""
        right = self(t)
        tk, ck = self.times_ms, self.current_uA_cm2
        left = np.empty_like(right)
        for n, x in enumerate(t):
            at = np.flatnonzero(tk == x)
            if at.size:  # a breakpoint: the left limit is the first value there (0 at the first breakpoint)
                left[n] = ck[at[0]] if at[0] > 0 else 0.0
            else:
                left[n] = right[n]
        return left, right

    def __add__(self, other: Stimulus) -> Stimulus:
        if not isinstance(other, Stimulus):
            return NotImplemented
        if self.is_empty:
            return other
        if other.is_empty:
            return self
        t = np.union1d(self.times_ms, other.times_ms)
        la, ra = self._limits(t)
        lb, rb = other._limits(t)
        times = np.repeat(t, 2)
        values = np.empty_like(times)
        values[0::2] = la + lb
        values[1::2] = ra + rb
        return Stimulus(times, values)

    def breakpoints_ms(self) -> np.ndarray:
        """Distinct breakpoint times (where the reference restarts its integration)."""
        return np.unique(self.times_ms)

    def to_dict(self) -> dict:
        """Return the breakpoints as a JSON-ready dict (``times_ms``, ``current_uA_cm2`` lists)."""
        return {"times_ms": self.times_ms.tolist(), "current_uA_cm2": self.current_uA_cm2.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Stimulus:
        """Build a stimulus from a dict written by :meth:`to_dict`."""
        return cls(d["times_ms"], d["current_uA_cm2"])

    def describe(self) -> str:
        """Return a one-line description: breakpoint count, time span and current range (``"none"`` when empty)."""
        if self.is_empty:
            return "none"
        return f"piecewise-linear current, {self.times_ms.size} breakpoints from {self.times_ms[0]:g} to " \
               f"{self.times_ms[-1]:g} ms, {self.current_uA_cm2.min():g} to {self.current_uA_cm2.max():g} uA/cm^2"


def as_stimuli(stimulus, n: int) -> tuple[list[Stimulus], np.ndarray]:
    """Normalise ``stimulus`` (None, one :class:`Stimulus` for all, or one per neuron) for ``n`` neurons.

    Returns the distinct stimuli and, per neuron, the index of its stimulus.
    """
    if stimulus is None:
        return [], np.zeros(n, np.int64)
    if isinstance(stimulus, Stimulus):
        return [stimulus], np.zeros(n, np.int64)
    items = list(stimulus)
    if len(items) != n or not all(isinstance(s, Stimulus) for s in items):
        raise DicsbiError(f"stimulus: expected one Stimulus or a sequence of {n} (one per neuron)")
    distinct: list[Stimulus] = []
    index = np.empty(n, np.int64)
    seen: dict[int, int] = {}
    for i, s in enumerate(items):
        if id(s) not in seen:
            seen[id(s)] = len(distinct)
            distinct.append(s)
        index[i] = seen[id(s)]
    return distinct, index


def pack(stimuli: list[Stimulus]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return padded arrays (times, currents, number of breakpoints) for the kernel; shape (0, 0) without any."""
    if not stimuli or all(s.is_empty for s in stimuli):
        return np.zeros((1, 0)), np.zeros((1, 0)), np.zeros(1, np.int64)
    width = max(s.times_ms.size for s in stimuli)
    t = np.zeros((len(stimuli), width))
    c = np.zeros((len(stimuli), width))
    n = np.zeros(len(stimuli), np.int64)
    for k, s in enumerate(stimuli):
        t[k, : s.times_ms.size] = s.times_ms
        c[k, : s.times_ms.size] = s.current_uA_cm2
        n[k] = s.times_ms.size
    return t, c, n
