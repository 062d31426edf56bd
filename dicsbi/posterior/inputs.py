"""What the posterior accepts as spike trains, and how it reads a train longer than the training window.

:func:`as_trains` accepts one train or many, checked; :func:`first_window` reads a long train over its first
window.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..spikes import MIN_SPIKES, SpikeTrains, first_train_problem


# ---------------------------------------------------------------------------- input checking
def as_trains(trains, name: str = "spike trains") -> SpikeTrains:
    """Accept spike trains in any of the forms below, check every train and return them as :class:`SpikeTrains`.

    The forms: a :class:`SpikeTrains`, one array of spike times, a list of arrays or Neo spike trains (a
    ``neo.SpikeTrain``, a list of them, a ``Segment`` or a ``Block``; see :func:`dicsbi.io.from_neo`).

    A train must be finite, non-negative, strictly increasing and hold at least 3 spikes; the error names the
    train (its id) and what is wrong.
    """
    if type(trains).__module__.startswith("neo") or (
            isinstance(trains, (list, tuple)) and trains and type(trains[0]).__module__.startswith("neo")):
        from ..io.readers import from_neo

        trains = from_neo(trains, name)
    if not isinstance(trains, SpikeTrains):
        if isinstance(trains, np.ndarray) and trains.ndim == 1 or (
                isinstance(trains, (list, tuple)) and trains and np.isscalar(trains[0])):
            trains = [trains]
        try:
            trains = SpikeTrains.from_list([np.asarray(t, dtype=float) for t in trains], 0.0)
        except (TypeError, ValueError) as e:
            raise InputError(f"{name}: expected arrays of spike times in ms ({e})") from None
    if len(trains) == 0:
        raise InputError(f"{name}: no spike train given")
    problem = first_train_problem(trains)
    if problem:
        raise InputError(f"{name}: train {trains.ids[problem[0]]!r}: {problem[1]}")
    few = np.flatnonzero(trains.counts < MIN_SPIKES)
    if few.size:
        i = int(few[0])
        raise InputError(f"{name}: train {trains.ids[i]!r} has {trains.counts[i]} spikes; at least {MIN_SPIKES} "
                         "are needed (fewer is 'silent', which has no DIC posterior)")
    return trains


def first_window(trains: SpikeTrains, window_ms: float) -> SpikeTrains:
    """Cut each train whose spikes span more than ``window_ms`` to the ``window_ms`` from its first spike.

    The cut starts at the first spike, not at ``t_start``: files of absolute times may start long after 0.
    Other trains are returned as given.
    """
    t, off, has = trains.times_ms, trains.offsets, trains.counts > 0
    if not has.any():
        return trains
    first = np.where(has, t[np.minimum(off[:-1], t.size - 1)], trains.t_start_ms)
    last = np.where(has, t[np.maximum(off[1:] - 1, 0)], trains.t_start_ms)
    long = last - first > window_ms
    if not long.any():
        return trains
    out = [t[t <= a + window_ms] if cut else t for t, a, cut in zip(trains, first, long)]
    starts = np.where(long, first, trains.t_start_ms)
    stops = np.where(long, first + window_ms, trains.t_stop_ms)
    return SpikeTrains.from_list(out, starts, stops, ids=list(trains.ids))


def _is_single(trains) -> bool:
    return (isinstance(trains, np.ndarray) and trains.ndim == 1) or (
        isinstance(trains, (list, tuple)) and len(trains) > 0 and np.isscalar(trains[0]))
