"""Scores of a hypothesis comparison on scenarios with a known answer (the modulation benchmark).

A *row* is one scenario: ``truth_index`` (the true subset's position in the hypothesis list) and, per method,
either ``{"p": [...]}`` (posterior probabilities of every hypothesis), ``{"cost": [...], "fraction": [...]}`` (the
cost rule, ranked by :func:`~dicsbi.modulation.cost_rule.order_by_cost`) or ``{"failed": reason}`` (the method
refused the scenario: scored as a miss with top-1 confidence 1/H and channel AUC 0.5).

Figures: rank of the truth, top-1, top-3, top-3 up to the near-collinear swaps (STG CaT/CaS, Kd/A; DA Na/NMDA:
their columns of S at V_th have cosines 0.9995, 0.992 and 0.994, reference section 6), channel-level AUC (a
changed channel scores above an untouched one of the same scenario; the score is the channel's marginal
probability, or minus the best rank of a subset naming it), and for probabilistic methods the Brier score of the
top call, the expected calibration error of its confidence (equal-mass bins), the share of confident calls
(P >= 0.5) and how many are right.
"""

from __future__ import annotations

import numpy as np

from .cost_rule import order_by_cost

COLLINEAR = {"stg": [("CaT", "CaS"), ("Kd", "A")], "da": [("Na", "NMDA")]}
CONFIDENT = 0.5
N_BINS = 10
N_BOOT = 1000


def swaps(model: str, truth: frozenset) -> set[frozenset]:
    """Return the subsets equal to ``truth`` (channel labels) up to near-collinear swaps (``truth`` included).

    A swap replaces a channel by its near-collinear partner.
    """
    out = {truth}
    for a, b in COLLINEAR.get(model, []):
        for s in list(out):
            for x, y in ((a, b), (b, a)):
                if x in s and y not in s:
                    out.add((s - {x}) | {y})
    return out


def score_rows(model: str, rows: list[dict], labels: list[str], method: str) -> dict[str, np.ndarray]:
    """Return the per-scenario figures of one method.

    These are the rank of the truth, top-1/top-3 hits, the top call's confidence, and (pairs of) channel scores
    for the AUC.
    """
    subsets = [frozenset(lab.split("+")) for lab in labels]
    out: dict[str, list[float]] = {k: [] for k in ("rank", "top1", "top3", "top3_swaps", "p_top", "auc")}
    probabilistic = method_is_probabilistic(rows, method)
    for r in rows:
        rec = r["methods"][method]
        t = r["truth_index"]
        if "failed" in rec:  # the method refused the scenario: scored as a miss that says nothing
            for k, v in (("rank", len(labels)), ("top1", 0.0), ("top3", 0.0), ("top3_swaps", 0.0),
                         ("p_top", 1.0 / len(labels) if probabilistic else np.nan), ("auc", 0.5)):
                out[k].append(v)
            continue
        if "p" in rec:
            p = np.array(rec["p"])
            order = np.argsort(-p, kind="stable")
            score = {c: sum(p[h] for h, s in enumerate(subsets) if c in s) for c in set().union(*subsets)}
            out["p_top"].append(p[order[0]])
        else:
            cost = np.array([np.inf if c is None else c for c in rec["cost"]])
            order = order_by_cost(cost, rec["fraction"], subsets)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(1, len(order) + 1)
            score = {c: -min(rank[h] for h, s in enumerate(subsets) if c in s) for c in set().union(*subsets)}
            out["p_top"].append(np.nan)
        rk = int(np.flatnonzero(order == t)[0]) + 1
        ok = swaps(model, subsets[t])
        out["rank"].append(rk)
        out["top1"].append(float(rk == 1))
        out["top3"].append(float(rk <= 3))
        out["top3_swaps"].append(float(any(subsets[h] in ok for h in order[:3])))
        hit = [v for c, v in score.items() if c in subsets[t]]
        miss = [v for c, v in score.items() if c not in subsets[t]]
        wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in hit for b in miss]
        out["auc"].append(float(np.mean(wins)) if wins else np.nan)
    return {k: np.array(v, dtype=float) for k, v in out.items()}


def ece(p: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> float:
    """Return the expected calibration error with equal-mass bins.

    The error is the sum over bins of |mean p - mean y| weighted by size.
    """
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, min(n_bins, len(p)))
    return float(sum(len(b) * abs(p[b].mean() - y[b].mean()) for b in bins if len(b)) / len(p))


def reliability(p: np.ndarray, y: np.ndarray, n_bins: int = N_BINS):
    """Return the reliability curve: mean confidence ``p`` and mean outcome ``y`` per equal-mass bin (as in ECE)."""
    order = np.argsort(p, kind="stable")
    bins = [b for b in np.array_split(order, min(n_bins, len(p))) if len(b)]
    return np.array([p[b].mean() for b in bins]), np.array([y[b].mean() for b in bins])


def bootstrap_index(n: int, seed: int = 0) -> np.ndarray:
    """``N_BOOT`` resamples of ``n`` scenarios (rows of indices)."""
    return np.random.default_rng(seed).integers(0, n, size=(N_BOOT, n))


def summary(s: dict[str, np.ndarray], boot: np.ndarray | None = None) -> dict[str, float]:
    """Aggregate figures of one method on a set of scenarios (with ECE's bootstrap interval)."""
    y, p = s["top1"], s["p_top"]
    out = {"n": len(y), "top1": y.mean(), "top3": s["top3"].mean(), "top3_swaps": s["top3_swaps"].mean(),
           "median_rank": float(np.median(s["rank"])), "channel_auc": float(np.nanmean(s["auc"]))}
    if np.all(np.isfinite(p)) and len(p):
        conf = p >= CONFIDENT
        out |= {"brier": float(np.mean((p - y) ** 2)), "ece": ece(p, y), "confident_share": conf.mean(),
                "confident_right": float(y[conf].mean()) if conf.any() else float("nan"),
                "confident_n": int(conf.sum())}
        out["ece_calibrated"] = calibrated_ece(p)
        if boot is not None:
            out["ece_lo"], out["ece_hi"] = ece_interval(p, y, boot)
    return out


def ece_interval(p: np.ndarray, y: np.ndarray, boot: np.ndarray) -> tuple[float, float]:
    """95 % basic (reverse-percentile) bootstrap interval of the ECE, clipped at 0.

    The binned ECE is biased upwards (each bin's |mean p - mean y| is positive even for a calibrated method), and
    resampling with duplicates inflates it further: the percentile interval of the resampled ECEs sits above the
    estimate.  The basic interval ``[2 e - q_97.5, 2 e - q_2.5]`` moves that shift back.
    """
    e0 = ece(p, y)
    q_lo, q_hi = np.quantile([ece(p[b], y[b]) for b in boot], [0.025, 0.975])
    return max(0.0, float(2 * e0 - q_hi)), max(0.0, float(2 * e0 - q_lo))


def calibrated_ece(p: np.ndarray, n_sim: int = 200, seed: int = 0) -> float:
    """Return the ECE a perfectly calibrated method with the same confidences shows on average.

    Outcomes are drawn as ``Bernoulli(p)``: the result is the floor an observed ECE is to be read against at this
    number of scenarios.
    """
    rng = np.random.default_rng(seed)
    return float(np.mean([ece(p, (rng.random(len(p)) < p).astype(float)) for _ in range(n_sim)]))


def paired_difference(a: np.ndarray, b: np.ndarray, boot: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``a - b`` over scenarios and its 95 % paired-bootstrap interval."""
    d = a - b
    m = np.array([np.nanmean(d[k]) for k in boot])
    lo, hi = np.quantile(m, [0.025, 0.975])
    return float(np.nanmean(d)), float(lo), float(hi)


def method_is_probabilistic(rows: list[dict], method: str) -> bool:
    """Whether ``method`` gives probabilities (some row holds its ``p``)."""
    return any("p" in r["methods"].get(method, {}) for r in rows)
