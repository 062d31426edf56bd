"""Write the shipped modulation example: two STG neurons before and after a 'dopamine on LP'-like change
(g_A x0.7, g_H x1.5; Harris-Warrick et al. 1995 directions, magnitudes chosen, see
../shared/reference/dic-and-neuromodulation.md section 3.4 S1), simulated without noise.

    python experiments/make_modulation_example.py   # -> examples/stg_before.csv, examples/stg_after.csv
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dicsbi.compensation import generate_population
from dicsbi.io.tables import write_spike2pop_csv
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains, spike_features

FACTORS = {"g_A": 0.7, "g_H": 1.5}


def main() -> None:
    g = np.vstack([generate_population("stg", -5.0, 5.0, 4, seed=11).conductances[:1],
                   generate_population("stg", -3.0, 6.0, 4, seed=12).conductances[:1]])
    names = ["g_Na", "g_Kd", "g_CaT", "g_CaS", "g_KCa", "g_A", "g_H", "g_leak"]
    g_after = g.copy()
    for c, f in FACTORS.items():
        g_after[:, names.index(c)] *= f
    res = simulate("stg", np.vstack([g, g_after]), seed=0)
    out = Path(__file__).resolve().parents[1] / "examples"
    ids = ["LP1", "LP2"]
    for name, sel in (("stg_before.csv", [0, 1]), ("stg_after.csv", [2, 3])):
        tr = res.trains.select(sel)
        tr = SpikeTrains.from_list(tr.to_list(), 0.0, float(tr.t_stop_ms[0]), ids=ids)
        write_spike2pop_csv(out / name, tr)
        f = spike_features(tr)
        print(name, "spikes", tr.counts.tolist(), "class", f["firing_class"].tolist())


if __name__ == "__main__":
    main()
