"""The main pipeline: recorded spike trains -> DIC posterior -> degenerate populations (-> predictive check).

For each recording with at least 3 spikes:

1. ``n_models`` posterior samples (g_s, g_u) are drawn (plus spares);
2. each sample becomes the DIC target of one model: a seed cell (the model's tonic-spiking seed population,
   :func:`dicsbi.compensation.draw_seed_population`) whose two re-solved conductances are found by the
   compensation sampler, so the posterior's uncertainty spreads the population;
3. the pairs of re-solved conductances are ranked by their yield near the posterior median
   (:func:`pair_ranking`: 64 pilot seed cells at the centre of the 1 x 1 g_leak cell holding the median, cached);
   a sample the best pair cannot reach is tried with the next pairs (at most
   ``max_pairs`` with a non-zero pilot yield) and with fresh seed cells (up to ``max_rounds``); a sample none
   reaches is replaced by a spare sample and counted in
   ``n_replaced`` (the population is then conditioned on reachability, which the result says);
4. optionally (``check=N``) N members are simulated and compared with the recording.

Every model keeps the posterior sample it came from, its DICs (recomputed by the solver) and the pair used.
Silent recordings (fewer than 3 spikes) get no posterior and are reported as such.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .compensation import candidate_pairs, compensate, draw_seed_population, pair_yields
from .errors import DicsbiError
from .models import get_model
from .spikes import MIN_SPIKES, SpikeTrains, firing_class


@dataclass
class RecordingPopulation:
    """The population inferred for one recording."""

    id: str
    firing_class: int
    samples: np.ndarray          # [n_models, 2] posterior sample (g_s, g_u) each model was solved for
    sample_index: np.ndarray     # [n_models] index of that sample among the draws
    conductances: np.ndarray     # [n_models, n_g]
    dics: np.ndarray             # [n_models, 3] achieved (g_f, g_s, g_u) at V_th
    pair: np.ndarray             # [n_models] index into ``pairs``
    pairs: list[tuple[str, str]]
    n_replaced: int              # posterior samples no pair could reach (replaced by spares)
    n_reused: int = 0            # models solved again (fresh seed cell) for an already used reachable sample
    check: dict | None = None
    typicality: float = float("nan")   # distance to the training world (dicsbi.typicality); NaN: not scored
    out_of_world: bool = False         # typicality above the level 1% of in-world recordings reach
    like_model: str = ""               # the other shipped model this recording looks like (rival-world flag)
    noise: np.ndarray | None = None    # [n_models] noise level (uA/cm^2) of each model, from the noise posterior


@dataclass
class InferenceResult:
    model: str
    vth_mV: float
    seed: int
    recordings: list[RecordingPopulation]
    silent: list[str] = field(default_factory=list)
    posterior_config: dict = field(default_factory=dict)
    unreachable: list[str] = field(default_factory=list)  # no posterior sample reachable by compensation


def _populate(model, targets: np.ndarray, pairs, rng, vth, max_rounds: int):
    """Solve one model per target; returns (conductances, dics, pair index, ok mask)."""
    n = targets.shape[0]
    g_out = np.full((n, model.n_conductances), np.nan)
    d_out = np.full((n, 3), np.nan)
    p_out = np.full(n, -1, np.int64)
    pending = np.arange(n)
    for _ in range(max_rounds):
        seeds = draw_seed_population(model, int(pending.size * 1.3) + 8, rng, vth)
        while seeds.shape[0] < pending.size:
            seeds = np.concatenate([seeds, draw_seed_population(model, pending.size, rng, vth)])
        seeds = seeds[: pending.size]
        for k, pair in enumerate(pairs):
            if pending.size == 0:
                break
            comp = compensate(model, seeds, {"g_s": targets[pending, 0], "g_u": targets[pending, 1]}, pair, vth)
            ok = comp.valid
            done = pending[ok]
            g_out[done], d_out[done], p_out[done] = comp.conductances[ok], comp.dics[ok], k
            pending, seeds = pending[~ok], seeds[~ok]
        if pending.size == 0:
            break
    return g_out, d_out, p_out, p_out >= 0


CHUNK = 256  # recordings per posterior call; part of the seed contract (see iter_infer)


def infer(trains, model: str = "stg", n_models: int = 500, posterior=None, seed: int = 0, check: int = 0,
          max_rounds: int = 3, max_pairs: int = 4, spare_factor: float = 1.5,
          progress: bool = False) -> InferenceResult:
    """Posterior samples -> one compensated model each, for every recording (see the module docstring).

    ``trains``: a :class:`SpikeTrains` (or anything :func:`dicsbi.inference.as_trains` accepts without the
    3-spike rule); ``posterior``: a :class:`~dicsbi.inference.DICPosterior` or a path (default: the shipped
    one for ``model``).  Reproducible by ``seed`` (see :func:`iter_infer`, of which this collects the chunks).
    """
    parts = list(iter_infer(trains, model, n_models, posterior, seed, check, max_rounds, max_pairs, spare_factor,
                            progress))
    first = parts[0]
    return InferenceResult(first.model, first.vth_mV, first.seed, [r for p in parts for r in p.recordings],
                           [s for p in parts for s in p.silent], first.posterior_config,
                           [u for p in parts for u in p.unreachable])


def _resolve_posterior(posterior, m):
    from .inference import DICPosterior, load_posterior

    if isinstance(posterior, DICPosterior) or hasattr(posterior, "sample") and hasattr(posterior, "config"):
        post = posterior  # anything with DICPosterior's sample / model / vth_mV / config
    else:
        post = load_posterior(posterior or m.name, model=m.name)
    if post.model != m.name:
        raise DicsbiError(f"the posterior is for model {post.model!r}, not {m.name!r}")
    return post


def iter_infer(trains, model: str = "stg", n_models: int = 500, posterior=None, seed: int = 0, check: int = 0,
               max_rounds: int = 3, max_pairs: int = 4, spare_factor: float = 1.5, progress: bool = False):
    """:func:`infer` in chunks of :data:`CHUNK` recordings: yields one :class:`InferenceResult` per chunk, so a
    file of any number of recordings is processed in bounded memory.

    Seeds: the posterior draws of chunk ``c`` use ``seed`` for ``c = 0`` and ``SeedSequence(seed, spawn_key=
    (2**31 + c,))`` after; recording ``i`` (its index in ``trains``) solves its population with
    ``SeedSequence(seed, spawn_key=(i,))`` and simulates its predictive check with seed ``seed + i``.  The
    output therefore depends on the seed and the input only, never on how it is consumed.
    """
    m = get_model(model)
    post = _resolve_posterior(posterior, m)
    if n_models < 1:
        raise DicsbiError(f"n_models must be >= 1, got {n_models}")
    if not isinstance(trains, SpikeTrains):
        trains = SpikeTrains.from_list(trains, 0.0)
    n_draw = int(np.ceil(n_models * spare_factor))
    bar = _Bar(progress, len(trains), f"recordings ({m.name})")
    with bar:
        for c, c0 in enumerate(range(0, len(trains), CHUNK)):
            idx = np.arange(c0, min(c0 + CHUNK, len(trains)))
            part = trains.select(idx)
            cls = firing_class(part)
            ok = part.counts >= MIN_SPIKES
            results, unreachable = [], []
            if ok.any():
                sample_seed = seed if c == 0 else int(np.random.SeedSequence(seed, spawn_key=(2**31 + c,))
                                                      .generate_state(1)[0])
                all_samples = post.sample(part.select(np.flatnonzero(ok)), n_draw, seed=sample_seed)
                typ = getattr(post, "typicality", None)
                scored = part.select(np.flatnonzero(ok))
                score, flagged = (typ.flag(scored) if typ is not None else
                                  (np.full(int(ok.sum()), np.nan), np.zeros(int(ok.sum()), bool)))
                like = typ.like_model(scored) if typ is not None else np.full(int(ok.sum()), "", dtype=object)
                for j, k in enumerate(np.flatnonzero(ok)):
                    i = int(idx[k])
                    one = part.select([k])

                    def more(n, r, one=one, i=i):
                        s_ = int(np.random.SeedSequence(seed, spawn_key=(i, 2**20 + r)).generate_state(1)[0])
                        return post.sample(one, n, seed=s_)[0]

                    rec = _one_population(m, post, all_samples[j], str(trains.ids[i]), int(cls[k]), i, seed,
                                          n_models, max_rounds, max_pairs, more)
                    if rec is None:
                        unreachable.append(str(trains.ids[i]))
                    else:
                        rec.typicality, rec.out_of_world = float(score[j]), bool(flagged[j])
                        rec.like_model = str(like[j])
                        if getattr(post, "noise_level", None) is not None:
                            n_seed = int(np.random.SeedSequence(seed, spawn_key=(i, 2**21)).generate_state(1)[0])
                            rec.noise = post.sample_noise(one, rec.samples[None], seed=n_seed)[0]
                        if check:
                            rec.check = predictive_check(m, one, rec, check, seed=seed + i)
                        results.append(rec)
                    bar.advance()
            bar.advance(int((~ok).sum()))
            yield InferenceResult(m.name, float(post.vth_mV), int(seed), results,
                                  [str(part.ids[k]) for k in np.flatnonzero(~ok)], post.config, unreachable)


def _one_population(m, post, samples, ident, cls, i, seed, n_models, max_rounds, max_pairs, more,
                    extra_draws: int = 2):
    """One population for one recording, or None when no posterior sample is reachable.

    Samples no pair reaches are replaced by spares; if the first draw has too few reachable samples, up to
    ``extra_draws`` further draws (4x larger each) are made for this recording; if still short, reachable
    samples are solved again with fresh seed cells (counted in ``n_reused``): the population is then the
    posterior conditioned on reachability, and the summary says so."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
    ranked = list(pair_ranking(m, *np.median(samples, axis=0), post.vth_mV))[:max_pairs]
    g, d, p, ok = _populate(m, samples, ranked, rng, post.vth_mV, max_rounds)
    for r in range(extra_draws):
        if ok.sum() >= n_models:
            break
        new = more(4 * len(samples), r)
        g2, d2, p2, ok2 = _populate(m, new, ranked, rng, post.vth_mV, max_rounds)
        samples, g, d, p, ok = (np.concatenate(a) for a in ((samples, new), (g, g2), (d, d2), (p, p2), (ok, ok2)))
    good = np.flatnonzero(ok)
    if good.size == 0:
        return None
    keep = good[:n_models]
    n_replaced = int((~ok[: keep[-1] + 1]).sum())
    n_reused = 0
    if keep.size < n_models:  # solve reachable samples again from fresh seed cells
        need = n_models - keep.size
        extra_idx, eg, ed, ep = [], [], [], []
        for _ in range(4 * max_rounds):
            pick = keep[rng.integers(0, keep.size, need - len(extra_idx))]
            g3, d3, p3, ok3 = _populate(m, samples[pick], ranked, rng, post.vth_mV, 1)
            extra_idx += list(pick[ok3])
            eg.append(g3[ok3])
            ed.append(d3[ok3])
            ep.append(p3[ok3])
            if len(extra_idx) >= need:
                break
        extra_idx = np.array(extra_idx[:need], dtype=np.int64)
        n_reused = int(extra_idx.size)
        g_all = np.concatenate([g[keep], *eg])[: keep.size + n_reused]
        d_all = np.concatenate([d[keep], *ed])[: keep.size + n_reused]
        p_all = np.concatenate([p[keep], *ep])[: keep.size + n_reused]
        idx_all = np.concatenate([keep, extra_idx])
        return RecordingPopulation(id=ident, firing_class=cls, samples=samples[idx_all], sample_index=idx_all,
                                   conductances=g_all, dics=d_all, pair=p_all, pairs=ranked, n_replaced=n_replaced,
                                   n_reused=n_reused)
    return RecordingPopulation(id=ident, firing_class=cls, samples=samples[keep], sample_index=keep,
                               conductances=g[keep], dics=d[keep], pair=p[keep], pairs=ranked, n_replaced=n_replaced)


class _Bar:
    """A rich progress bar over recordings (no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled, self.total, self.label = enabled, total, label

    def __enter__(self):
        if self.enabled:
            from rich import progress as rp

            self.bar = rp.Progress(rp.TextColumn(self.label), rp.BarColumn(), rp.MofNCompleteColumn(),
                                   rp.TimeElapsedColumn(), rp.TimeRemainingColumn())
            self.bar.start()
            self.task = self.bar.add_task("r", total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        if self.enabled and n:
            self.bar.advance(self.task, n)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()


PAIR_GRID = 1.0  # g_leak: pair rankings are shared by posterior medians in the same grid cell


def compute_pair_ranking(model, i: int, j: int, vth: float) -> tuple[tuple[str, str], ...]:
    """The ranking of :func:`pair_ranking` for grid cell (i, j), computed (64 seeded pilot cells)."""
    m = get_model(model)
    gs, gu = (i + 0.5) * PAIR_GRID, (j + 0.5) * PAIR_GRID
    rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(i + 10**6, j + 10**6)))
    pilot = draw_seed_population(m, 64, rng, vth)
    pairs = candidate_pairs(m)
    yields = pair_yields(m, pilot, gs, gu, pairs, vth, max_iter=50)
    ranked = sorted(pairs, key=lambda p: (-yields[p][0], np.nan_to_num(yields[p][1], nan=np.inf)))
    return tuple(p for p in ranked if yields[p][0] > 0) or tuple(ranked[:1])


def pair_table_path(model) -> Path:
    from .inference import PRETRAINED_DIR

    return PRETRAINED_DIR / f"pair_ranking_{get_model(model).name}.json"


@lru_cache(maxsize=8)
def _shipped_table(model: str) -> dict | None:
    path = pair_table_path(model)
    if not path.exists():
        return None
    table = json.loads(path.read_text())
    return table if table.get("model") == model and table.get("grid") == PAIR_GRID else None


@lru_cache(maxsize=4096)
def _ranking_in_cell(model, i: int, j: int, vth: float) -> tuple[tuple[str, str], ...]:
    table = _shipped_table(model)
    if table is not None and table["vth_mV"] == vth and f"{i},{j}" in table["cells"]:
        return tuple(tuple(p) for p in table["cells"][f"{i},{j}"])
    return compute_pair_ranking(model, i, j, vth)


def pair_ranking(model, g_s: float, g_u: float, vth_mV: float) -> tuple[tuple[str, str], ...]:
    """Candidate pairs ranked by their yield of valid cells (64 pilot seed cells, ties: smallest change) at the
    centre of the ``PAIR_GRID`` cell holding (g_s, g_u); pairs with no valid pilot cell are dropped.  Cached per
    cell, and seeded by the cell, so the ranking does not depend on the order of recordings.

    The rankings of every cell of the model's DIC box at the shipped posterior's V_th are precomputed
    (``dicsbi/pretrained/pair_ranking_<model>.json``, written by ``experiments/make_pair_rankings.py``) and
    read from there; any other cell or V_th is computed on first use.  Both give the same ranking (a test
    recomputes cells of the table), so results do not depend on whether the table is present.
    """
    i, j = int(np.floor(g_s / PAIR_GRID)), int(np.floor(g_u / PAIR_GRID))
    return _ranking_in_cell(get_model(model).name, i, j, float(vth_mV))


MAX_CHECK_MS = 60_000.0
CV_FLOOR = 0.02  # ISI CVs closer than this agree in the predictive check (regular spikers' CV is ~0)


def predictive_check(model, recording: SpikeTrains, rec: RecordingPopulation, n: int, seed: int = 0,
                     freq_tol: float = 0.10, tier: str = "fast") -> dict:
    """Simulate ``n`` members and compare them with the recording.

    Per member (simulated with its noise level from the noise posterior when the population has one, else
    noise-free): same firing class; main frequency within ``freq_tol`` (spiking frequency for tonic trains, burst
    frequency for bursting ones); rate within 20% and ISI CV within 30% of the recording's (``rate_cv_match``:
    the check that also reads irregular, noise-driven trains; CVs within :data:`CV_FLOOR` always agree, since a
    relative tolerance on a regular spiker's near-zero CV would compare timing jitter); van Rossum distance to
    the recording (tau from the recording, published choice) relative to the median distance between members
    (ratio near 1: as close as the population's own spread).  Members use the recording's window length, the
    model's default transient and the step of the accuracy ``tier`` (default the fast tier, validated for class
    and ISI: ``docs/simulator.md``); the step is recorded as ``dt_ms``.
    """
    from .simulate import simulate
    from .spikes import reference_tau_ms, spike_features, van_rossum_distance

    model = get_model(model)
    n = int(min(n, rec.conductances.shape[0]))
    t = recording[0]
    window = float(max(recording.t_stop_ms[0] - recording.t_start_ms[0], t[-1] - t[0] if t.size else 0.0, 100.0))
    window = min(window, MAX_CHECK_MS)  # a long recording is compared over its first MAX_CHECK_MS
    noise = rec.noise[:n] if rec.noise is not None else 0.0
    sim = simulate(model, rec.conductances[:n], duration_ms=window, seed=seed, tier=tier, noise_std=noise)
    t = t[t - recording.t_start_ms[0] <= window]
    rel = SpikeTrains.from_list([t - recording.t_start_ms[0]], 0.0, window)
    f_rec, f_sim = spike_features(rel), spike_features(sim.trains)
    cls_rec = int(f_rec["firing_class"][0])
    key = "f_inter_hz" if cls_rec == 2 else "f_spiking_hz"
    class_ok = f_sim["firing_class"] == cls_rec
    with np.errstate(invalid="ignore", divide="ignore"):
        freq_ok = np.abs(f_sim[key] / f_rec[key][0] - 1.0) <= freq_tol
    freq_ok &= np.isfinite(f_sim[key])
    rate_rec, cv_rec = _rate(rel), np.where(rel.counts >= 3, f_rec["isi_cv"], np.nan)
    rate_sim, cv_sim = _rate(sim.trains), np.where(sim.trains.counts >= 3, f_sim["isi_cv"], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_cv_ok = (np.abs(rate_sim / rate_rec[0] - 1.0) <= 0.2) & (
            np.abs(cv_sim - cv_rec[0]) <= np.maximum(0.3 * cv_rec[0], CV_FLOOR))
    tau = reference_tau_ms(rel[0]) if rel.counts[0] >= 2 else 100.0
    vr = np.array([van_rossum_distance(rel[0], s, tau) for s in sim.trains])
    members = [sim.trains[k] for k in range(n)]
    spread = [van_rossum_distance(members[a], members[b], tau) for a in range(n) for b in range(a + 1, n)]
    ref = float(np.median(spread)) if spread else float("nan")
    return {"n": n, "class_match": float(class_ok.mean()), "freq_match": float(freq_ok.mean()),
            "reproduce": float((class_ok & freq_ok).mean()), "frequency_key": key,
            "rate_cv_match": float(rate_cv_ok.mean()),
            "noise_median": float(np.median(noise)) if np.ndim(noise) else float(noise),
            "vr_median": float(np.median(vr)), "vr_spread_median": ref,
            "vr_ratio": float(np.median(vr) / ref) if ref > 0 else float("nan"),
            "diverged": int((sim.status != 0).sum()), "trains": [t.copy() for t in sim.trains],
            "window_ms": window, "dt_ms": sim.settings["dt_ms"], "tier": tier}


def _rate(trains: SpikeTrains) -> np.ndarray:
    """Spikes per second over each train's window."""
    return trains.counts / np.maximum(trains.t_stop_ms - trains.t_start_ms, 1e-9) * 1000.0


# ---------------------------------------------------------------------------- the output folder, streamed
MAX_FIGURES = 50


class RunSummary(NamedTuple):
    """What :func:`run_to_folder` did: recordings with a population, silent ones, and the IDs flagged as unlike
    the training world (unpacks as ``n_rec, n_silent, flagged``)."""

    n_recordings: int
    n_silent: int
    out_of_world: list


def run_to_folder(trains: SpikeTrains, folder, model: str, n_models: int, posterior, seed: int = 0, check: int = 0,
                  progress: bool = False, title: str = "dicsbi inference") -> tuple[int, int]:
    """Run :func:`iter_infer` and write ``populations.csv``, ``summary.csv``, ``posterior.nc``, ``figures/`` and
    ``report.html`` into ``folder`` chunk by chunk (tables and the netCDF file appended,
    :class:`~dicsbi.arviz_io.NetCDFAppender`), so memory stays bounded for any number of recordings.  ``folder``
    should be a staging folder (:class:`dicsbi.io.OutputFolder`): files are complete only when this returns.
    Returns (recordings with a population, silent recordings)."""
    from .arviz_io import NetCDFAppender, inference_data
    from .report import write_figures_and_report

    folder = Path(folder)
    shown, silent, unreachable, n_rec, flagged = [], [], [], 0, []
    first = None
    with open(folder / "populations.csv", "w", newline="") as pop, open(folder / "summary.csv", "w",
                                                                          newline="") as summ, \
            NetCDFAppender(folder / "posterior.nc") as nc:
        for c, part in enumerate(iter_infer(trains, model, n_models, posterior, seed, check, progress=progress)):
            first = first or part
            chunk = trains.select(np.arange(c * CHUNK, min((c + 1) * CHUNK, len(trains))))
            pop.write(_body(populations_table(part), c > 0))
            summ.write(_body(summary_table(part, chunk), c > 0))
            if part.recordings:
                nc.append(inference_data(part, chunk))
            shown.extend(part.recordings[: max(0, MAX_FIGURES - len(shown))])
            silent.extend(part.silent)
            unreachable.extend(part.unreachable)
            flagged.extend(r.id for r in part.recordings if r.out_of_world)
            n_rec += len(part.recordings)
    result = InferenceResult(first.model, first.vth_mV, first.seed, shown, silent, first.posterior_config,
                             unreachable)
    write_figures_and_report(result, trains, folder, title=title, max_recordings=MAX_FIGURES, n_total=n_rec)
    return RunSummary(n_rec, len(silent), flagged)


def _body(table: str, drop_header: bool) -> str:
    return table.split("\n", 1)[1] if drop_header else table


# ---------------------------------------------------------------------------- outputs
def populations_table(result: InferenceResult) -> str:
    """``populations.csv``: one row per model (Spike2Pop-like conductance columns with units, DICs, V_th,
    the recording, the posterior sample it was solved for and the re-solved pair)."""
    from .io import format_population_csv

    m = get_model(result.model)
    if not result.recordings:
        return format_population_csv(m, np.empty((0, m.n_conductances)), np.empty((0, 3)))
    recs = result.recordings
    g = np.concatenate([r.conductances for r in recs])
    d = np.concatenate([r.dics for r in recs])
    ids = [f"{r.id}-{k}" for r in recs for k in range(len(r.conductances))]
    extra = {
        "recording": [r.id for r in recs for _ in range(len(r.conductances))],
        "posterior_sample": np.concatenate([r.sample_index for r in recs]),
        "target_g_s [g_leak]": np.concatenate([r.samples[:, 0] for r in recs]),
        "target_g_u [g_leak]": np.concatenate([r.samples[:, 1] for r in recs]),
        "pair": ["+".join(r.pairs[p]) for r in recs for p in r.pair],
    }
    return format_population_csv(m, g, d, ids=ids, vth_mV=result.vth_mV, extra=extra)


def summary_table(result: InferenceResult, trains: SpikeTrains) -> str:
    """``summary.csv``: per recording, firing class, posterior mean and 90% interval of g_s and g_u, the number
    of models and replaced samples, the predictive-check scores (empty when not run or silent), the noise
    posterior (probability of a clean recording, median and 90% interval in uA/cm^2; empty without one), and the
    typicality score with its out-of-world flag (:mod:`dicsbi.typicality`; 1 = unlike the training world) and
    ``like_model``, the other shipped model the recording looks like (empty when none)."""
    from .io import format_table_csv
    from .spikes import CLASS_NAMES

    by_id = {r.id: r for r in result.recordings}
    cls = firing_class(trains)
    cols: dict[str, list] = {k: [] for k in (
        "recording", "n_spikes", "firing_class", "g_s_mean", "g_s_q05", "g_s_q95", "g_u_mean", "g_u_q05",
        "g_u_q95", "n_models", "n_replaced", "n_reused", "check_n", "check_class_match", "check_freq_match",
        "check_reproduce", "check_rate_cv_match", "check_vr_ratio", "check_dt_ms", "noise_p_zero",
        "noise_median", "noise_q05", "noise_q95", "typicality", "out_of_world", "like_model")}
    for i, ident in enumerate(trains.ids):
        r = by_id.get(str(ident))
        cols["recording"].append(str(ident))
        cols["n_spikes"].append(int(trains.counts[i]))
        cols["firing_class"].append(CLASS_NAMES[int(cls[i])])
        for k, name in enumerate(("g_s", "g_u")):
            x = r.samples[:, k] if r is not None else None
            cols[f"{name}_mean"].append(float(x.mean()) if x is not None else np.nan)
            cols[f"{name}_q05"].append(float(np.quantile(x, 0.05)) if x is not None else np.nan)
            cols[f"{name}_q95"].append(float(np.quantile(x, 0.95)) if x is not None else np.nan)
        cols["n_models"].append(len(r.conductances) if r is not None else 0)
        cols["n_replaced"].append(r.n_replaced if r is not None else 0)
        cols["n_reused"].append(r.n_reused if r is not None else 0)
        c = r.check if r is not None and r.check else {}
        cols["check_n"].append(c.get("n", 0))
        for key in ("class_match", "freq_match", "reproduce", "rate_cv_match", "vr_ratio", "dt_ms"):
            cols[f"check_{key}"].append(float(c.get(key, np.nan)))
        z = r.noise if r is not None and r.noise is not None else None
        cols["noise_p_zero"].append(float((z == 0).mean()) if z is not None else np.nan)
        for name, q in (("median", 0.5), ("q05", 0.05), ("q95", 0.95)):
            cols[f"noise_{name}"].append(float(np.quantile(z, q)) if z is not None else np.nan)
        cols["typicality"].append(r.typicality if r is not None else np.nan)
        cols["out_of_world"].append(int(r.out_of_world) if r is not None else 0)
        cols["like_model"].append(r.like_model if r is not None else "")
    return format_table_csv(cols)
