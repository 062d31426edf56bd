"""Experiment design: which current step would tell the leading hypotheses apart.

When the before and after recordings leave several hypotheses about equally probable, a further recording under
a designed stimulus may separate them.  :func:`design_protocols` predicts, for each leading hypothesis, how its
modulated cells respond to each candidate protocol and scores how well the predicted responses tell every pair of
hypotheses apart:

1. **Predicted cells.**  Per leading hypothesis, ``n_cells`` draws of (before-population member, change) from its
   DIC-level change posterior (``NeuronModulation.member`` / ``log_ratio``: the Pyro model's posterior of the
   change given the after recording's DICs), applied to the member: the cells the hypothesis says the after
   recording came from.  A hypothesis with no draw (it cannot reach the after DICs) is left out and named.
2. **Protocols.**  The spontaneous recording (no stimulus: what the after recording already shows) and current
   steps of each amplitude over the middle third of the model's training window
   (:meth:`dicsbi.stimulus.Stimulus.step`), every cell simulated at the fast tier without noise.
3. **Response.**  Per cell and protocol, the log rates before, during and after the step window (so a rebound or
   a depolarisation block counts), and the ISI summary statistics of the spikes during the window
   (:func:`dicsbi.posterior.summary.summary_statistics`; zeros and a flag below 3 spikes).
4. **Separation.**  For a pair of hypotheses, the leave-one-out accuracy of a nearest-neighbour classifier on the
   z-scored responses of their cells: 0.5 is chance (the responses overlap), 1 means every predicted cell of
   one hypothesis responds unlike those of the other.  A protocol's score is the smallest accuracy over the pairs
   (it separates the leading hypotheses only if it separates each pair); ties broken by the mean.

This is a design criterion, not evidence: the draws come from the DIC-level change posterior, so a protocol
that scores well separates what the hypotheses *predict*; the recording made under it still has to be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..errors import DicsbiError
from ..models import get_model

DEFAULT_AMPLITUDES = (-1.0, -0.5, 0.5, 1.0, 2.0)  # uA/cm^2
N_CELLS = 24
N_FEATURES = 3 + 1 + 22  # three log rates, the >= 3 spikes flag, the summary statistics in the window


@dataclass
class ProtocolDesign:
    """The ranked protocols (:func:`design_protocols`).

    ``accuracy[p, k]``: separation of the hypothesis pair ``pairs[k]`` under protocol ``p`` (``amplitudes[p]``;
    0 is the spontaneous recording); ``order``: protocols from the best to the worst.
    """

    hypotheses: list[str]
    pairs: list[tuple[str, str]]
    amplitudes: np.ndarray
    window_ms: tuple[float, float]
    accuracy: np.ndarray
    left_out: list[str]
    seed: int
    responses: np.ndarray | None = None    # [protocol, cell, N_FEATURES] the predicted cells' responses
    cell_hypothesis: np.ndarray | None = None  # [cell] index into ``hypotheses``

    @property
    def score(self) -> np.ndarray:
        """Each protocol's worst pairwise separation."""
        return self.accuracy.min(1) if self.accuracy.size else np.zeros(len(self.amplitudes))

    @property
    def order(self) -> np.ndarray:
        """Protocol indices from the best to the worst (worst pair first, then the mean)."""
        return np.lexsort((-self.accuracy.mean(1) if self.accuracy.size else np.zeros(len(self.amplitudes)),
                           -self.score))

    def label(self, p: int) -> str:
        """Return a protocol's name."""
        a = self.amplitudes[p]
        return "no stimulus" if a == 0 else f"a {a:+g} uA/cm^2 step"

    def sentences(self) -> list[str]:
        """One sentence per hypothesis pair: the protocol that separates it best, against the recording alone."""
        out = []
        for k, (h1, h2) in enumerate(self.pairs):
            best = int(np.argmax(self.accuracy[:, k]))
            if best == 0:
                out.append(f"no step separates {h1} from {h2} better than the spontaneous recording (predicted "
                           f"responses told apart {self.accuracy[0, k]:.0%} of the time)")
                continue
            out.append(f"{self.label(best)} ({self.window_ms[0]:.0f}-{self.window_ms[1]:.0f} ms) separates {h1} from "
                       f"{h2}: predicted responses told apart {self.accuracy[best, k]:.0%} of the time "
                       f"(no stimulus: {self.accuracy[0, k]:.0%})")
        return out

    def figure(self):
        """Plot each hypothesis pair's separation against the protocol's step amplitude."""
        from ..report.figures import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 3.2))
        by = np.argsort(self.amplitudes)
        for k, (a, b) in enumerate(self.pairs):
            ax.plot(self.amplitudes[by], self.accuracy[by, k], "o-", label=f"{a} vs {b}")
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("current step (uA/cm^2; 0: no stimulus)")
        ax.set_ylabel("predicted responses told apart")
        ax.set_ylim(0.3, 1.02)
        ax.legend(fontsize=7)
        ax.set_title("Which stimulus separates the leading hypotheses?")
        fig.tight_layout()
        return fig

    def html(self) -> str:
        """Return the report's section."""
        from ..report.page import bullet_list, esc

        best = self.order[0]
        left = (f" Left out (no change draw reaches the after DICs): {esc(', '.join(self.left_out))}."
                if self.left_out else "")
        return (f"<h2>Experiment design</h2><p>The recordings do not separate the leading hypotheses "
                f"({esc(', '.join(self.hypotheses))}). Best protocol: {esc(self.label(best))} from "
                f"{self.window_ms[0]:.0f} to {self.window_ms[1]:.0f} ms (worst pair told apart "
                f"{self.score[best]:.0%} of the time, against {self.score[0]:.0%} with no stimulus).{left} "
                "The predictions come from each hypothesis's DIC-level change posterior; a recording under the "
                f"protocol still has to be compared (design.csv).</p>{bullet_list(self.sentences())}")

    def match(self, trains, protocol: int, k: int = 5) -> np.ndarray:
        """Return ``[n, hypotheses]``: which hypotheses' predicted responses a recording under ``protocol`` matches.

        Per recorded train of ``trains`` (made under ``protocol``, on the design's window and time axis), the share
        of each hypothesis among its ``k`` nearest predicted responses (z-scored as the predictions).
        """
        if self.responses is None or self.cell_hypothesis is None:
            raise DicsbiError("this design keeps no predicted responses")
        pred = self.responses[protocol]
        sd = pred.std(0)
        scale = np.where(sd > 1e-9, sd, 1.0)
        z_pred = (pred - pred.mean(0)) / scale
        z = (response_features(trains, self.window_ms) - pred.mean(0)) / scale
        near = np.argsort(np.sum((z[:, None] - z_pred[None]) ** 2, -1), axis=1, kind="stable")[:, :k]
        lab = self.cell_hypothesis[near]
        return np.stack([np.mean(lab == h, 1) for h in range(len(self.hypotheses))], 1)

    def table(self) -> dict[str, list]:
        """Columns of ``design.csv``: one row per (protocol, pair), the best protocol first."""
        cols: dict[str, list] = {k: [] for k in ("rank", "protocol", "amplitude_uA_cm2", "step_start_ms",
                                                 "step_stop_ms", "hypothesis_a", "hypothesis_b", "accuracy",
                                                 "protocol_score")}
        for rank, p in enumerate(self.order, 1):
            for k, (h1, h2) in enumerate(self.pairs):
                for key, v in zip(cols, (rank, self.label(p), float(self.amplitudes[p]), self.window_ms[0],
                                         self.window_ms[1], h1, h2, float(self.accuracy[p, k]),
                                         float(self.score[p]))):
                    cols[key].append(v)
        return cols


def response_features(trains, window_ms: tuple[float, float]) -> np.ndarray:
    """``[n, N_FEATURES]``: log rates before, in and after ``window_ms``, and the ISI statistics inside it."""
    from ..posterior.summary import summary_statistics
    from ..spikes import SpikeTrains

    t0, t1 = window_ms
    out = np.zeros((len(trains), N_FEATURES))
    inside = []
    for i, t in enumerate(trains):
        spans = ((trains.t_start_ms[i], t0), (t0, t1), (t1, trains.t_stop_ms[i]))
        out[i, :3] = [np.log1p(1000.0 * np.sum((t >= a) & (t < b)) / max(b - a, 1e-9)) for a, b in spans]
        inside.append(t[(t >= t0) & (t < t1)])
    ok = np.array([len(t) >= 3 for t in inside])
    out[:, 3] = ok
    if ok.any():
        st = SpikeTrains.from_list([t for t, k in zip(inside, ok) if k], t_start_ms=t0, t_stop_ms=t1)
        out[ok, 4:] = summary_statistics(st)
    return out


def separation(a: np.ndarray, b: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy telling the rows of ``a`` from those of ``b`` (0.5: chance)."""
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    sd = x.std(0)
    z = (x - x.mean(0)) / np.where(sd > 1e-9, sd, 1.0)
    d = np.sum((z[:, None] - z[None]) ** 2, -1)
    np.fill_diagonal(d, np.inf)
    # ties (identical responses) are split evenly: a deterministic tie-break would fake separation
    near = d <= d.min(1, keepdims=True) + 1e-12
    right = np.sum(near & (y[None] == y[:, None]), 1) / np.sum(near, 1)
    return float(right.mean())


def design_cells(model, cells: dict[str, np.ndarray], amplitudes=DEFAULT_AMPLITUDES, seed: int = 0,
                 duration_ms: float | None = None, threads: int | None = None,
                 left_out: list[str] | None = None) -> ProtocolDesign:
    """Rank protocols by how well they separate the responses of ``cells[label]`` (rows: conductance vectors)."""
    from ..simulate import simulate

    m = get_model(model)
    labels = [k for k, v in cells.items() if len(v)]
    if len(labels) < 2:
        raise DicsbiError("experiment design needs at least two hypotheses with predicted cells")
    dur = float(duration_ms or m.default_duration_ms)
    window = (dur / 3.0, 2.0 * dur / 3.0)
    amps = np.r_[0.0, [a for a in amplitudes if a != 0]]
    g = np.concatenate([cells[k] for k in labels])
    which = np.repeat(np.arange(len(labels)), [len(cells[k]) for k in labels])
    pairs = list(combinations(range(len(labels)), 2))
    acc = np.zeros((len(amps), len(pairs)))
    resp = np.zeros((len(amps), len(g), N_FEATURES))
    for p, amp in enumerate(amps):
        res = simulate(m, g, duration_ms=dur, seed=seed, tier="fast", stimulus=protocol_stimulus(amp, window),
                       n_threads=threads)
        f = resp[p] = response_features(res.trains, window)
        for k, (i, j) in enumerate(pairs):
            acc[p, k] = separation(f[which == i], f[which == j])
    return ProtocolDesign(labels, [(labels[i], labels[j]) for i, j in pairs], amps, window, acc,
                          list(left_out or []), int(seed), resp, which)


def protocol_stimulus(amplitude: float, window_ms: tuple[float, float]):
    """Return the stimulus of a protocol: None for 0 (the spontaneous recording), else the step over the window."""
    from ..stimulus import Stimulus

    return None if amplitude == 0 else Stimulus.step(window_ms[0], window_ms[1], float(amplitude))


def design_protocols(result, top: int = 3, evidence: str | None = None, neuron: int = 0, n_cells: int = N_CELLS,
                     amplitudes=DEFAULT_AMPLITUDES, seed: int = 0, threads: int | None = None) -> ProtocolDesign:
    """Rank current steps by how well they would separate the ``top`` leading hypotheses of ``result``.

    ``evidence``: which probabilities lead (default: the spike-level evidence where the result has it, else the
    DIC-level one); ``neuron``: whose before-population and change draws predict the responses.
    """
    lead = [int(i) for i in result.order(evidence or result.lead_evidence)[:top]]
    n = result.neurons[neuron]
    rng = np.random.default_rng(seed)
    names = get_model(result.model).conductance_names
    cells, left_out = {}, []
    for h in lead:
        hyp = result.hypotheses[h]
        if not len(n.log_ratio[h]):
            left_out.append(hyp.label)
            continue
        pick = rng.choice(len(n.log_ratio[h]), size=min(n_cells, len(n.log_ratio[h])), replace=False)
        g = n.before[n.member[h][pick]].copy()
        cols = [names.index(c) for c in hyp.channels]
        g[:, cols] *= np.exp(n.log_ratio[h][pick])
        cells[hyp.label] = g
    return design_cells(result.model, cells, amplitudes, seed, threads=threads, left_out=left_out)
