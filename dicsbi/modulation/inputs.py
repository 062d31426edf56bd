"""What :func:`~dicsbi.modulation.compare.modulate` and the cost rule accept as before and after recordings.

Before: spike trains (a :class:`~dicsbi.spikes.SpikeTrains`, a file or a list of arrays) or before-populations
already inferred (an :class:`~dicsbi.pipeline.InferenceResult`); after: spike trains.  Recordings are matched by
ID, every train is checked (:func:`dicsbi.spikes.first_train_problem`) and silent ones are refused.
"""

from __future__ import annotations

import numpy as np

from ..errors import DicsbiError, InputError
from ..spikes import MIN_SPIKES, SpikeTrains, first_train_problem


class ModelMismatchError(DicsbiError):
    """Before and after inputs (or a posterior) belong to different models."""


def _as_trains(x, name: str) -> SpikeTrains:
    """Spike trains from a :class:`SpikeTrains`, a file or a list of arrays, each checked (one error naming it)."""
    from ..io.readers import read_spike_trains

    if isinstance(x, str) or hasattr(x, "__fspath__"):
        return read_spike_trains(x)[0]
    try:
        trains = x if isinstance(x, SpikeTrains) else SpikeTrains.from_list(x, 0.0)
    except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
        raise InputError(f"{name}: expected spike trains (a SpikeTrains, a file or a list of arrays): {exc}") from exc
    problem = first_train_problem(trains)
    if problem:
        raise InputError(f"{name}: train {trains.ids[problem[0]]!r}: {problem[1]}")
    return trains


def match_recordings(before: SpikeTrains, after: SpikeTrains, names=("before", "after")):
    """Pair recordings by ID; returns (before, after) in the before file's order or raises a clear error."""
    b_ids, a_ids = [str(i) for i in before.ids], [str(i) for i in after.ids]
    for ids, name in ((b_ids, names[0]), (a_ids, names[1])):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise InputError(f"{name}: recording ID(s) {', '.join(dup)} appear more than once")
    only_b, only_a = [i for i in b_ids if i not in a_ids], [i for i in a_ids if i not in b_ids]
    if only_b or only_a:
        parts = []
        if only_b:
            parts.append(f"in {names[0]} only: {', '.join(only_b[:10])}")
        if only_a:
            parts.append(f"in {names[1]} only: {', '.join(only_a[:10])}")
        raise InputError("before and after recordings must have the same IDs (one pair per neuron); "
                         + "; ".join(parts))
    index = {i: k for k, i in enumerate(a_ids)}
    return before, after.select([index[i] for i in b_ids])


def _check_not_silent(trains: SpikeTrains, name: str) -> None:
    silent = [str(trains.ids[k]) for k in np.flatnonzero(trains.counts < MIN_SPIKES)]
    if silent:
        raise InputError(f"{name}: recording(s) {', '.join(silent[:10])} have fewer than {MIN_SPIKES} spikes; a "
                         "silent recording has no DIC posterior, so a modulation into or out of silence cannot be "
                         "compared in DIC space (drop the neuron, or record a longer window)")


def rate_hz(trains: SpikeTrains) -> np.ndarray:
    """Mean firing rate of each train over its recording window (Hz)."""
    return trains.counts / np.maximum(trains.duration_ms, 1e-9) * 1e3


def prepare_inputs(before, after, m, post, n_members: int, seed: int, progress: bool):
    """Infer the before-populations and match the after trains of :func:`modulate`'s inputs.

    ``before_trains`` is None when ``before`` is an :class:`~dicsbi.pipeline.InferenceResult`.
    """
    from ..pipeline import InferenceResult, infer

    if isinstance(before, InferenceResult):
        if before.model != m.name:
            raise ModelMismatchError(f"the before-populations are for model {before.model!r}, not {m.name!r}")
        pre = before
        before_trains = None
    else:
        before_trains = _as_trains(before, "before")
    if isinstance(after, InferenceResult):
        raise DicsbiError("after must be spike trains: the after recording enters through its DIC posterior")
    after_trains = _as_trains(after, "after")
    _check_not_silent(after_trains, "after")
    if not isinstance(before, InferenceResult):
        assert before_trains is not None
        _check_not_silent(before_trains, "before")
        before_trains, after_trains = match_recordings(before_trains, after_trains)
        pre = infer(before_trains, m.name, n_members, post, seed, progress=progress)
    else:
        ids = [r.id for r in pre.recordings]
        index = {str(i): k for k, i in enumerate(after_trains.ids)}
        missing = [i for i in ids if i not in index]
        if missing or len(ids) != len(after_trains):
            raise InputError(f"before-populations and after recordings must have the same IDs; before: "
                             f"{', '.join(ids[:10])}; after: {', '.join(map(str, after_trains.ids[:10]))}")
        after_trains = after_trains.select([index[i] for i in ids])
    if pre.unreachable:
        raise DicsbiError(f"no before-population for {', '.join(pre.unreachable)}: none of its posterior samples "
                          "can be reached by compensation")
    return pre, before_trains, after_trains
