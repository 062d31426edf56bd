"""``modulate``: which subsets of channels explain the change between a before and an after recording.

Pipeline per neuron (recordings matched by ID): the before recording's DIC posterior gives the before-
population (:func:`dicsbi.pipeline.infer`, ``n_members`` cells); the after recording's posterior density is
tabulated (:class:`~dicsbi.modulation.likelihood.GridLikelihood`); every hypothesis's evidence is estimated
(:func:`~dicsbi.modulation.evidence.estimate_evidence`, one vectorised pass per subset size).  Several neurons
share the hypothesis (the modulator acts on the same channels in each) but have their own changes, so their
log evidences add.  Posterior probabilities follow from the hypothesis prior
(:func:`~dicsbi.modulation.hypotheses.hypothesis_log_prior`); a channel's targeting probability is the total
probability of the hypotheses that name it.

Seeds: the before-populations use ``seed`` (as :func:`dicsbi.pipeline.infer`); neuron ``i`` (its position in
the before file) tabulates its likelihood and draws its importance samples from
``SeedSequence(seed, spawn_key=(2**30 + i,))``, one independent stream per neuron and subset size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import _seeds
from ..errors import DicsbiError
from ..models import Model, get_model
from ..spikes import firing_class
from .evidence import ConductanceForward, estimate_evidence
from .hypotheses import Hypothesis, hypothesis_log_prior, resolve_hypotheses
from .inputs import prepare_inputs, rate_hz
from .likelihood import GridLikelihood
from .options import ComparisonOptions
from .spike_evidence import SpikeLevel

N_DRAWS = 400          # resampled posterior draws of the change kept per hypothesis and neuron
FLAT_PROBABILITY = 0.5  # below this, the best hypothesis is reported as not identified
PARETO_TOP = 10         # hypotheses per neuron whose importance weights get a Pareto k diagnostic
PARETO_K_MAX = 0.7      # above this, the evidence of a hypothesis is flagged as unreliable
INVISIBLE = 0.02        # relative (g_s, g_u) sensitivity below which a channel is flagged as invisible


@dataclass
class NeuronModulation:
    """One neuron: its before-population, the after posterior's summary and the evidence of each hypothesis.

    Per hypothesis it also holds resampled draws of the change (``member[H][draw]`` indexes the population,
    ``log_ratio[H][draw, s]``).
    """

    id: str
    before: np.ndarray            # [N, n_g] before-population
    before_dics: np.ndarray       # [N, 3]
    before_samples: np.ndarray    # [N, 2] the posterior samples the population was solved for
    after_samples: np.ndarray     # [n, 2] after posterior draws
    log_evidence: np.ndarray      # [H]
    se: np.ndarray
    se_population: np.ndarray
    ess: np.ndarray
    member: list = field(default_factory=list)
    log_ratio: list = field(default_factory=list)
    after_dics: list = field(default_factory=list)   # [H][draw, 2] (g_s, g_u) of the modulated draws
    log_evidence_null: float = -np.inf   # "nothing changed in DIC space": mean_k L(d_k)
    se_null: float = np.inf
    sensitivity: np.ndarray | None = None  # [n_g] median |d(g_s, g_u)/d log g_j| over the members
    pareto_k: np.ndarray | None = None     # [H] PSIS k of the top hypotheses' importance weights (NaN for others)
    class_before: int = 0
    class_after: int = 0
    rate_before: float = 0.0
    rate_after: float = 0.0


@dataclass
class ModulationResult:
    """The comparison of every hypothesis over all neurons: evidences add, probabilities follow from the prior."""

    model: str
    vth_mV: float
    seed: int
    hypotheses: list[Hypothesis]
    log_prior: np.ndarray
    neurons: list[NeuronModulation]
    settings: dict
    spike: SpikeLevel | None = None  # the spike-level evidence (None: not available, ``settings`` says why)

    @property
    def log_evidence(self) -> np.ndarray:
        """Log evidence of each hypothesis, summed over the neurons."""
        return np.sum([n.log_evidence for n in self.neurons], axis=0)

    @property
    def se(self) -> np.ndarray:
        """Monte Carlo standard error of each log evidence (neurons combined)."""
        return np.sqrt(np.sum([n.se**2 for n in self.neurons], axis=0))

    @property
    def se_population(self) -> np.ndarray:
        """Standard error of each log evidence from the finite before-population (neurons combined)."""
        return np.sqrt(np.sum([n.se_population**2 for n in self.neurons], axis=0))

    @property
    def log_evidence_null(self) -> float:
        """Log evidence of "the modulator changed nothing that moves (g_s, g_u)" (no change at all)."""
        return float(np.sum([n.log_evidence_null for n in self.neurons]))

    @property
    def log_bayes_factor_vs_no_change(self) -> np.ndarray:
        """Log Bayes factor of each hypothesis against 'nothing changed in (g_s, g_u)'."""
        return self.log_evidence - self.log_evidence_null

    def channel_sensitivity(self) -> dict[str, float]:
        """Median over members (and neurons) of how far a unit log-ratio of each channel moves (g_s, g_u)."""
        from .hypotheses import modulable_channels

        m = get_model(self.model)
        sens = np.median([n.sensitivity for n in self.neurons], axis=0)
        return {c: float(sens[m.conductance_names.index(c)]) for c in modulable_channels(m)}

    def invisible_channels(self) -> list[str]:
        """Channels that move (g_s, g_u) by under 2 % of the most effective channel: invisible to the comparison."""
        sens = self.channel_sensitivity()
        top = max(sens.values())
        return [c for c, v in sens.items() if v < INVISIBLE * top]

    @property
    def probability(self) -> np.ndarray:
        """Posterior probability of each hypothesis (prior times evidence, normalised)."""
        lp = self.log_prior + self.log_evidence
        if not np.isfinite(lp).any():
            return np.zeros_like(lp)
        p = np.exp(lp - np.max(lp))
        return p / p.sum()

    @property
    def log_bayes_factor(self) -> np.ndarray:
        """Log Bayes factor against the best hypothesis, log Z_m - log Z_best (natural log; 0 for the best)."""
        le = self.log_evidence
        return le - np.max(le)

    @property
    def spike_probability(self) -> np.ndarray | None:
        """Posterior probability of each hypothesis from the whole spike trains (the spike-level evidence)."""
        return None if self.spike is None else self.spike.probability

    @property
    def lead_evidence(self) -> str:
        """The evidence that reads most of the recordings: ``"spike"`` where the result has it, else ``"dic"``."""
        return "dic" if self.spike is None else "spike"

    def probability_of(self, evidence: str) -> np.ndarray:
        """Return the hypothesis probabilities of ``evidence`` (``"dic"`` or ``"spike"``)."""
        if evidence not in ("dic", "spike"):
            raise DicsbiError(f"evidence must be 'dic' or 'spike', got {evidence!r}")
        if evidence == "spike":
            if self.spike is None:
                raise DicsbiError(f"no spike-level evidence in this result ({self.settings.get('spike_evidence')})")
            return self.spike.probability
        return self.probability

    def order(self, evidence: str = "dic") -> np.ndarray:
        """Hypothesis indices from the most to the least probable (ties keep their order).

        ``evidence``: ``"dic"`` (the DIC-level comparison) or ``"spike"`` (the spike-level evidence).
        """
        return np.argsort(-self.probability_of(evidence), kind="stable")

    def channel_probability(self, evidence: str = "dic") -> dict[str, float]:
        """Each modulable channel's probability of being targeted: the total probability of the hypotheses naming it.

        ``evidence``: ``"dic"`` or ``"spike"`` (as :meth:`order`).
        """
        p = self.probability_of(evidence)
        m = get_model(self.model)
        from .hypotheses import modulable_channels

        return {c: float(sum(p[i] for i, h in enumerate(self.hypotheses) if c in h.channels))
                for c in modulable_channels(m)}

    def changes(self, h: int) -> dict[str, np.ndarray]:
        """Pooled draws of each modulated channel's log-ratio under hypothesis ``h`` (all neurons)."""
        hyp = self.hypotheses[h]
        return {c: np.concatenate([n.log_ratio[h][:, j] for n in self.neurons]) for j, c in enumerate(hyp.channels)}

    @property
    def identified(self) -> bool:
        """Whether the best hypothesis reaches :data:`FLAT_PROBABILITY`."""
        return bool(self.probability.max() >= FLAT_PROBABILITY)

    def warnings(self) -> list[str]:
        """Situations the numbers alone do not show (DIC blind spots, unidentified changes)."""
        out = []
        for n in self.neurons:
            moved = _dic_shift(n.before_samples, n.after_samples)
            changed = n.class_before != n.class_after or (
                n.rate_before > 0 and abs(n.rate_after / n.rate_before - 1) > 0.25)
            if changed and moved < 0.5:
                out.append(f"neuron {n.id}: the firing changed (class {n.class_before}->{n.class_after}, rate "
                           f"{n.rate_before:.2f}->{n.rate_after:.2f} Hz) but its DIC posterior barely moved "
                           f"(shift {moved:.2f} posterior SDs): the change may lie in a DIC blind spot (e.g. "
                           "g_Kd or g_KCa in STG), which a comparison in DIC space cannot attribute")
        invisible = self.invisible_channels()
        if invisible:
            out.append(f"{', '.join(c[2:] for c in invisible)} barely move(s) (g_s, g_u) at V_th (under "
                       f"{INVISIBLE:.0%} of the most effective channel per unit log-ratio): a hypothesis naming such a "
                       "channel cannot be told apart from the same hypothesis without it, and one naming only such "
                       "channels means 'no change in DIC space'")
        # NaN only where no neuron has one
        k = np.fmax.reduce([n.pareto_k for n in self.neurons if n.pareto_k is not None], axis=0)
        shaky = [self.hypotheses[i].label for i in self.order()[:3] if np.isfinite(k[i]) and k[i] > PARETO_K_MAX]
        if shaky:
            out.append(f"importance sampling is unreliable for {', '.join(shaky)} (Pareto k > {PARETO_K_MAX}); "
                       "rerun with more --n-particles")
        best = int(np.argmax(self.probability))
        if self.log_bayes_factor_vs_no_change[best] < np.log(3.0):
            out.append(f"the best hypothesis is not supported against 'nothing changed in DIC space' (log Bayes "
                       f"factor {self.log_bayes_factor_vs_no_change[best]:.2f})")
        if not self.identified:
            out.append(f"no hypothesis reaches probability {FLAT_PROBABILITY}: the change is not identified from "
                       "these spike trains (several subsets explain it about equally well)")
        return out


def _pareto_k(lw: np.ndarray) -> float:
    """PSIS k of a hypothesis's importance weights ``lw[members, particles]``, pooled.

    The evidence is one importance-sampling average over (member, particle) pairs drawn from the mixture of the
    members' proposals, so the tail of the pooled weights is what decides its reliability.
    """
    from ..io.netcdf import pareto_k

    flat = lw.ravel()
    finite = np.isfinite(flat)
    if not finite.any():
        return float("nan")
    flat = np.where(finite, flat, np.min(flat[finite]) - 50.0)  # zero weight: far below the others
    return float(pareto_k(flat[None, :])[0])


def _dic_shift(before: np.ndarray, after: np.ndarray) -> float:
    """Distance between the two posterior means in units of their pooled standard deviation (Mahalanobis)."""
    cov = 0.5 * (np.cov(before.T) + np.cov(after.T)) + 1e-9 * np.eye(2)
    d = after.mean(0) - before.mean(0)
    return float(np.sqrt(d @ np.linalg.solve(cov, d)))


def modulate(before, after, model: str = "stg", hypotheses=None, n_members: int = 200, posterior=None,
             seed: int = 0, *, options: ComparisonOptions = ComparisonOptions(), spike_evidence="auto",
             progress: bool = False) -> ModulationResult:
    """Compare hypotheses of which channels a modulator changed (see the module docstring).

    Parameters
    ----------
    before, after
        Spike trains of the same neurons (``SpikeTrains``, files, or lists; matched by ID), or for ``before``
        an :class:`~dicsbi.pipeline.InferenceResult` already computed.
    model
        The registered model's name.
    hypotheses
        None (every subset of 1..``options.max_size`` modulable channels), a string ``"CaS+A, H"`` or a list
        of name tuples.
    n_members
        Before-population members per neuron.
    posterior
        A :class:`~dicsbi.posterior.DICPosterior` or a path (default: the shipped one for ``model``).
    seed
        Everything is reproducible by it (see the module docstring).
    options
        The comparison's settings (cost prior, typical change, importance samples).
    spike_evidence
        The spike-level evidence (:mod:`dicsbi.modulation.spike_evidence`) scored next to the DIC-level one:
        ``"auto"`` (the shipped model when there is one), a folder written by ``SpikeEvidence.save``, a
        :class:`~dicsbi.modulation.spike_evidence.SpikeEvidence`, or None (off).  ``result.settings
        ["spike_evidence"]`` says which was used, or why none was.
    progress
        Show a progress bar.
    """
    from ..pipeline import _resolve_posterior
    from ..progress import ProgressBar

    m = get_model(model)
    if n_members < 2:
        raise DicsbiError("n_members must be at least 2")
    post = _resolve_posterior(posterior, m)
    hyps = resolve_hypotheses(m, hypotheses, options.max_size)
    pre, before_trains, after_trains = prepare_inputs(before, after, m, post, n_members, seed, progress)
    cmp = _Comparison.create(m, post.vth_mV, hyps, options)
    cls_after, rate_after = firing_class(after_trains), rate_hz(after_trains)
    cls_before = firing_class(before_trains) if before_trains is not None else [r.firing_class for r in pre.recordings]
    rate_before = rate_hz(before_trains) if before_trains is not None else np.full(len(pre.recordings), np.nan)
    neurons = []
    with ProgressBar(progress, len(pre.recordings) * len(hyps), "hypotheses x neurons") as bar:
        for i, rec in enumerate(pre.recordings):
            ss = _seeds.stream(seed, _seeds.MODULATION + i)
            s_like, *s_size = (int(x) for x in ss.generate_state(1 + len(cmp.by_size)))
            like = GridLikelihood.from_posterior(post, after_trains.select([i]), seed=s_like)
            nm = cmp.neuron(rec, like, s_size, bar)
            nm.class_before, nm.class_after = int(cls_before[i]), int(cls_after[i])
            nm.rate_before, nm.rate_after = float(rate_before[i]), float(rate_after[i])
            neurons.append(nm)
    settings = options.settings(n_members, post.config.fingerprint)
    spike, settings["spike_evidence"] = _spike_level(spike_evidence, m, hyps, cmp.log_prior, before_trains,
                                                     after_trains, options)
    return ModulationResult(m.name, float(post.vth_mV), int(seed), hyps, cmp.log_prior, neurons, settings, spike)


def _spike_level(which, m, hyps, log_prior, before, after, options) -> tuple[SpikeLevel | None, str]:
    """Return the spike-level evidence asked for by ``modulate(spike_evidence=which)``, and what the settings record."""
    from .spike_evidence import SpikeEvidence, SpikeEvidenceError, pretrained_spike_evidence, spike_level

    if which is None or which is False:
        return None, "off"
    if before is None:
        return None, "not available: the before recordings were given as populations, not spike trains"
    try:
        ev = (which if isinstance(which, SpikeEvidence) else
              pretrained_spike_evidence(m.name) if which == "auto" else SpikeEvidence.load(which))
        if ev.config["model"] != m.name:
            raise SpikeEvidenceError(f"the spike-level evidence is for model {ev.config['model']!r}, not {m.name!r}")
        sha = ev.config.get("weights_sha256", "unsaved")[:12]
        return spike_level(ev, hyps, log_prior, before, after, options), f"weights {sha}"
    except SpikeEvidenceError as exc:
        if which != "auto":
            raise
        return None, f"not available: {exc}"


def _by_size(hyps) -> dict[int, list[int]]:
    by_size: dict[int, list[int]] = {}
    for i, h in enumerate(hyps):
        by_size.setdefault(h.size, []).append(i)
    return by_size


def compare_population(members, likelihood, model: str = "stg", hypotheses=None, *,
                       options: ComparisonOptions = ComparisonOptions(), vth_mV: float | None = None,
                       samples=None, seed: int = 0, id: str = "neuron") -> ModulationResult:
    """Compare the hypotheses for one neuron from a given before-population and after likelihood.

    What :func:`modulate` does after inferring the population and tabulating the after posterior, for callers
    that hold other inputs: the benchmark's oracles (the true before cell as a one-member population, or a narrow
    likelihood at the true after DICs).  ``members``: ``[N, n_g]`` conductances (N >= 1); ``likelihood``: a
    callable on ``d[..., 2]`` with ``mean``, ``cov`` and ``samples`` (e.g. :class:`~dicsbi.modulation.likelihood.
    GaussianLikelihood`); ``samples``: the (g_s, g_u) each member was solved for (default: its DICs).  Importance
    samples per subset size come from ``SeedSequence(seed)``.
    """
    from ..dics import compute_dics
    from ..progress import ProgressBar

    m = get_model(model)
    hyps = resolve_hypotheses(m, hypotheses, options.max_size)
    members = m.check_conductances(np.atleast_2d(members))
    vth = float(m.vth_mV if vth_mV is None else vth_mV)
    dics = compute_dics(m, members, vth)
    rec = _Members(str(id), members, dics, dics[:, 1:] if samples is None else np.asarray(samples, float))
    cmp = _Comparison.create(m, vth, hyps, options)
    seeds = [int(x) for x in np.random.SeedSequence(seed).generate_state(len(cmp.by_size))]
    with ProgressBar(False, len(hyps), "hypotheses") as bar:
        nm = cmp.neuron(rec, likelihood, seeds, bar)
    return ModulationResult(m.name, vth, int(seed), hyps, cmp.log_prior, [nm], options.settings(len(members), ""))


@dataclass
class _Members:
    """The parts of a :class:`~dicsbi.pipeline.RecordingPopulation` the comparison reads."""

    id: str
    conductances: np.ndarray
    dics: np.ndarray
    samples: np.ndarray


@dataclass(frozen=True)
class _Comparison:
    """What every neuron of one comparison shares: model, V_th, hypotheses, their prior and the settings."""

    m: Model
    vth: float
    hyps: list
    log_prior: np.ndarray
    by_size: dict
    options: ComparisonOptions

    @classmethod
    def create(cls, m, vth: float, hyps, options: ComparisonOptions) -> _Comparison:
        """Set up the comparison of ``hyps`` (their prior from ``options.size_penalty``)."""
        return cls(m, float(vth), hyps, hypothesis_log_prior(hyps, options.size_penalty), _by_size(hyps), options)

    def neuron(self, rec, like, seeds, bar) -> NeuronModulation:
        """Every hypothesis's evidence and change posterior for one neuron (one seed per subset size)."""
        m, vth, hyps, H = self.m, self.vth, self.hyps, len(self.hyps)
        out = NeuronModulation(rec.id, rec.conductances, rec.dics, rec.samples, np.empty((0, 2)),
                               np.full(H, -np.inf), np.full(H, np.inf), np.full(H, np.inf), np.zeros(H),
                               [None] * H, [None] * H, [None] * H)
        out.after_samples = like.samples
        _null_evidence(out, like(rec.dics[:, 1:]))
        out.sensitivity = _sensitivity(m, rec, vth)
        lw_by_h: list = [None] * H
        for (_, idx), sd in zip(sorted(self.by_size.items()), seeds, strict=True):
            index = np.array([[m.conductance_names.index(c) for c in hyps[i].channels] for i in idx])
            fw = ConductanceForward(m, rec.conductances, index, vth)
            opt = self.options
            ev = estimate_evidence(fw, like, like.mean, like.cov, opt.scale, opt.cost, opt.n_pilot, opt.n_particles,
                                   seed=sd)
            rng = np.random.default_rng(sd)
            for j, i in enumerate(idx):
                out.log_evidence[i], out.se[i] = ev.log_z[j], ev.se[j]
                out.se_population[i], out.ess[i] = ev.se_population[j], ev.ess[j]
                lw = ev.log_w[j].ravel()
                if np.isfinite(ev.log_z[j]):
                    p = np.exp(lw - lw.max())
                    pick = rng.choice(lw.size, N_DRAWS, p=p / p.sum())
                else:
                    pick = np.zeros(0, dtype=np.int64)
                k, s = np.unravel_index(pick, ev.log_w[j].shape)
                out.member[i] = k
                out.log_ratio[i] = ev.theta[j][k, s]
                out.after_dics[i] = fw.dics(j, k, ev.theta[j][k, s])
            for j, i in enumerate(idx):
                lw_by_h[i] = ev.log_w[j]
            bar.advance(len(idx))
        out.pareto_k = np.full(H, np.nan)
        for i in np.argsort(-(out.log_evidence + self.log_prior))[:PARETO_TOP]:
            out.pareto_k[i] = _pareto_k(lw_by_h[i])
        return out


def _null_evidence(out: NeuronModulation, ll0: np.ndarray) -> None:
    """Set the evidence of 'nothing changed': the after likelihood averaged over the before-population."""
    top = np.max(ll0)
    if np.isfinite(top):
        w0 = np.exp(ll0 - top)
        out.log_evidence_null = float(np.log(w0.mean()) + top)
        out.se_null = float(w0.std(ddof=1) / np.sqrt(len(w0)) / w0.mean()) if len(w0) > 1 else np.inf


def _sensitivity(m, rec, vth: float) -> np.ndarray:
    """Each channel's median |d(g_s, g_u) / d ln g| over the members (central differences)."""
    d0 = rec.dics[:, 1:]
    fw_all = ConductanceForward(m, rec.conductances, np.arange(m.n_conductances)[:, None], vth)
    step = 1e-3  # central differences of (g_s, g_u) in each channel's log-ratio
    moved = fw_all(np.stack([np.full((m.n_conductances, len(d0), 1), h) for h in (-step, step)], axis=2))
    return np.median(np.linalg.norm(moved[:, :, 1] - moved[:, :, 0], axis=-1), axis=1) / (2 * step)
