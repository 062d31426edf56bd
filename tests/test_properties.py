"""Property-based tests: any input either works or gives a dicsbi error, never an unhandled exception."""

import csv
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicsbi.errors import DicsbiError
from dicsbi.io.readers import read_spike_trains
from dicsbi.posterior.summary import summary_statistics

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

cell = st.one_of(st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.lists(st.floats(-1e6, 1e6), max_size=6).map(lambda v: "[" + ", ".join(map(str, v)) + "]"))
header = st.sampled_from([["ID", "spiking_times"], ["id", "spike_time"], ["ID", "spiking_times [s]"],
                          ["id", "t"], ["name", "times"], ["ID", "spiking_times", "extra"]])


@SETTINGS
@given(header, st.lists(st.lists(cell, min_size=0, max_size=3), max_size=8), st.booleans())
def test_any_csv_reads_or_raises_a_dicsbi_error(tmp_path, head, rows, skip_bad):
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows(rows)
    p = tmp_path / "spikes.csv"
    p.write_text(buf.getvalue())
    try:
        trains, skipped = read_spike_trains(p, skip_bad=skip_bad)
    except DicsbiError as e:
        assert str(p) in str(e)  # the message names the file
        return
    assert len(trains) >= 1
    for t in trains:
        assert np.all(np.isfinite(t)) and np.all(t >= 0) and np.all(np.diff(t) > 0)


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_read_or_raise_a_dicsbi_error(tmp_path, data):
    p = tmp_path / "spikes.csv"
    p.write_bytes(data)
    try:
        read_spike_trains(p)
    except DicsbiError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(1e-3, 1e4), min_size=3, max_size=300), st.floats(0.0, 1e6))
def test_features_of_any_finite_sorted_train_are_finite(isis, start):
    """Any train of >= 3 strictly increasing finite times gives finite summary statistics and sequence input."""
    from dicsbi.posterior.embedding import sequence_array, sequence_stats
    from dicsbi.spikes import SpikeTrains

    t = start + np.cumsum(isis)
    if not np.all(np.diff(t) > 0):  # float rounding at large start times can merge spikes: not a valid train
        return
    trains = SpikeTrains.from_list([t])
    x = summary_statistics(trains)
    assert x.shape == (1, 22) and np.all(np.isfinite(x))
    seq = sequence_array(trains, sequence_stats(SpikeTrains.from_list([np.cumsum(np.full(20, 10.0))])))
    assert np.all(np.isfinite(seq))
