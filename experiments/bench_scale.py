"""Scale: 100,000 recordings in one CSV, and one recording of 1,000,000 spikes, through ``dicsbi infer``.

Both run as subprocesses (the real command, end to end: reading, posterior, populations, streamed tables,
merged netCDF, report); peak memory is the child's maximum resident set size.  The 100k file repeats 40
freshly simulated STG trains (tonic and bursting) under distinct IDs; the 1M-spike recording is a jittered
tonic train (~10,000 s).  ``dicsbi infer`` processes recordings in chunks of 256 (``iter_infer``), so memory
stays flat as the number of recordings grows: compare ``peak_mb_100k`` with the 10k run printed first.

    python experiments/bench_scale.py [--n-models 5] [--recordings 100000]

Ends with one line: s_100k_recordings=<x> peak_mb_100k=<x> s_1m_spikes=<x> peak_mb_1m=<x>
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_infer import recordings  # noqa: E402

from dicsbi.io.tables import write_spike2pop_csv  # noqa: E402
from dicsbi.spikes import SpikeTrains  # noqa: E402


def run_infer(csv: Path, out: Path, n_models: int) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of one ``dicsbi infer`` child process."""
    cmd = [sys.executable, "-c", "import resource, sys; from dicsbi.cli import main; sys.argv = sys.argv[1:]; "
           "exec('try:\\n main()\\nfinally:\\n print(\"PEAK_KB\", resource.getrusage(resource.RUSAGE_SELF)"
           ".ru_maxrss, file=sys.stderr)')", "dicsbi", "infer", str(csv), "--out", str(out), "--n-models",
           str(n_models), "--no-progress"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    peak_kb = int(r.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-models", type=int, default=5)
    ap.add_argument("--recordings", type=int, default=100_000)
    ap.add_argument("--spikes", type=int, default=1_000_000)
    args = ap.parse_args()
    base = recordings(10, 4, 0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures = {}
        for n in (args.recordings // 10, args.recordings):
            big = SpikeTrains.from_list([base[k % len(base)] for k in range(n)], 0.0, 3000.0,
                                        ids=[f"r{k}" for k in range(n)])
            csv = tmp / f"rec{n}.csv"
            write_spike2pop_csv(csv, big)
            s, mb = run_infer(csv, tmp / f"out{n}", args.n_models)
            rows = sum(1 for _ in open(tmp / f"out{n}" / "populations.csv")) - 1
            print(f"{n} recordings ({csv.stat().st_size / 1e6:.0f} MB CSV) x {args.n_models} models: {s:.1f} s, "
                  f"peak {mb:.0f} MB, {rows} population rows", flush=True)
            figures[n] = (s, mb)
        rng = np.random.default_rng(0)
        isi = np.clip(rng.normal(10.0, 1.0, args.spikes), 2.0, None)
        one = SpikeTrains.from_list([np.cumsum(isi)], 0.0, None, ids=["long"])
        csv = tmp / "long.csv"
        write_spike2pop_csv(csv, one)
        s1m, mb1m = run_infer(csv, tmp / "out_long", 100)
        print(f"1 recording of {args.spikes} spikes ({one.t_stop_ms[0] / 1000:.0f} s, {csv.stat().st_size / 1e6:.0f} "
              f"MB CSV) x 100 models: {s1m:.1f} s, peak {mb1m:.0f} MB", flush=True)
    s100k, mb100k = figures[args.recordings]
    print(f"s_100k_recordings={s100k:.1f} peak_mb_100k={mb100k:.0f} s_1m_spikes={s1m:.1f} peak_mb_1m={mb1m:.0f}")


if __name__ == "__main__":
    main()
