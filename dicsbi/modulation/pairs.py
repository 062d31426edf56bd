"""Before/after spike-train pairs drawn from the modulation model's prior.

They are the training data of the spike-level evidence (:mod:`dicsbi.modulation.spike_evidence`).

The generative program is the benchmark's ``prior`` set (:mod:`dicsbi.modulation.scenarios`) at scale:

1. a DIC target uniform over the model's box and one before cell of the training generator at it
   (:func:`dicsbi.compensation.generate_population`; unreachable targets are skipped, as in the scenarios);
2. ``changes_per_cell`` independent draws of (hypothesis, log-ratios) from the Pyro prior
   (:func:`dicsbi.modulation.model.change_prior`: the hypothesis prior, the truncated Laplace cost prior with
   typical change 1.5), each giving one modulated cell;
3. every cell simulated once at the fast tier over the model's training window, without noise;
4. a pair is *visible* when both recordings are non-silent and the firing class changes or the main frequency
   moves by more than 25 % (:func:`dicsbi.modulation.scenarios.visible_change`).

Each pair is marginally a draw of the prior, and visibility depends on that pair only, so the visible pairs are
(correlated, several per before cell, but) marginally exact draws of the prior conditioned on a visible change:
the distribution the benchmark's ``prior`` scenarios are drawn from, with other seeds.

Seeds: block ``b`` of a run with seed ``s`` draws everything from the stream ``(MOD_PAIRS, b)`` under ``s``
(:mod:`dicsbi._seeds`), so blocks are independent and a resumed run makes the same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _seeds
from ..compensation import UnreachableTargetError, generate_population, plausible_upper_bounds
from ..models import get_model
from ..spikes import SpikeTrains
from .hypotheses import enumerate_hypotheses, hypothesis_log_prior
from .model import change_prior, cost_scale
from .scenarios import TYPICAL_CHANGE, main_frequency, visible_change


@dataclass
class PairBlock:
    """One block of simulated pairs (all candidates, visible or not).

    ``hypothesis[k]``: index into :func:`~dicsbi.modulation.hypotheses.enumerate_hypotheses`; ``log_ratio[k]``:
    per conductance (0 where untouched); ``cell[k]``: the row of ``before_g`` modulated by pair ``k``.
    """

    model: str
    seed: int
    block: int
    before_g: np.ndarray
    cell: np.ndarray
    hypothesis: np.ndarray
    log_ratio: np.ndarray
    before: SpikeTrains
    after: SpikeTrains
    firing_class: np.ndarray
    main_hz: np.ndarray
    visible: np.ndarray


def _cells(m, n_cells: int, rng) -> np.ndarray:
    (s0, s1), (u0, u1) = m.dic_box
    cells = []
    for _ in range(n_cells):
        target = (float(rng.uniform(s0, s1)), float(rng.uniform(u0, u1)))
        try:
            cells.append(generate_population(m, *target, 1, seed=int(rng.integers(2**31))).conductances[0])
        except UnreachableTargetError:
            continue
    return np.array(cells).reshape(-1, m.n_conductances)


def simulate_pairs(model: str, n_cells: int, changes_per_cell: int, seed: int, block: int = 0) -> PairBlock:
    """Simulate one block: ``n_cells`` before cells with ``changes_per_cell`` prior changes each (docstring)."""
    from ..simulate import simulate

    m = get_model(model)
    rng = _seeds.rng(seed, _seeds.MOD_PAIRS, block)
    hyps = enumerate_hypotheses(m)
    log_prior = hypothesis_log_prior(hyps)
    index = [[m.conductance_names.index(c) for c in h.channels] for h in hyps]
    before_g = _cells(m, n_cells, rng)
    high = np.log(plausible_upper_bounds(m)[None] / before_g)
    n = len(before_g) * changes_per_cell
    cell = np.repeat(np.arange(len(before_g)), changes_per_cell)
    hyp = np.empty(n, dtype=np.int64)
    lr = np.zeros((n, m.n_conductances))
    for k in range(n):
        hyp[k], theta = change_prior(log_prior, index, high[cell[k]], cost_scale(TYPICAL_CHANGE),
                                     seed=int(rng.integers(2**31)))
        lr[k, index[hyp[k]]] = theta
    after_g = before_g[cell] * np.exp(lr)
    res = simulate(m, np.concatenate([before_g, after_g]), seed=int(rng.integers(2**31)), tier="fast")
    nb = len(before_g)
    cls, freq = main_frequency(res.trains)
    ok = res.status == 0
    fc = np.stack([cls[:nb][cell], cls[nb:]], 1)
    hz = np.stack([freq[:nb][cell], freq[nb:]], 1)
    vis = np.array([bool(ok[cell[k]] and ok[nb + k] and visible_change(fc[k], hz[k])) for k in range(n)])
    return PairBlock(m.name, int(seed), int(block), before_g, cell, hyp, lr, res.trains.select(np.arange(nb)),
                     res.trains.select(np.arange(nb, nb + n)), fc, hz, vis)
