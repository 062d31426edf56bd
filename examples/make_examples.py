"""Write the example recordings in the Spike2Pop CSV shape (run from the repository root).

    python examples/make_examples.py

examples/stg_recordings.csv: three STG cells, a tonic spiker, a burster and an irregular (noise-driven) cell;
examples/da_recordings.csv: two DA cells, a tonic spiker and a slow burster.  Each cell is one valid model of a
population generated at a DIC target (seeded), simulated with the model's default window after its transient,
so the files are reproducible and their ground-truth targets are known (printed, and kept in the IDs' order
below).
"""

from __future__ import annotations

from pathlib import Path

from dicsbi.compensation import generate_population
from dicsbi.io.tables import write_spike2pop_csv
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains, firing_class

EXAMPLES = {
    "stg": [("stg_tonic", 8.0, 4.0, 0.0), ("stg_burst", -8.0, 6.0, 0.0), ("stg_irregular", 2.0, 2.0, 6.0)],
    "da": [("da_tonic", 4.0, 5.0, 0.0), ("da_burst", -6.0, 8.0, 0.0)],
}


def main() -> None:
    here = Path(__file__).parent
    for model, cells in EXAMPLES.items():
        trains, ids = [], []
        for k, (ident, gs, gu, noise) in enumerate(cells):
            pop = generate_population(model, gs, gu, 1, seed=100 + k)
            res = simulate(model, pop.conductances, noise_std=noise, seed=200 + k)
            trains.append(res.trains[0])
            ids.append(ident)
            cls = ("silent", "spiking", "bursting")[int(firing_class(res.trains)[0])]
            print(f"{model} {ident}: target (g_s, g_u) = ({gs}, {gu}), noise {noise} uA/cm^2, "
                  f"{res.trains.counts[0]} spikes, {cls}")
        out = here / f"{model}_recordings.csv"
        write_spike2pop_csv(out, SpikeTrains.from_list(trains, 0.0, res.settings["duration_ms"], ids=ids))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
