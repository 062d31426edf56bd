"""Reachability of DIC targets: which (g_s, g_u) a pair of conductances can reach from the seed population.

For every target of a (g_s, g_u) grid, every seed cell re-solves the pair (:func:`dicsbi.compensation.compensate`)
and the map records the fraction of cells that end valid (all conductances >= 0 and plausible, residual below
``tol``) and, over those, the median of the largest relative change ``|g_new - g_seed| / g_seed`` of the
re-solved pair: how far the channels had to move.  All grid points and seed cells are solved in one vectorised
call per chunk.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..compensation import compensate, conductance_index, draw_seed_population, relative_change
from ..errors import DicsbiError
from ..models import Model, get_model


@dataclass(frozen=True)
class ReachabilityMap:
    """``fraction[i, j]`` and ``change[i, j]`` at ``(g_s[j], g_u[i])``."""

    model: str
    pair: tuple[str, str]
    g_s: np.ndarray
    g_u: np.ndarray
    fraction: np.ndarray
    change: np.ndarray
    n_seeds: int
    seed: int


def reachability(model: str | Model, pair, g_s=None, g_u=None, n_seeds: int = 200, seed: int = 0,
                 tol: float = 1e-6, max_iter: int = 100, vth_mV=None, chunk_cells: int = 200_000
                 ) -> ReachabilityMap:
    """Reachability map of ``pair`` over a grid (default: the model's DIC box in steps of 1)."""
    model = get_model(model)
    if len(pair) != 2:
        raise DicsbiError(f"pair must name two conductances, got {pair!r}")
    cols = [conductance_index(model, p) for p in pair]
    (s0, s1), (u0, u1) = model.dic_box
    g_s = np.arange(s0, s1 + 0.5, 1.0) if g_s is None else np.asarray(g_s, dtype=float)
    g_u = np.arange(u0, u1 + 0.5, 1.0) if g_u is None else np.asarray(g_u, dtype=float)
    seeds = draw_seed_population(model, n_seeds, np.random.default_rng(seed), vth_mV)
    m = seeds.shape[0]
    GS, GU = np.meshgrid(g_s, g_u)
    targets = np.stack([GS.ravel(), GU.ravel()], axis=1)
    fraction = np.empty(len(targets))
    change = np.full(len(targets), np.nan)
    per_chunk = max(1, chunk_cells // m)
    for start in range(0, len(targets), per_chunk):
        t = targets[start : start + per_chunk]
        cells = np.tile(seeds, (len(t), 1))
        comp = compensate(model, cells, {"g_s": np.repeat(t[:, 0], m), "g_u": np.repeat(t[:, 1], m)}, pair,
                          vth_mV, tol=tol, max_iter=max_iter)
        ok = comp.valid.reshape(len(t), m)
        fraction[start : start + len(t)] = ok.mean(axis=1)
        rel = relative_change(model, cells, comp.conductances, pair).reshape(len(t), m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: unreachable targets
            med = np.nanmedian(np.where(ok, rel, np.nan), axis=1)
        change[start : start + len(t)] = med
    shape = (len(g_u), len(g_s))
    c0, c1 = cols
    return ReachabilityMap(model.name, (model.conductance_names[c0], model.conductance_names[c1]), g_s, g_u,
                           fraction.reshape(shape), change.reshape(shape), m, seed)


def plot_reachability(rmap: ReachabilityMap, ax=None, min_fraction: float = 0.0):
    """Plot a reachability map in the style of the COSYNE abstract's Figure 1.

    Unreachable targets are red, reachable ones coloured by the median relative change of the re-solved pair
    (log scale), the seed target marked.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap, LogNorm

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    extent = (rmap.g_s[0] - 0.5, rmap.g_s[-1] + 0.5, rmap.g_u[0] - 0.5, rmap.g_u[-1] + 0.5)
    unreachable = np.where(rmap.fraction <= min_fraction, 1.0, np.nan)
    ax.imshow(unreachable, origin="lower", extent=extent, cmap=ListedColormap(["#d62728"]), aspect="auto")
    shown = np.where(rmap.fraction > min_fraction, np.maximum(rmap.change, 1e-3), np.nan)
    finite = shown[np.isfinite(shown)]
    norm = LogNorm(vmin=max(finite.min(), 1e-3), vmax=max(finite.max(), 1e-2)) if finite.size else None
    im = ax.imshow(shown, origin="lower", extent=extent, cmap="viridis", norm=norm, aspect="auto")
    model = get_model(rmap.model)
    assert model.seed_spec is not None, f"model {model.name!r} has no seed population spec"
    seed_target = model.seed_spec.dic_targets
    ax.plot(seed_target[1], seed_target[2], marker="*", color="white", markeredgecolor="black", ms=12)
    ax.set_xlabel("g_s (units of g_leak)")
    ax.set_ylabel("g_u (units of g_leak)")
    ax.set_title(f"{rmap.model.upper()}: re-solving {rmap.pair[0]}, {rmap.pair[1]}")
    ax.figure.colorbar(im, ax=ax, label="median relative change of the pair")
    return ax.figure
