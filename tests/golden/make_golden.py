"""Write the golden outputs of ``infer`` and ``modulate`` on the shipped examples (``tests/test_golden.py``).

Run only when an output changes on purpose, in a commit of its own that says why:

    python tests/golden/make_golden.py [infer] [modulate]

The runs are small (40 models per recording, 4 simulated in the check; 30 before-members and three
hypotheses for ``modulate``) so the comparison stays in the default suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INFER = {"n_models": 40, "check": 4, "seed": 3}
MODULATE = {"hypotheses": "CaS+A, H, A+H", "n_members": 30, "n_particles": 64, "seed": 5}
INFER_FILES = ("summary.csv", "populations.csv", "posterior.nc")
MODULATE_FILES = ("hypotheses.csv", "channels.csv", "changes.csv", "modulation.nc")


def run_infer(out: Path) -> Path:
    from dicsbi.io.readers import read_spike_trains
    from dicsbi.pipeline import run_to_folder
    from dicsbi.posterior.artifact import load_posterior

    trains, _ = read_spike_trains(ROOT / "examples" / "stg_recordings.csv")
    out.mkdir(parents=True, exist_ok=True)
    run_to_folder(trains, out, "stg", INFER["n_models"], load_posterior("stg"), seed=INFER["seed"],
                  check=INFER["check"])
    return out


def run_modulate(out: Path) -> Path:
    from dicsbi.io.readers import read_spike_trains
    from dicsbi.modulation import modulate
    from dicsbi.modulation.output import write_modulation
    from dicsbi.posterior.artifact import load_posterior

    b, _ = read_spike_trains(ROOT / "examples" / "stg_before.csv")
    a, _ = read_spike_trains(ROOT / "examples" / "stg_after.csv")
    from dicsbi.modulation.options import ComparisonOptions

    res = modulate(b, a, "stg", MODULATE["hypotheses"], n_members=MODULATE["n_members"],
                   posterior=load_posterior("stg"), seed=MODULATE["seed"],
                   options=ComparisonOptions(n_particles=MODULATE["n_particles"]))
    out.mkdir(parents=True, exist_ok=True)
    write_modulation(res, out, maps=False)
    return out


def main() -> None:
    import shutil
    import tempfile

    only = sys.argv[1:] or ["infer", "modulate"]  # e.g. `make_golden.py modulate`: rewrite that one only
    with tempfile.TemporaryDirectory() as tmp:
        for name, run, files in (("infer", run_infer, INFER_FILES), ("modulate", run_modulate, MODULATE_FILES)):
            if name not in only:
                continue
            made = run(Path(tmp) / name)
            dest = HERE / name
            dest.mkdir(exist_ok=True)
            for f in files:
                shutil.copyfile(made / f, dest / f)
            print(f"wrote {', '.join(files)} to {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
