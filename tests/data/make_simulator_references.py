"""Write ``simulator_references.json``: the scipy reference trains of the sets in ``simulator_sets.json``.

The default suite compares the kernel with these stored trains (seconds); the ``slow`` test
``test_stored_references_are_scipys`` integrates the sets again with scipy and checks they still agree, so the
stored file cannot drift from an independent computation.  Regenerate after changing the sets or a model:

    python tests/data/make_simulator_references.py          # about two minutes on two cores
"""

from __future__ import annotations

import json
from pathlib import Path

from dicsbi.oracle import run_references

HERE = Path(__file__).parent
TOLERANCE = 1e-8  # LSODA rtol = atol, as validate_simulator.py


def main() -> None:
    sets = json.loads((HERE / "simulator_sets.json").read_text())
    out: dict = {"generated_by": "tests/data/make_simulator_references.py", "method": "LSODA",
                 "rtol": TOLERANCE, "atol": TOLERANCE, "duration_ms": sets["duration_ms"],
                 "transient_ms": sets["transient_ms"], "references": {}}
    for model, g in sets["sets"].items():
        refs = run_references(model, g, sets["duration_ms"], sets["transient_ms"], workers=2, tol=TOLERANCE)
        out["references"][model] = [{"spike_times_ms": r.spike_times_ms.tolist(), "marginal": bool(r.marginal)}
                                    for r in refs]
        print(f"{model}: {len(refs)} cells, {sum(len(r.spike_times_ms) for r in refs)} spikes")
    tmp = HERE / "simulator_references.json.tmp"
    tmp.write_text(json.dumps(out) + "\n")
    tmp.replace(HERE / "simulator_references.json")


if __name__ == "__main__":
    main()
