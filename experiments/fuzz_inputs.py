"""Coverage-guided fuzzing (atheris / libFuzzer) of the spike-time readers: Spike2Pop and long CSV, and NWB.

Every input must either read or raise a ``DicsbiError``; any other exception is a finding (libFuzzer stops
and writes the crashing input).  Seeds: the shipped example CSVs, a long CSV and a small NWB file.  A fixed
budget per target (``--seconds``); the corpus lives in ``out/fuzz/<target>`` so later runs continue from it.

    pip install atheris
    python experiments/fuzz_inputs.py --target csv --seconds 300
    python experiments/fuzz_inputs.py --target nwb --seconds 300

What it found so far is in docs/errors.md ("Fuzzing").  Ends with one line:
target=<csv|nwb> seconds=<s> runs=<n> findings=<n>
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _seed_corpus(target: str, corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    if target == "csv":
        for p in (ROOT / "examples").glob("*_recordings.csv"):
            (corpus / p.name).write_bytes(p.read_bytes()[:4000])
        (corpus / "long.csv").write_bytes(b"id,spike_time [s]\na,0.1\na,0.25\nb,1.5\nb,1.75\nb,2\n")
    else:
        import numpy as np

        from dicsbi.spikes import SpikeTrains

        path = corpus / "seed.nwb"
        _write_nwb(path, SpikeTrains.from_list([np.array([10.0, 20.0, 35.0]), np.array([5.0, 50.0, 90.0])],
                                               ids=["u1", "u2"]))


def _write_nwb(path: Path, trains) -> None:
    from datetime import UTC, datetime

    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="fuzz seed", identifier="seed", session_start_time=datetime.now(UTC))
    nwb.add_unit_column("unit_name", "name")
    for i, t in enumerate(trains):
        nwb.add_unit(spike_times=t / 1000.0, unit_name=str(trains.ids[i]))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _harness(target: str) -> None:
    """Runs inside the libFuzzer process."""
    import atheris

    with atheris.instrument_imports():
        from dicsbi.errors import DicsbiError
        from dicsbi.io.readers import read_spike_trains
    suffix = ".nwb" if target == "nwb" else ".csv"
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    os.close(fd)

    def one_input(data: bytes) -> None:
        Path(tmp).write_bytes(data)
        try:
            read_spike_trains(tmp)
        except DicsbiError:
            pass

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def main() -> None:
    if os.environ.get("DICSBI_FUZZ_CHILD"):
        _harness(os.environ["DICSBI_FUZZ_CHILD"])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", choices=["csv", "nwb"], default="csv")
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--work", default="out/fuzz")
    args = ap.parse_args()
    corpus = Path(args.work) / args.target
    crashes = Path(args.work) / f"{args.target}-findings"
    crashes.mkdir(parents=True, exist_ok=True)
    _seed_corpus(args.target, corpus)
    cmd = [sys.executable, __file__, str(corpus), f"-max_total_time={args.seconds}", "-max_len=4096",
           f"-artifact_prefix={crashes}/", "-print_final_stats=1"]
    r = subprocess.run(cmd, env={**os.environ, "DICSBI_FUZZ_CHILD": args.target}, capture_output=True, text=True)
    log = r.stdout + r.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    findings = sorted(crashes.glob("crash-*")) + sorted(crashes.glob("oom-*")) + sorted(crashes.glob("timeout-*"))
    tail = [ln for ln in log.splitlines() if "Uncaught" in ln or "Error" in ln][-5:]
    for ln in tail:
        print(ln)
    print(f"corpus {corpus} ({len(list(corpus.iterdir()))} inputs); findings in {crashes}: {len(findings)}")
    print(f"target={args.target} seconds={args.seconds} runs={runs[-1] if runs else 0} findings={len(findings)}")


if __name__ == "__main__":
    main()
