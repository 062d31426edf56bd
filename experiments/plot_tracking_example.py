"""Figures of docs/modulation.md's tracking section: one STG neuron recorded for 60 s while a modulator slowly
turns it from tonic spiking to bursting (g_CaS x1.0 -> x2.4 and g_A x1.0 -> x0.7 in six 10 s steps, each step
simulated separately and the spike trains joined), tracked in windows of the posterior's training length (3 s)
every 1.5 s; the true (g_s, g_u) of the six steps is drawn on the trajectory (red).

    python experiments/plot_tracking_example.py   # -> docs/figures/tracking_trajectory.png, tracking_conductances.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dicsbi.compensation import generate_population
from dicsbi.dics import compute_dics
from dicsbi.io.files import atomic_write_bytes
from dicsbi.modulation.tracking import plot_conductances_over_time, plot_trajectory, track
from dicsbi.report.page import png_bytes
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains

STEP_S = 10.0
STEPS = 6


def main() -> None:
    g = generate_population("stg", 5.0, 5.0, 2, seed=21).conductances[:1]
    frac = np.linspace(0.0, 1.0, STEPS)
    cells = np.repeat(g, STEPS, axis=0)
    cells[:, 3] *= np.exp(frac * np.log(2.4))  # CaS
    cells[:, 5] *= np.exp(frac * np.log(0.7))  # A
    res = simulate("stg", cells, duration_ms=STEP_S * 1e3, seed=0)
    times = np.concatenate([res.trains[k] + k * STEP_S * 1e3 for k in range(STEPS)])
    trains = SpikeTrains.from_list([times], 0.0, STEPS * STEP_S * 1e3, ids=["LP"])
    tr = track(trains, "stg", n_models=100, seed=0)
    out = Path(__file__).resolve().parents[1] / "docs" / "figures"
    fig = plot_trajectory(tr)
    truth = compute_dics("stg", cells)[:, 1:]
    fig.axes[0].plot(truth[:, 0], truth[:, 1], "o--", color="#d62728", ms=4, label="true DICs of the 6 steps")
    fig.axes[0].legend(loc="upper right", fontsize=7)
    atomic_write_bytes(out / "tracking_trajectory.png", png_bytes(fig))
    atomic_write_bytes(out / "tracking_conductances.png", png_bytes(plot_conductances_over_time(tr, "LP")))
    print(f"{tr.n_windows} windows; g_s median from {tr.dic_median[0, 0]:.1f} to {tr.dic_median[-1, 0]:.1f}; "
          f"true g_s from {truth[0, 0]:.1f} to {truth[-1, 0]:.1f}")


if __name__ == "__main__":
    main()
