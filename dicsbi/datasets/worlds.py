"""Training worlds: the ways a data set makes cells at a DIC target, and the unseen world kept for testing.

p(DICs | spikes) depends on which conductance mixes the training world holds (the DICs do not fix a spike
train, the rest of the conductance vector does too), so a posterior trained on one generator is overconfident
on cells made another way.  A data set may therefore draw each target's population from a mixture of worlds
(``DatasetConfig.world``, e.g. ``"generator:0.4,wide:0.2,allpairs:0.2,modulated:0.2"``; the weights are stored
in the manifest and each row names its world):

``generator``
    today's two-step generator (:func:`dicsbi.compensation.generate_population`): seed cells, then the pair
    with the best yield at the target re-solved.
``wide``
    every maximal conductance log-uniform over the two decades below the model's plausible maximum, then the
    pair re-solved for the target by the pair ranking of the target's grid cell: exactly the wide component of
    the refinement's prior (:class:`dicsbi.refine.world.World`), so the refinement's prior and the training
    world agree.
``allpairs``
    seed cells as the generator's, with a compensation pair drawn uniformly among those that reach the target
    (not only the best-yielding one).
``modulated``
    generator cells with 1-3 channels (uniform size, then uniform channels among the modulable ones) scaled by
    factors from the neuromodulation cost prior (log-ratio Laplace(0, ln 1.5), truncated so that no
    conductance exceeds its plausible maximum; :mod:`dicsbi.modulation.model`), labelled with their recomputed
    DICs; a cell whose DICs leave the box is redrawn.

``unseen`` (a test world; never mixed with the others)
    every maximal conductance uniform in the model's Monte-Carlo box (``Model.bounds``), no compensation, kept
    when its DICs lie in the data set's (g_s, g_u) box and labelled with them; the designed target is ignored.

For the modulated and unseen worlds the stored target (``target_g_s``, ``target_g_u``) is each cell's own DICs,
the label a posterior is trained and scored on; for the others it is the target the cell was solved for (equal
to its DICs within the compensation's tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compensation import (
    UnreachableTargetError,
    candidate_pairs,
    compensate,
    draw_seed_population,
    generate_population,
    plausible_upper_bounds,
    seed_spec,
)
from ..dics import compute_dics
from ..errors import DicsbiError
from ..models import Model

TRAINING_WORLDS = ("generator", "wide", "allpairs", "modulated")
TEST_WORLDS = ("unseen",)
WORLDS = TRAINING_WORLDS + TEST_WORLDS
MODULATION_SCALE = float(np.log(1.5))  # the cost prior's default typical change (dicsbi.modulation.model)
MAX_ROUNDS = 40  # batches of candidates per population before a target is called unreachable


@dataclass(frozen=True)
class Cells:
    """One target's cells: conductances, their DICs at V_th, each cell's label (g_s, g_u) and how they were made."""

    conductances: np.ndarray  # [n, n_g]
    dics: np.ndarray          # [n, 3]
    labels: np.ndarray        # [n, 2]
    pair: str                 # "A+B", or "" where no pair was re-solved
    vth_mV: float
    world: str


def parse_worlds(spec: str | None) -> dict[str, float]:
    """Return the normalised weights of a world specification (``None``: the generator alone).

    ``"generator:0.4,wide:0.6"``, or one name for a weight of 1.  ``unseen`` cannot be mixed with training worlds.
    """
    if spec is None:
        return {"generator": 1.0}
    weights: dict[str, float] = {}
    for part in str(spec).split(","):
        name, _, w = part.strip().partition(":")
        if name not in WORLDS:
            raise DicsbiError(f"unknown world {name!r} in {spec!r}; worlds: {', '.join(WORLDS)}")
        try:
            value = float(w) if w else 1.0
        except ValueError:
            raise DicsbiError(f"world weight must be a number, got {w!r} in {spec!r}") from None
        if not (np.isfinite(value) and value > 0) or name in weights:
            raise DicsbiError(f"each world once, with a weight > 0 (got {part!r} in {spec!r})")
        weights[name] = value
    if "unseen" in weights and len(weights) > 1:
        raise DicsbiError(f"the unseen world is a test world and cannot be mixed with others (got {spec!r})")
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def choose_worlds(weights: dict[str, float], u: np.ndarray) -> list[str]:
    """Map uniforms ``u`` (one per target) to world names by the cumulative weights."""
    names = list(weights)
    edges = np.cumsum([weights[k] for k in names])
    return [names[min(int(np.searchsorted(edges, x, side="right")), len(names) - 1)] for x in np.asarray(u)]


def make_cells(model: Model, world: str, g_s: float, g_u: float, n: int, seed: int, box, pair: str = "auto"
               ) -> Cells:
    """Make ``n`` cells of ``world`` for the target (g_s, g_u); deterministic in ``seed``.

    ``box`` is the data set's ((g_s lo, hi), (g_u lo, hi)), which the modulated and unseen worlds' labels must
    lie in; ``pair`` is the generator's pair rule.  Raises :class:`UnreachableTargetError` when the world cannot
    make ``n`` cells for the target.
    """
    rng = np.random.default_rng(seed)
    box = np.asarray(box, dtype=float)
    if world == "generator":
        pop = generate_population(model, g_s, g_u, n, seed=seed, pair=pair)
        return Cells(pop.conductances, pop.dics, np.tile(pop.target, (n, 1)), "+".join(pop.pair), pop.vth_mV,
                     world)
    if world == "allpairs":
        return _allpairs(model, g_s, g_u, n, rng)
    if world == "wide":
        return _wide(model, g_s, g_u, n, rng, box)
    if world == "modulated":
        return _modulated(model, g_s, g_u, n, seed, rng, box, pair)
    if world == "unseen":
        return _unseen(model, n, rng, box)
    raise DicsbiError(f"unknown world {world!r}; worlds: {', '.join(WORLDS)}")


def _unreachable(model: Model, world: str, g_s: float, g_u: float, got: int, n: int) -> UnreachableTargetError:
    return UnreachableTargetError(f"{model.name}: the {world} world made {got} of {n} cells for (g_s, g_u) = "
                                  f"({g_s}, {g_u}) in {MAX_ROUNDS} batches")


def _allpairs(model: Model, g_s: float, g_u: float, n: int, rng: np.random.Generator) -> Cells:
    """Seed cells re-solved with a pair drawn uniformly among those that reach the target.

    Pairs are tried in a random order; a pair that makes no valid cell of a first batch of ``4 n`` seed cells
    does not reach the target and the next is tried.
    """
    vth = model.vth_mV
    pairs = candidate_pairs(model)
    got = 0
    for k in rng.permutation(len(pairs)):
        g, d = [], []
        for _ in range(MAX_ROUNDS // 4):
            comp = compensate(model, draw_seed_population(model, 4 * n, rng, vth), {"g_s": g_s, "g_u": g_u},
                              pairs[k], vth)
            g.append(comp.conductances[comp.valid])
            d.append(comp.dics[comp.valid])
            got = sum(map(len, g))
            if got >= n or got == 0:
                break
        if got >= n:
            return Cells(np.concatenate(g)[:n], np.concatenate(d)[:n], np.tile([g_s, g_u], (n, 1)),
                         "+".join(pairs[k]), vth, "allpairs")
    raise _unreachable(model, "allpairs", g_s, g_u, got, n)


def _wide(model: Model, g_s: float, g_u: float, n: int, rng: np.random.Generator, box: np.ndarray) -> Cells:
    from ..refine.world import WIDE, World

    world = World(model, model.vth_mV, box, candidate_pairs(model), wide=1.0)
    g_out, pairs = [], []
    for _ in range(MAX_ROUNDS):
        theta, _ = world.draw(np.tile([g_s, g_u], (2 * n, 1)), rng)
        g, pair = world.cells(theta, np.full(2 * n, WIDE))
        g_out.append(g[pair >= 0])
        pairs.extend(pair[pair >= 0].tolist())
        if len(pairs) >= n:
            g_all = np.concatenate(g_out)[:n]
            names = sorted({"+".join(world.pairs[k]) for k in pairs[:n]})
            return Cells(g_all, compute_dics(model, g_all), np.tile([g_s, g_u], (n, 1)), ",".join(names),
                         model.vth_mV, "wide")
    raise _unreachable(model, "wide", g_s, g_u, len(pairs), n)


def _in_box(labels: np.ndarray, box: np.ndarray) -> np.ndarray:
    return np.all((labels >= box[:, 0]) & (labels <= box[:, 1]), axis=1)


def _modulated(model: Model, g_s: float, g_u: float, n: int, seed: int, rng: np.random.Generator,
               box: np.ndarray, pair: str) -> Cells:
    base = generate_population(model, g_s, g_u, n, seed=seed, pair=pair)
    channels = [model.conductance_names.index(c) for c in seed_spec(model).candidate_pairs_from]
    upper = plausible_upper_bounds(model)
    out = np.full_like(base.conductances, np.nan)
    todo = np.arange(n)
    for _ in range(MAX_ROUNDS):
        g = base.conductances[todo].copy()
        for row in range(len(todo)):
            chosen = rng.choice(channels, size=int(rng.integers(1, 4)), replace=False)
            g[row, chosen] *= np.exp(_truncated_laplace(rng, np.log(upper[chosen] / g[row, chosen])))
        ok = _in_box(compute_dics(model, g)[:, 1:], box)
        out[todo[ok]] = g[ok]
        todo = todo[~ok]
        if not todo.size:
            dics = compute_dics(model, out)
            return Cells(out, dics, dics[:, 1:].copy(), "+".join(base.pair), base.vth_mV, "modulated")
    raise _unreachable(model, "modulated", g_s, g_u, n - todo.size, n)


def _truncated_laplace(rng: np.random.Generator, high: np.ndarray) -> np.ndarray:
    """Laplace(0, MODULATION_SCALE) log-ratios, each below its ``high`` (inverse CDF on the truncated range)."""
    b = MODULATION_SCALE
    cdf_hi = np.where(high < 0, 0.5 * np.exp(high / b), 1.0 - 0.5 * np.exp(-high / b))
    u = rng.uniform(size=high.shape) * cdf_hi
    return np.where(u < 0.5, b * np.log(2 * np.maximum(u, 1e-300)), -b * np.log(2 * (1 - u)))


def _unseen(model: Model, n: int, rng: np.random.Generator, box: np.ndarray) -> Cells:
    lo, hi = model.lower_bounds, model.upper_bounds
    g_out: list[np.ndarray] = []
    for _ in range(MAX_ROUNDS * 10):
        g = rng.uniform(lo, hi, (16 * n, lo.size))
        g_out.append(g[_in_box(compute_dics(model, g)[:, 1:], box)])
        if sum(map(len, g_out)) >= n:
            g_all = np.concatenate(g_out)[:n]
            dics = compute_dics(model, g_all)
            return Cells(g_all, dics, dics[:, 1:].copy(), "", model.vth_mV, "unseen")
    raise UnreachableTargetError(f"{model.name}: the unseen world found {sum(map(len, g_out))} of {n} cells "
                                 "with DICs in the box")
