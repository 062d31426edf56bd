"""Reading recorded spike trains: every format, every malformed input, --skip-bad."""

from datetime import UTC

import numpy as np
import pytest

from dicsbi.errors import InputError
from dicsbi.io.readers import read_spike_trains
from dicsbi.io.tables import format_spike2pop_csv
from dicsbi.spikes import SpikeTrains


def write(tmp_path, text, name="spikes.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_spike2pop_round_trip(tmp_path):
    trains = SpikeTrains.from_list([[1.5, 10.25, 30.0], [], [5.0, 6.0, 7.5, 100.0]], 0.0, ids=["a", "b", "c"])
    p = write(tmp_path, format_spike2pop_csv(trains))
    got, skipped = read_spike_trains(p)
    assert skipped == [] and list(got.ids) == ["a", "b", "c"]
    for x, y in zip(got, trains):
        np.testing.assert_allclose(x, y)
    assert got.t_stop_ms.tolist() == [30.0, 0.0, 100.0]


def test_units_and_window(tmp_path):
    p = write(tmp_path, 'ID,spiking_times [s]\nn1,"[0.5, 1.0, 2.0]"\n')
    got, _ = read_spike_trains(p)
    np.testing.assert_allclose(got[0], [500.0, 1000.0, 2000.0])
    got, _ = read_spike_trains(write(tmp_path, 'ID,spiking_times\nn1,"[0.5, 1.0, 2.0]"\n', "b.csv"), unit="s",
                               t_stop_ms=3000.0)
    np.testing.assert_allclose(got[0], [500.0, 1000.0, 2000.0])
    assert got.t_stop_ms[0] == 3000.0
    with pytest.raises(InputError, match="unknown time unit 'min'"):
        read_spike_trains(p, unit="min")
    with pytest.raises(InputError, match=r"outside the recording window \[0.0, 1500.0\]"):
        read_spike_trains(p, t_stop_ms=1500.0)


def test_long_csv(tmp_path):
    p = write(tmp_path, "id,spike_time\nx,10.0\nx,25\ny,4\nx,30.0\ny,9\n")
    got, _ = read_spike_trains(p)
    assert list(got.ids) == ["x", "y"]
    np.testing.assert_allclose(got[0], [10.0, 25.0, 30.0])
    np.testing.assert_allclose(got[1], [4.0, 9.0])


def test_nwb_units_table(tmp_path):
    from datetime import datetime

    import pynwb

    nwb = pynwb.NWBFile(session_description="test", identifier="id1",
                        session_start_time=datetime(2026, 1, 1, tzinfo=UTC))
    nwb.add_unit_column(name="unit_name", description="label")
    nwb.add_unit(spike_times=[0.1, 0.2, 0.35], unit_name="cellA")
    nwb.add_unit(spike_times=[1.0, 1.5, 2.5, 3.0], unit_name="cellB")
    path = tmp_path / "rec.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    got, _ = read_spike_trains(path)
    assert list(got.ids) == ["cellA", "cellB"]
    np.testing.assert_allclose(got[0], [100.0, 200.0, 350.0])  # seconds -> ms
    np.testing.assert_allclose(got[1], [1000.0, 1500.0, 2500.0, 3000.0])
    (tmp_path / "bad.nwb").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="bad.nwb: cannot read as NWB"):
        read_spike_trains(tmp_path / "bad.nwb")


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("ID,spiking_times\n", "no rows after the header"),
    ("name,spiking_times\na,[1]\n", "row 1: no ID column"),
    ("ID,times_of_spikes\na,[1]\n", "row 1: no spike-time column"),
    ('ID,spiking_times\na,"[1, 2, 3]"\nb,"1, 2, 3"\n', "row 3, column spiking_times: expected a bracketed list"),
    ('ID,spiking_times\na,"[1, x, 3]"\n', "row 2, column spiking_times: cannot read the list"),
    ('ID,spiking_times\na,"[1, nan, 3]"\n', "row 2, column spiking_times: spike time nan is not a finite"),
    ('ID,spiking_times\na,"[-1, 2, 3]"\n', "row 2, column spiking_times: negative spike time -1.0"),
    ('ID,spiking_times\na,"[1, 3, 2]"\n', r"row 2, column spiking_times: spike times are not strictly increasing"),
    ('ID,spiking_times\na,"[1, 2]"\na,"[3, 4]"\n', "row 3, column spiking_times: ID 'a' repeats row 2"),
    ('ID,spiking_times\n,"[1, 2]"\n', "row 2: empty ID"),
    ("id,spike_time\na,1\na,oops\n", r"row 3, column spike_time: 'oops' is not a number"),
    ("id,spike_time\na,2\na,1\n", r"ID 'a' \(rows from 2\): spike times are not strictly increasing"),
])
def test_malformed_inputs_name_file_row_and_field(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as exc:
        read_spike_trains(p)
    assert str(p) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_spike_trains(tmp_path / "nope.csv")


def test_skip_bad_keeps_the_rest_and_reports(tmp_path):
    p = write(tmp_path, 'ID,spiking_times\na,"[1, 2, 3]"\nb,"[3, 1]"\nc,"[5, 6, 7]"\nd,"[1, nan]"\n')
    got, skipped = read_spike_trains(p, skip_bad=True)
    assert list(got.ids) == ["a", "c"] and len(skipped) == 2
    assert "row 3" in skipped[0] and "row 5" in skipped[1]
    with pytest.raises(InputError, match="no usable spike train"):
        read_spike_trains(write(tmp_path, 'ID,spiking_times\nb,"[3, 1]"\n', "all_bad.csv"), skip_bad=True)


def test_neo_spiketrains_and_neo_readable_file(tmp_path):
    neo = pytest.importorskip("neo")
    pq = pytest.importorskip("quantities")
    from dicsbi.io.readers import from_neo
    from dicsbi.posterior.inputs import as_trains

    a = neo.SpikeTrain([0.1, 0.25, 0.4] * pq.s, t_stop=1.0 * pq.s, name="u1")
    b = neo.SpikeTrain([10, 20, 35.5] * pq.ms, t_start=5 * pq.ms, t_stop=50 * pq.ms, name="u2")
    t = from_neo([a, b])
    assert list(t.ids) == ["u1", "u2"]
    np.testing.assert_allclose(t.times_ms, [100, 250, 400, 10, 20, 35.5])
    np.testing.assert_allclose(t.t_start_ms, [0, 5])
    np.testing.assert_allclose(t.t_stop_ms, [1000, 50])
    np.testing.assert_allclose(as_trains(a).times_ms, [100, 250, 400])  # the Python API takes Neo directly
    blk = neo.Block()
    seg = neo.Segment()
    seg.spiketrains += [a, b]
    blk.segments.append(seg)
    path = tmp_path / "rec.mat"
    neo.io.NeoMatlabIO(str(path)).write_block(blk)
    trains, skipped = read_spike_trains(path)
    assert list(trains.ids) == ["u1", "u2"] and not skipped
    np.testing.assert_allclose(trains[1], [10, 20, 35.5])
    with pytest.raises(InputError, match="ID 'u1' repeats"):
        from_neo([a, a])
    with pytest.raises(InputError, match="expected neo SpikeTrain"):
        from_neo([a, 3.0])
    (tmp_path / "junk.abf").write_bytes(b"not an abf file")
    with pytest.raises(InputError, match="junk.abf: cannot read spike trains with Neo"):
        read_spike_trains(tmp_path / "junk.abf")


def test_a_very_long_train_in_one_spike2pop_cell(tmp_path):
    t = np.cumsum(np.full(300_000, 10.0))  # ~3 MB in one CSV field (csv's default limit is 131 kB)
    p = tmp_path / "long.csv"
    p.write_text(format_spike2pop_csv(SpikeTrains.from_list([t], ids=["long"])))
    trains, _ = read_spike_trains(p)
    assert trains.counts[0] == 300_000 and trains[0][-1] == pytest.approx(t[-1])


def test_impossible_trains_are_refused_with_the_likely_cause(tmp_path):
    # times in seconds read as ms: intervals of 0.075 "ms"
    p = write(tmp_path, 'ID,spiking_times\nLP1,"[0.100, 0.175, 0.250, 0.325]"\n')
    with pytest.raises(InputError, match=r"spikes\.csv: row 2, column spiking_times: an interval of 0\.075 ms "
                                         r".* shorter than the 1 ms refractory floor .* in seconds\? use --unit s"):
        read_spike_trains(p)
    assert read_spike_trains(p, unit="s")[0][0] == pytest.approx([100.0, 175.0, 250.0, 325.0])
    # a double detection in a long recording: another hint
    p = write(tmp_path, 'ID,spiking_times\nLP1,"[1000, 1500, 1500.4, 2000]"\n', "double.csv")
    with pytest.raises(InputError, match=r"interval of 0\.4 ms .* two detections of one spike\?"):
        read_spike_trains(p)
    # microseconds read as ms: days into the recording
    p = write(tmp_path, "id,spike_time\nn1,1.2e8\nn1,2.5e8\n", "us.csv")
    with pytest.raises(InputError, match=r"us\.csv: ID 'n1' .* hours into the recording .* use --unit us"):
        read_spike_trains(p)
    assert read_spike_trains(p, unit="us")[0][0] == pytest.approx([1.2e5, 2.5e5])


def test_the_python_api_refuses_impossible_trains_too():
    from dicsbi.posterior.inputs import as_trains

    ok = as_trains([np.array([10.0, 30.0, 55.0]), np.array([5.0, 900.0, 1800.0])])
    assert len(ok) == 2
    with pytest.raises(InputError, match=r"train '1': an interval of 0\.05 ms .* in seconds\? use --unit s"):
        as_trains([np.array([10.0, 30.0, 55.0]), np.array([0.1, 0.15, 0.2])])
    with pytest.raises(InputError, match=r"train '0': spike time 1e\+11 ms .* hours into the recording"):
        as_trains([np.array([1e9, 5e10, 1e11])])


def test_absolute_times_with_their_window_start(tmp_path):
    p = write(tmp_path, 'ID,spiking_times\nLP1,"[3010.5, 3100, 3190.25]"\nPD1,"[3005, 3200]"\n')
    got, _ = read_spike_trains(p, t_start_ms=3000.0)
    assert got.t_start_ms.tolist() == [3000.0, 3000.0] and got.t_stop_ms.tolist() == [3190.25, 3200.0]
    np.testing.assert_allclose(got[0], [3010.5, 3100.0, 3190.25])  # times stay on the file's axis
    got, _ = read_spike_trains(p, t_start_ms=3000.0, t_stop_ms=4000.0)
    assert got.duration_ms.tolist() == [1000.0, 1000.0]
    # a spike before the window's start: one error naming the file, the row and the train
    with pytest.raises(InputError, match=r"row 3, column spiking_times \(train 'PD1'\): first spike at 3005\.0 ms "
                                         r"is before the start of the recording window, 3008\.0 ms") as exc:
        read_spike_trains(p, t_start_ms=3008.0)
    assert str(p) in str(exc.value) and "--t-start-ms" in str(exc.value)
    long = write(tmp_path, "id,spike_time\nx,3010\nx,3020\ny,2990\n", "long.csv")
    with pytest.raises(InputError, match=r"ID 'y' \(rows from 4\): first spike at 2990\.0 ms is before"):
        read_spike_trains(long, t_start_ms=3000.0)
    got, skipped = read_spike_trains(long, t_start_ms=3000.0, skip_bad=True)
    assert list(got.ids) == ["x"] and "'y'" in skipped[0]
    for start, stop in ((float("nan"), None), (3000.0, 3000.0), (3000.0, 2000.0)):
        with pytest.raises(InputError, match="is not a window"):
            read_spike_trains(p, t_start_ms=start, t_stop_ms=stop)
