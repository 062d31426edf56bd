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

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .posterior.artifact import DICPosterior
    from .posterior.config import PosteriorConfig
    from .refine import Refinement, RefineOptions

from . import _seeds
from .compensation import compensate, draw_seed_population
from .diagnostics.predictive import predictive_check
from .errors import DicsbiError
from .io.tables import _body, populations_table, summary_table
from .models import Model, get_model
from .pair_ranking import pair_ranking
from .progress import ProgressBar
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
    typicality: float = float("nan")   # distance to the training world (dicsbi.posterior.typicality); NaN: not scored
    out_of_world: bool = False         # typicality above the level 1-2% of in-world recordings reach
    like_model: str = ""               # the other shipped model this recording looks like (rival-world flag)
    noise: np.ndarray | None = None    # [n_models] noise level (uA/cm^2) of each model, from the noise posterior
    refinement: Refinement | None = None  # the simulation refinement (dicsbi.refine) when it replaced the members


@dataclass
class InferenceResult:
    """What :func:`infer` returns: the populations of the recordings, the silent and the unreachable ones."""

    model: str
    vth_mV: float
    seed: int
    recordings: list[RecordingPopulation]
    silent: list[str] = field(default_factory=list)
    posterior_config: PosteriorConfig | None = None
    unreachable: list[str] = field(default_factory=list)  # no posterior sample reachable by compensation
    refined: bool = False  # the populations were refined by simulation (dicsbi.refine)


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


@dataclass(frozen=True)
class PopulationOptions:
    """How posterior samples become a population: the compensation loop's settings (defaults: measured ones).

    Attributes
    ----------
    max_rounds
        Fresh seed cells tried for a sample no pair reached.
    max_pairs
        Ranked compensation pairs tried per sample (:func:`dicsbi.pair_ranking.pair_ranking`).
    spare_factor
        Posterior samples drawn per requested model (spares replace unreachable samples).
    extra_draws
        Further draws (4x larger each) for a recording whose first draw has too few reachable samples.
    """

    max_rounds: int = 3
    max_pairs: int = 4
    spare_factor: float = 1.5
    extra_draws: int = 2

    def __post_init__(self):
        if self.max_rounds < 1 or self.max_pairs < 1 or self.extra_draws < 0 or not self.spare_factor >= 1:
            raise DicsbiError(f"invalid population options {self}: rounds and pairs >= 1, extra draws >= 0, "
                              "spare factor >= 1")


def infer(trains, model: str = "stg", n_models: int = 500, posterior=None, seed: int = 0, check: int = 0, *,
          options: PopulationOptions = PopulationOptions(), refine: RefineOptions | None = None,
          progress: bool = False) -> InferenceResult:
    """Posterior samples -> one compensated model each, for every recording (see the module docstring).

    Parameters
    ----------
    trains
        A :class:`SpikeTrains` (or anything :func:`dicsbi.posterior.inputs.as_trains` accepts without the
        3-spike rule).
    model
        The registered model's name.
    n_models
        Models per recording.
    posterior
        A :class:`~dicsbi.posterior.DICPosterior` or a path (default: the shipped one for ``model``).
    seed
        Everything is reproducible by it (see :func:`iter_infer`, of which this collects the chunks).
    check
        Members simulated per recording in the predictive check (0: none).
    options
        The compensation loop's settings.
    refine
        Refine every population by simulation (:mod:`dicsbi.refine`: ``n_models`` members that reproduce the
        recording's spike-train features); None keeps the DIC populations.
    progress
        Show a progress bar.
    """
    parts = list(iter_infer(trains, model, n_models, posterior, seed, check, options=options, refine=refine,
                            progress=progress))
    first = parts[0]
    return InferenceResult(first.model, first.vth_mV, first.seed, [r for p in parts for r in p.recordings],
                           [s for p in parts for s in p.silent], first.posterior_config,
                           [u for p in parts for u in p.unreachable], refined=refine is not None)


def _resolve_posterior(posterior, m):
    from .posterior.artifact import DICPosterior, load_posterior

    if isinstance(posterior, DICPosterior) or hasattr(posterior, "sample") and hasattr(posterior, "config"):
        post = posterior  # anything with DICPosterior's sample / model / vth_mV / config
    else:
        post = load_posterior(posterior or m.name, model=m.name)
    if post.model != m.name:
        raise DicsbiError(f"the posterior is for model {post.model!r}, not {m.name!r}")
    return post


def refine_for(refine: RefineOptions, n_models: int) -> RefineOptions:
    """Return ``refine`` for ``n_models`` members, its simulation budget scaled in proportion (it is per member)."""
    budget = max(n_models, round(refine.max_simulations * n_models / refine.n_members))
    return dataclasses.replace(refine, n_members=n_models, max_simulations=budget)


def iter_infer(trains, model: str = "stg", n_models: int = 500, posterior=None, seed: int = 0, check: int = 0, *,
               options: PopulationOptions = PopulationOptions(), refine: RefineOptions | None = None,
               progress: bool = False):
    """Run :func:`infer` in chunks of :data:`CHUNK` recordings, yielding one :class:`InferenceResult` per chunk.

    A file of any number of recordings is so processed in bounded memory.  Seeds: the posterior draws of chunk
    ``c`` use ``seed`` for ``c = 0`` and ``SeedSequence(seed, spawn_key=(2**31 + c,))`` after; recording ``i``
    (its index in ``trains``) solves its population with ``SeedSequence(seed, spawn_key=(i,))`` and simulates
    its predictive check with seed ``seed + i``.  The output therefore depends on the seed and the input only,
    never on how it is consumed.
    """
    m = get_model(model)
    if n_models < 1:
        raise DicsbiError(f"n_models must be >= 1, got {n_models}")
    if refine is not None:
        refine = refine_for(refine, int(n_models))
    job = _Job(m, _resolve_posterior(posterior, m), int(seed), int(n_models), int(check), options, refine)
    if not isinstance(trains, SpikeTrains):
        trains = SpikeTrains.from_list(trains, 0.0)
    with ProgressBar(progress, len(trains), f"recordings ({m.name})") as bar:
        for c, c0 in enumerate(range(0, len(trains), CHUNK)):
            yield job.chunk(trains, np.arange(c0, min(c0 + CHUNK, len(trains))), c, bar)


@dataclass(frozen=True)
class _Job:
    """One :func:`iter_infer` run: the model, the posterior, the seed and the settings every recording shares."""

    m: Model
    post: DICPosterior  # or anything with its sample / sample_noise / model / vth_mV / config
    seed: int
    n_models: int
    check: int
    options: PopulationOptions
    refine: RefineOptions | None = None

    def chunk(self, trains: SpikeTrains, idx: np.ndarray, c: int, bar: ProgressBar) -> InferenceResult:
        """Infer the recordings ``idx`` (chunk ``c``): one posterior call, then one population each."""
        m, post = self.m, self.post
        part = trains.select(idx)
        cls = firing_class(part)
        ok = np.flatnonzero(part.counts >= MIN_SPIKES)
        results, unreachable = [], []
        if ok.size:
            sample_seed = self.seed if c == 0 else _seeds.int_seed(self.seed, _seeds.CHUNK + c)
            n_draw = int(np.ceil(self.n_models * self.options.spare_factor))
            all_samples = post.sample(part.select(ok), n_draw, seed=sample_seed)
            typ = getattr(post, "typicality", None)
            score, flagged, like = (typ.assess(part.select(ok)) if typ is not None else
                                    (np.full(ok.size, np.nan), np.zeros(ok.size, bool),
                                     np.full(ok.size, "", dtype=object)))
            for j, k in enumerate(ok):
                i = int(idx[k])
                one = part.select([k])
                rec = self.population(all_samples[j], one, str(trains.ids[i]), int(cls[k]), i)
                if rec is None:
                    unreachable.append(str(trains.ids[i]))
                else:
                    rec.typicality, rec.out_of_world, rec.like_model = float(score[j]), bool(flagged[j]), str(like[j])
                    self.finish(rec, one, i)
                    results.append(rec)
                bar.advance()
        bar.advance(int(part.counts.size - ok.size))
        silent = [str(part.ids[k]) for k in np.flatnonzero(part.counts < MIN_SPIKES)]
        return InferenceResult(m.name, float(post.vth_mV), self.seed, results, silent, post.config, unreachable,
                               refined=self.refine is not None)

    def finish(self, rec: RecordingPopulation, one: SpikeTrains, i: int) -> None:
        """Add the members' noise levels (noise posterior), the refinement and the predictive check."""
        if getattr(self.post, "noise_level", None) is not None:
            n_seed = _seeds.int_seed(self.seed, i, _seeds.NOISE_DRAWS)
            rec.noise = self.post.sample_noise(one, rec.samples[None], seed=n_seed)[0]
        if self.refine is not None:
            self.refined(rec, one, i)
        if self.check:
            rec.check = predictive_check(self.m, one, rec, self.check, seed=self.seed + i)

    def refined(self, rec: RecordingPopulation, one: SpikeTrains, i: int) -> None:
        """Replace recording ``i``'s members by the simulation-refined ones (:func:`dicsbi.refine.refine`).

        Candidates are simulated at the noise posterior's median level over the DIC population (0 when most of
        its mass is at 0), or at ``RefineOptions.noise_std`` without a noise posterior; with
        ``RefineOptions.noise_parameter`` that median only centres the first proposal of a noise parameter.
        """
        from .dics import compute_dics
        from .refine import refine, spread

        assert self.refine is not None
        level = float(np.median(rec.noise)) if rec.noise is not None else None
        ref = refine(self.m, one, self.post, None, self.refine, _seeds.int_seed(self.seed, i, _seeds.REFINE),
                     noise_std=level)
        ref.spread_before, ref.spread_after = spread(rec.conductances), spread(ref.conductances)
        n = len(ref.conductances)
        rec.refinement, rec.conductances, rec.samples, rec.pair = ref, ref.conductances, ref.theta[:, -2:], ref.pair
        rec.pairs = ref.pairs
        rec.dics, rec.sample_index = compute_dics(self.m, ref.conductances, self.post.vth_mV), np.full(n, -1)
        rec.noise = ref.noise if rec.noise is not None else None

    def more_samples(self, one: SpikeTrains, i: int, n: int, r: int) -> np.ndarray:
        """Draw ``r`` of further posterior samples for recording ``i`` (its own seed stream)."""
        return self.post.sample(one, n, seed=_seeds.int_seed(self.seed, i, _seeds.MORE + r))[0]

    def population(self, samples: np.ndarray, one: SpikeTrains, ident: str, cls: int,
                   i: int) -> RecordingPopulation | None:
        """One population for recording ``i``, or None when no posterior sample is reachable.

        Samples no pair reaches are replaced by spares; if the first draw has too few reachable samples, up to
        ``extra_draws`` further draws (4x larger each) are made for this recording; if still short, reachable
        samples are solved again with fresh seed cells (counted in ``n_reused``): the population is then the
        posterior conditioned on reachability, and the summary says so.
        """
        m, vth, opt, n_models = self.m, self.post.vth_mV, self.options, self.n_models
        rng = _seeds.rng(self.seed, i)
        median = np.median(samples, axis=0)
        ranked = list(pair_ranking(m, float(median[0]), float(median[1]), vth))[: opt.max_pairs]
        g, d, p, ok = _populate(m, samples, ranked, rng, vth, opt.max_rounds)
        for r in range(opt.extra_draws):
            if ok.sum() >= n_models:
                break
            new = self.more_samples(one, i, 4 * len(samples), r)
            g2, d2, p2, ok2 = _populate(m, new, ranked, rng, vth, opt.max_rounds)
            samples, g, d, p, ok = (np.concatenate(a) for a in ((samples, new), (g, g2), (d, d2), (p, p2), (ok, ok2)))
        good = np.flatnonzero(ok)
        if good.size == 0:
            return None
        keep = good[:n_models]
        n_replaced = int((~ok[: keep[-1] + 1]).sum())
        extra, eg, ed, ep = _reuse(m, samples, keep, n_models - keep.size, ranked, rng, vth, opt.max_rounds)
        idx_all = np.concatenate([keep, extra])
        return RecordingPopulation(id=ident, firing_class=cls, samples=samples[idx_all], sample_index=idx_all,
                                   conductances=np.concatenate([g[keep], eg]), dics=np.concatenate([d[keep], ed]),
                                   pair=np.concatenate([p[keep], ep]), pairs=ranked, n_replaced=n_replaced,
                                   n_reused=int(extra.size))


def _reuse(m, samples: np.ndarray, keep: np.ndarray, need: int, ranked, rng, vth: float, max_rounds: int):
    """Solve ``need`` reachable samples (drawn from ``keep``) again from fresh seed cells.

    Returns (sample indices, conductances, DICs, pair indices) of the new models; empty when ``need`` is 0.
    """
    extra_idx: list[int] = []
    eg, ed, ep = [np.empty((0, m.n_conductances))], [np.empty((0, 3))], [np.empty(0, np.int64)]
    if need > 0:
        for _ in range(4 * max_rounds):
            pick = keep[rng.integers(0, keep.size, need - len(extra_idx))]
            g3, d3, p3, ok3 = _populate(m, samples[pick], ranked, rng, vth, 1)
            extra_idx += list(pick[ok3])
            eg.append(g3[ok3])
            ed.append(d3[ok3])
            ep.append(p3[ok3])
            if len(extra_idx) >= need:
                break
    extra = np.array(extra_idx[:need], dtype=np.int64)
    return extra, *(np.concatenate(a)[: extra.size] for a in (eg, ed, ep))


# ---------------------------------------------------------------------------- the output folder, streamed
MAX_FIGURES = 50


class RunSummary(NamedTuple):
    """What :func:`run_to_folder` did: recordings with a population, silent ones, IDs flagged out of world.

    Unpacks as ``n_rec, n_silent, flagged``.
    """

    n_recordings: int
    n_silent: int
    out_of_world: list


def run_to_folder(trains: SpikeTrains, folder, model: str, n_models: int, posterior, seed: int = 0, check: int = 0,
                  *, options: PopulationOptions = PopulationOptions(), refine: RefineOptions | None = None,
                  progress: bool = False, title: str = "dicsbi inference") -> RunSummary:
    """Run :func:`iter_infer` and write its tables, ``posterior.nc``, ``figures/`` and ``report.html`` to ``folder``.

    ``populations.csv``, ``summary.csv`` and ``posterior.nc`` are written chunk by chunk (tables and the netCDF
    file appended, :class:`~dicsbi.io.netcdf.NetCDFAppender`), so memory stays bounded for any number of
    recordings.  ``folder`` should be a staging folder (:class:`dicsbi.io.OutputFolder`): files are complete
    only when this returns.  Returns a :class:`RunSummary`.
    """
    from .io.netcdf import NetCDFAppender, inference_data
    from .report.page import write_figures_and_report

    folder = Path(folder)
    shown: list[RecordingPopulation] = []
    silent: list[str] = []
    unreachable: list[str] = []
    flagged: list[str] = []
    n_rec = 0
    first: InferenceResult | None = None
    with open(folder / "populations.csv", "w", newline="") as pop, open(folder / "summary.csv", "w",
                                                                          newline="") as summ, \
            NetCDFAppender(folder / "posterior.nc") as nc:
        for c, part in enumerate(iter_infer(trains, model, n_models, posterior, seed, check, options=options,
                                            refine=refine, progress=progress)):
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
    if first is None:
        raise DicsbiError("no spike trains to infer from")
    result = InferenceResult(first.model, first.vth_mV, first.seed, shown, silent, first.posterior_config,
                             unreachable, refined=first.refined)
    write_figures_and_report(result, trains, folder, title=title, max_recordings=MAX_FIGURES, n_total=n_rec)
    return RunSummary(n_rec, len(silent), flagged)
