"""Tracking: sliding windows, per-window posteriors and populations, table and figures."""

import numpy as np
import pytest

from dicsbi.errors import DicsbiError
from dicsbi.modulation.tracking import (
    plot_conductances_over_time,
    plot_trajectory,
    sliding_windows,
    track,
    tracking_table,
    write_tracking,
)
from dicsbi.spikes import SpikeTrains


def test_sliding_windows_cut_and_re_reference():
    a = np.array([0.0, 10.0, 25.0, 50.0, 74.9, 75.0, 99.0])
    b = np.array([101.0, 130.0, 160.0])
    trains = SpikeTrains.from_list([a, b], [0.0, 100.0], [100.0, 170.0], ids=["a", "b"])
    w, table = sliding_windows(trains, 50.0, 25.0)
    # a: windows at 0, 25, 50 (75 + 50 > 100); b (70 ms long): one window at 100, the 20 ms tail unused
    assert list(w.ids) == ["a@0", "a@25", "a@50", "b@100"]
    assert list(table["recording"]) == ["a", "a", "a", "b"] and list(table["window"]) == [0, 1, 2, 0]
    np.testing.assert_array_equal(table["t0_ms"], [0, 25, 50, 100])
    np.testing.assert_array_equal(table["t1_ms"], [50, 75, 100, 150])
    np.testing.assert_allclose(w[0], [0.0, 10.0, 25.0])  # half-open: 50 belongs to the next window
    np.testing.assert_allclose(w[1], [0.0, 25.0, 49.9])
    np.testing.assert_allclose(w[2], [0.0, 24.9, 25.0, 49.0])
    np.testing.assert_allclose(w[3], [1.0, 30.0])
    np.testing.assert_array_equal(w.t_start_ms, 0.0)
    np.testing.assert_array_equal(w.t_stop_ms, 50.0)
    # every spike of a window is a spike of its recording, shifted by t0
    for i in range(len(w)):
        rec = trains[list(trains.ids).index(table["recording"][i])]
        assert np.isin(w[i] + table["t0_ms"][i], rec).all()


def test_sliding_windows_exact_fit_and_long_times():
    trains = SpikeTrains.from_list([np.arange(0.0, 3e6, 100.0)], 0.0, 3e6, ids=["x"])
    w, table = sliding_windows(trains, 1e6, 5e5)
    assert len(w) == 5 and table["t1_ms"][-1] == 3e6
    assert w.ids[-1] == "x@2000000"  # ids stay exact for long recordings
    assert np.unique(w.ids).size == len(w)


@pytest.mark.parametrize("window, step, match", [(0.0, 10.0, "window_ms must be a positive"),
                                                 (50.0, -1.0, "step_ms must be a positive"),
                                                 (np.nan, 10.0, "window_ms must be a positive"),
                                                 (200.0, 10.0, "longer than recording 'a'")])
def test_sliding_windows_refuses_bad_settings(window, step, match):
    trains = SpikeTrains.from_list([[1.0, 2.0, 3.0]], 0.0, 100.0, ids=["a"])
    with pytest.raises(DicsbiError, match=match):
        sliding_windows(trains, window, step)


@pytest.fixture(scope="module")
def switching():
    """A tonic cell (g_s = 4) for 6 s, then a bursting cell (g_s = -8) for 6 s, as one 12 s recording, and a
    silent stretch after it."""
    from dicsbi.compensation import generate_population
    from dicsbi.simulate import simulate

    g = np.concatenate([generate_population("stg", 4.0, 5.0, 1, seed=1).conductances,
                        generate_population("stg", -8.0, 5.0, 1, seed=1).conductances])
    sim = simulate("stg", g, duration_ms=6000.0, seed=0)
    assert (sim.status == 0).all() and (sim.trains.counts > 20).all()
    t = np.concatenate([sim.trains[0], sim.trains[1] + 6000.0])
    trains = SpikeTrains.from_list([t], 0.0, 15000.0, ids=["cell"])
    return track(trains, "stg", n_models=20, seed=0)


def test_track_follows_a_switch_from_tonic_to_bursting(switching):
    t = switching
    assert t.settings["window_ms"] == 3000.0 and t.settings["step_ms"] == 1500.0  # the shipped posterior's window
    assert t.n_windows == 9 and list(t.windows["t0_ms"]) == [1500.0 * k for k in range(9)]
    first, second = t.windows["t1_ms"] <= 6000.0, (t.windows["t0_ms"] >= 6000.0) & (t.windows["t1_ms"] <= 12000.0)
    assert first.sum() == 3 and second.sum() == 3
    assert (t.firing_class[first] == 1).all() and (t.firing_class[second] == 2).all()
    g_s = t.dic_median[:, 0]
    assert (g_s[first] > 0).all() and (g_s[second] < 0).all()
    assert g_s[first].min() > g_s[second].max() + 5.0
    assert ((t.dic_q05 <= t.dic_median) & (t.dic_median <= t.dic_q95))[first | second].all()
    # the last window (12-15 s) has no spikes: silent, kept with NaN and no population
    assert t.silent == ["cell@12000"] and t.n_spikes[-1] == 0 and np.isnan(t.dic_median[-1]).all()
    assert t.conductances[-1].shape == (0, len(t.conductance_names))
    for i in np.flatnonzero(first | second):
        assert t.conductances[i].shape == (20, len(t.conductance_names)) and (t.conductances[i] > 0).all()


def test_track_outputs(switching, tmp_path):
    import matplotlib.pyplot as plt

    text = tracking_table(switching)
    lines = text.strip().split("\n")
    header = lines[0].split(",")
    assert header[:12] == ["recording", "window", "t0_ms", "t1_ms", "n_spikes", "firing_class", "g_s_median",
                           "g_s_q05", "g_s_q95", "g_u_median", "g_u_q05", "g_u_q95"]
    assert "g_Na_median [mS/cm^2]" in header and len(lines) == 1 + switching.n_windows
    assert lines[-1].split(",")[5] == "silent" and lines[-1].split(",")[6] == ""
    paths = write_tracking(switching, tmp_path)
    assert sorted(p.name for p in paths) == ["conductances.png", "tracking.csv", "trajectory.png"]
    assert (tmp_path / "tracking.csv").read_text() == text
    assert all((tmp_path / p.name).read_bytes()[:4] == b"\x89PNG" for p in paths if p.suffix == ".png")
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    fig, ax = plt.subplots()
    assert plot_trajectory(switching, "cell", ax=ax) is fig
    fig2, axes = plt.subplots(2, 4)
    assert plot_conductances_over_time(switching, ax=axes) is fig2
    plt.close("all")
    with pytest.raises(DicsbiError, match="no recording 'nope'"):
        plot_trajectory(switching, "nope")
    with pytest.raises(DicsbiError, match="does not exist"):
        write_tracking(switching, tmp_path / "missing")
