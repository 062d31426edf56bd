"""Do inferred populations reproduce their recordings?  (Posterior predictive check at scale.)

Fresh recordings per model (tonic and bursting cells from seeded DIC targets, plus noisy-current cells at 5
uA/cm^2) go through the pipeline with ``check=20``: 20 population members per recording are simulated and
compared with the recording.  Printed: the fraction of members with the recording's firing class and with its
main frequency within 10% (spiking frequency for tonic, burst frequency for bursting), overall and per kind,
next to a baseline that draws the DIC targets from the prior box instead of the posterior, and (``--oracle``)
a ceiling that uses every recording's true DIC target: how well DIC matching alone can reproduce a cell.

    python experiments/eval_populations.py --model stg [--n-recordings 200] [--posterior PATH]

Ends with one line: model=M class_match=.. freq_match=.. class_match_prior=.. freq_match_prior=..
"""

from __future__ import annotations

import argparse

import numpy as np

from dicsbi.compensation import generate_population
from dicsbi.models import get_model
from dicsbi.pipeline import infer
from dicsbi.posterior.artifact import load_posterior
from dicsbi.simulate import simulate
from dicsbi.spikes import SpikeTrains, firing_class


class OraclePosterior:
    """Ceiling: every 'posterior sample' is the recording's true DIC target (what DIC matching alone can do)."""

    def __init__(self, post, targets):
        self.__dict__.update({k: getattr(post, k) for k in ("model", "vth_mV", "config")})
        self._targets = {str(i): t for i, t in targets.items()}

    def sample(self, trains, n, seed=0):
        return np.stack([np.repeat(self._targets[str(i)][None], n, 0) for i in trains.ids])


class PriorPosterior:
    """Baseline: the posterior replaced by the prior box (same interface as DICPosterior.sample)."""

    def __init__(self, post):
        self.__dict__.update({k: getattr(post, k) for k in ("model", "vth_mV", "config")})
        self._box = np.asarray(post.config.box, dtype=float)

    def sample(self, trains, n, seed=0):
        rng = np.random.default_rng(seed)
        lo, hi = self._box[:, 0], self._box[:, 1]
        return lo + (hi - lo) * rng.random((len(trains), n, 2))


def fresh_recordings(model: str, n: int, seed: int) -> tuple[SpikeTrains, np.ndarray, dict]:
    """n non-silent recordings: a third noisy (5 uA/cm^2); returns trains, a kind label per recording and the
    true DIC target per recording id."""
    m = get_model(model)
    (a, b), (c, d) = m.dic_box
    rng = np.random.default_rng(seed)
    trains, kinds, targets = [], [], {}
    while len(trains) < n:
        gs, gu = rng.uniform(a, b), rng.uniform(c, d)
        try:
            pop = generate_population(m, gs, gu, 1, seed=int(rng.integers(2**31)))
        except Exception:
            continue
        noisy = len(trains) % 3 == 2
        res = simulate(m, pop.conductances, noise_std=5.0 if noisy else 0.0, seed=int(rng.integers(2**31)))
        if res.trains.counts[0] < 3:
            continue
        cls = int(firing_class(res.trains)[0])
        targets[f"rec{len(trains)}"] = np.array([gs, gu])
        trains.append(res.trains[0])
        kinds.append("noisy" if noisy else ("tonic" if cls == 1 else "bursting"))
    ids = [f"rec{k}" for k in range(n)]
    return SpikeTrains.from_list(trains, 0.0, m.default_duration_ms, ids=ids), np.array(kinds), targets


def scores(res, kinds):
    cm = np.array([r.check["class_match"] for r in res.recordings])
    fm = np.array([r.check["freq_match"] for r in res.recordings])
    out = {"all": (cm.mean(), fm.mean())}
    for k in ("tonic", "bursting", "noisy"):
        sel = kinds == k
        if sel.any():
            out[k] = (cm[sel].mean(), fm[sel].mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--n-recordings", type=int, default=200)
    ap.add_argument("--n-models", type=int, default=100)
    ap.add_argument("--check", type=int, default=20)
    ap.add_argument("--posterior", default=None)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--oracle", action="store_true", help="also run with the true DIC targets as 'posterior' "
                    "(the ceiling of DIC matching: populations differ from the recorded cell outside the DICs)")
    args = ap.parse_args()
    post = load_posterior(args.posterior or args.model, model=args.model)
    trains, kinds, targets = fresh_recordings(args.model, args.n_recordings, args.seed)
    print(f"{len(trains)} recordings: " + ", ".join(f"{k} {int((kinds == k).sum())}" for k in np.unique(kinds)))
    res = infer(trains, args.model, args.n_models, posterior=post, seed=args.seed, check=args.check, progress=True)
    base = infer(trains, args.model, args.n_models, posterior=PriorPosterior(post), seed=args.seed,
                 check=args.check, progress=True)
    s, p = scores(res, kinds), scores(base, kinds)
    o = None
    if args.oracle:
        o = scores(infer(trains, args.model, args.n_models, posterior=OraclePosterior(post, targets),
                         seed=args.seed, check=args.check, progress=True), kinds)
    print(f"{'':10} {'class match':>12} {'freq within 10%':>16} {'prior: class':>13} {'prior: freq':>12}"
          + (f" {'true DICs: class':>17} {'true DICs: freq':>16}" if o else ""))
    for k in s:
        print(f"{k:10} {s[k][0]:12.3f} {s[k][1]:16.3f} {p[k][0]:13.3f} {p[k][1]:12.3f}"
              + (f" {o[k][0]:17.3f} {o[k][1]:16.3f}" if o else ""))
    print(f"model={args.model} class_match={s['all'][0]:.4f} freq_match={s['all'][1]:.4f} "
          f"class_match_prior={p['all'][0]:.4f} freq_match_prior={p['all'][1]:.4f}")


if __name__ == "__main__":
    main()
