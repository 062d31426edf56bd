"""The CUDA backend against the CPU kernel: agreement and speed, in one run of a few minutes on a GPU machine.

Runs from the source tree with numpy, scipy and numba(-cuda) only (no sbi, pyro or arviz):

    PYTHONPATH=. python experiments/gpu_bench.py               # or experiments/gpu_bench.sh
    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=. python experiments/gpu_bench.py --n 8 --duration-ms 50 --transient-ms 20

Per model: ``--n`` cells drawn uniformly in the model's conductance box (the same cells on both backends),
``--transient-ms`` + ``--duration-ms`` at the fast tier, noise-free and with noise (``--noise-std``), simulated
on all CPU cores and on the GPU.  Prints firing-class agreement, spike counts within max(1, 2%), the largest
spike-time difference of equal-count trains, and throughput (neuron-steps per second, ns per neuron-step,
simulated training cells (3 s + 3 s STG, 3 s + 9 s DA) per second).

Ends with one line: gpu_class_agreement_<m>=.. gpu_count_ok_<m>=.. gpu_speedup_vs_cpu_<m>=..
gpu_ns_per_step_<m>=.. gpu_cells_per_s_<m>=..
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from dicsbi.models import get_model
from dicsbi.simulate import simulate
from dicsbi.spikes import firing_class


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="stg,da")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--transient-ms", type=float, default=1000.0)
    ap.add_argument("--duration-ms", type=float, default=2000.0)
    ap.add_argument("--noise-std", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"CPU cores: {os.cpu_count()}; CUDA simulator: {os.environ.get('NUMBA_ENABLE_CUDASIM', '0') == '1'}")
    line = []
    for name in args.models.split(","):
        model = get_model(name)
        rng = np.random.default_rng(args.seed)
        g = rng.uniform(model.lower_bounds, model.upper_bounds, size=(args.n, model.n_conductances))
        d, tr = args.duration_ms, args.transient_ms
        for label, noise in (("noise-free", 0.0), (f"noise {args.noise_std:g}", args.noise_std)):
            simulate(model, g[:2], 5.0, None, 0.0, tier="fast", device="cuda")  # compile
            simulate(model, g[:2], 5.0, None, 0.0, tier="fast")
            t0 = time.perf_counter()
            cpu = simulate(model, g, d, None, tr, tier="fast", noise_std=noise, seed=args.seed)
            t_cpu = time.perf_counter() - t0
            t0 = time.perf_counter()
            gpu = simulate(model, g, d, None, tr, tier="fast", noise_std=noise, seed=args.seed, device="cuda")
            t_gpu = time.perf_counter() - t0
            c0, c1 = firing_class(cpu.trains), firing_class(gpu.trains)
            n0, n1 = cpu.trains.counts, gpu.trains.counts
            count_ok = np.abs(n1 - n0) <= np.maximum(1, 0.02 * n0)
            same = np.flatnonzero(n0 == n1)
            dt_max = max((float(np.abs(cpu.trains[k] - gpu.trains[k]).max()) for k in same if n0[k]), default=0.0)
            steps = args.n * round((d + tr) / model.tier_dt_ms("fast"))
            ns = t_gpu / steps * 1e9
            cell_steps = round((model.default_transient_ms + model.default_duration_ms) / model.tier_dt_ms("fast"))
            cells = 1e9 / (ns * cell_steps)
            print(f"{name} {label}: {args.n} cells x {d + tr:.0f} ms; CPU {t_cpu:.2f} s, GPU {t_gpu:.2f} s "
                  f"({t_cpu / t_gpu:.1f}x; {ns:.3f} ns per neuron-step, {cells:.0f} training cells/s); class "
                  f"agreement {np.mean(c0 == c1):.4f}, counts within max(1, 2%) {count_ok.mean():.4f}, largest "
                  f"spike-time difference at equal counts {dt_max:.3g} ms", flush=True)
            if noise == 0.0:
                line += [f"gpu_class_agreement_{name}={np.mean(c0 == c1):.4f}",
                         f"gpu_count_ok_{name}={count_ok.mean():.4f}",
                         f"gpu_speedup_vs_cpu_{name}={t_cpu / t_gpu:.3f}", f"gpu_ns_per_step_{name}={ns:.4f}",
                         f"gpu_cells_per_s_{name}={cells:.1f}"]
    print(" ".join(line))


if __name__ == "__main__":
    main()
