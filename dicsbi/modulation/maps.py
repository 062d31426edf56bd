"""Reachability maps coloured by cost.

A map shows which (g_s, g_u) targets a subset of channels can reach from a before-population without aberrant
conductances, and how large a change that takes.

For every target of a (g_s, g_u) grid and every member of the population, the cheapest change of the subset's
channels that puts the member's DICs exactly on the target is found, with the cost of the modulation model
(:mod:`dicsbi.modulation.model`): ``sum_j |ln(g'_j / g_j)|`` (the Laplace prior's negative log density up to
its scale), under the constraint that every conductance stays positive and below the model's plausible bound.

* 2 channels: the 2 x 2 system has one solution per member (:func:`dicsbi.compensation.compensate`, Newton with
  the calcium dependence);
* 3 channels: a one-dimensional family; the first channel's log-ratio is swept over ``n_sweep`` values in
  ``[-sweep, sweep]`` (0 included) and the other two are re-solved at each, keeping the cheapest valid one;
* 1 channel: the member moves along a curve; the channel's log-ratio is swept finely and a target is reached
  when the curve passes through its grid cell (``|Δg_s|, |Δg_u| <=`` half a grid step).

The map records the fraction of members that reach each target and the median cost over those: the red area of
:func:`plot_cost_map` is where no member reaches (fraction 0).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..compensation import compensate, conductance_index
from ..dics import SensitivityOperator
from ..errors import DicsbiError
from ..models import Model, get_model


@dataclass(frozen=True)
class CostMap:
    """``fraction[i, j]`` of members reaching ``(g_s[j], g_u[i])`` and the median ``cost[i, j]`` over them."""

    model: str
    channels: tuple[str, ...]
    g_s: np.ndarray
    g_u: np.ndarray
    fraction: np.ndarray
    cost: np.ndarray
    n_members: int

    @property
    def label(self) -> str:
        """Channel names without the ``g_`` prefix joined by ``+`` (``"CaS+A"``)."""
        return "+".join(c[2:] for c in self.channels)


def default_grid(model: Model, step: float = 1.0):
    """Return the ``(g_s, g_u)`` grid axes covering the model's DIC box in steps of ``step`` (ends included)."""
    (s0, s1), (u0, u1) = model.dic_box
    return np.arange(s0, s1 + step / 2, step), np.arange(u0, u1 + step / 2, step)


def _median_over_reaching(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cost[targets, members]`` with inf for not reached -> (fraction, median cost)."""
    ok = np.isfinite(cost)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: unreachable targets
        med = np.nanmedian(np.where(ok, cost, np.nan), axis=1)
    return ok.mean(axis=1), med


def cost_map(model: str | Model, channels, members: np.ndarray, g_s=None, g_u=None, max_members: int = 100,
             sweep: float = 3.0, n_sweep: int = 13, seed: int = 0, vth_mV=None) -> CostMap:
    """Compute the cost map of the subset ``channels`` (1 to 3 names) from ``members`` ``[N, n_g]``.

    At most ``max_members`` of the members are used, drawn with ``seed``; grid default: the model's DIC box in
    steps of 1.
    """
    m = get_model(model)
    cols = sorted({conductance_index(m, c) for c in channels})
    if not 1 <= len(cols) <= 3:
        raise DicsbiError(f"a reachability map needs 1 to 3 distinct channels, got {list(channels)!r}")
    names = tuple(m.conductance_names[c] for c in cols)
    members = m.check_conductances(members)
    if members.shape[0] > max_members:
        members = members[np.random.default_rng(seed).choice(members.shape[0], max_members, replace=False)]
    gs0, gu0 = default_grid(m)
    g_s = gs0 if g_s is None else np.asarray(g_s, dtype=float)
    g_u = gu0 if g_u is None else np.asarray(g_u, dtype=float)
    GS, GU = np.meshgrid(g_s, g_u)
    targets = np.stack([GS.ravel(), GU.ravel()], axis=1)
    if len(cols) == 1:
        cost = _single(m, cols[0], members, g_s, g_u, sweep, vth_mV)
    else:
        cost = _solved(m, cols, members, targets, sweep, n_sweep, vth_mV)
    fraction, med = _median_over_reaching(cost)
    shape = (len(g_u), len(g_s))
    return CostMap(m.name, names, g_s, g_u, fraction.reshape(shape), med.reshape(shape), members.shape[0])


def _pair_cost(m, pair_cols, cells, targets_rep, base, vth_mV) -> np.ndarray:
    comp = compensate(m, cells, {"g_s": targets_rep[:, 0], "g_u": targets_rep[:, 1]},
                      [m.conductance_names[c] for c in pair_cols], vth_mV)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.abs(np.log(comp.conductances[:, pair_cols] / base[:, pair_cols])).sum(1)
    return np.where(comp.valid, c, np.inf)


def _solved(m, cols, members, targets, sweep, n_sweep, vth_mV, chunk: int = 200_000) -> np.ndarray:
    N, T = members.shape[0], targets.shape[0]
    free = cols[0] if len(cols) == 3 else None
    pair = cols[1:] if len(cols) == 3 else cols
    levels = np.linspace(-sweep, sweep, n_sweep) if free is not None else np.zeros(1)
    if free is not None and not np.any(levels == 0):
        levels = np.sort(np.append(levels, 0.0))
    best = np.full((T, N), np.inf)
    upper_free = None
    if free is not None:
        from ..compensation import plausible_upper_bounds

        upper_free = plausible_upper_bounds(m)[free]
    per = max(1, chunk // N)
    for lv in levels:
        shifted = members.copy()
        if free is not None:
            shifted[:, free] *= np.exp(lv)
            if np.any(shifted[:, free] > upper_free):
                ok_member = shifted[:, free] <= upper_free
            else:
                ok_member = np.ones(N, bool)
        else:
            ok_member = np.ones(N, bool)
        for t0 in range(0, T, per):
            t = targets[t0 : t0 + per]
            cells = np.tile(shifted, (len(t), 1))
            c = _pair_cost(m, pair, cells, np.repeat(t, N, axis=0), np.tile(members, (len(t), 1)), vth_mV)
            c = c.reshape(len(t), N) + abs(lv)
            c[:, ~ok_member] = np.inf
            best[t0 : t0 + len(t)] = np.minimum(best[t0 : t0 + len(t)], c)
    return best


def _single(m, col, members, g_s, g_u, sweep, vth_mV, n: int = 1201) -> np.ndarray:
    from ..compensation import plausible_upper_bounds

    theta = np.linspace(-sweep, sweep, n)
    N = members.shape[0]
    g = np.repeat(members[:, None, :], n, axis=1)
    g[:, :, col] *= np.exp(theta)[None, :]
    op = SensitivityOperator(m, m.vth_mV if vth_mV is None else vth_mV)
    flat = g.reshape(-1, g.shape[-1])
    d = np.einsum("nij,nj->ni", op(flat)[:, 1:, :], flat).reshape(N, n, 2)
    valid = g[:, :, col] <= plausible_upper_bounds(m)[col]
    hs = 0.5 * (g_s[1] - g_s[0]) if len(g_s) > 1 else 0.5
    hu = 0.5 * (g_u[1] - g_u[0]) if len(g_u) > 1 else 0.5
    i = np.rint((d[..., 1] - g_u[0]) / (2 * hu)).astype(np.int64)
    j = np.rint((d[..., 0] - g_s[0]) / (2 * hs)).astype(np.int64)
    inside = valid & (i >= 0) & (i < len(g_u)) & (j >= 0) & (j < len(g_s))
    best = np.full((len(g_u) * len(g_s), N), np.inf)
    k, s = np.nonzero(inside)
    cell = i[k, s] * len(g_s) + j[k, s]
    np.minimum.at(best, (cell, k), np.abs(theta[s]))
    return best


def plot_cost_map(cmap: CostMap, before=None, after=None, ax=None, title: str | None = None):
    """Plot a cost map: unreachable targets red, reachable ones coloured by the median cost.

    ``before``/``after``: (g_s, g_u) posterior samples drawn on top (white and black points).
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if ax is None:
        _, ax = plt.subplots(figsize=(5.8, 4.2))
    ds = cmap.g_s[1] - cmap.g_s[0] if len(cmap.g_s) > 1 else 1.0
    du = cmap.g_u[1] - cmap.g_u[0] if len(cmap.g_u) > 1 else 1.0
    extent = (cmap.g_s[0] - ds / 2, cmap.g_s[-1] + ds / 2, cmap.g_u[0] - du / 2, cmap.g_u[-1] + du / 2)
    ax.imshow(np.where(cmap.fraction > 0, np.nan, 1.0), origin="lower", extent=extent,
              cmap=ListedColormap(["#d62728"]), aspect="auto", interpolation="nearest")
    im = ax.imshow(np.where(cmap.fraction > 0, cmap.cost, np.nan), origin="lower", extent=extent, cmap="viridis",
                   aspect="auto", interpolation="nearest")
    for samples, colour, label in ((before, "white", "before posterior"), (after, "black", "after posterior")):
        if samples is not None and len(samples):
            s = np.asarray(samples)[:400]
            ax.scatter(s[:, 0], s[:, 1], s=4, c=colour, alpha=0.5, edgecolors="none", label=label)
    if before is not None or after is not None:
        ax.legend(loc="upper right", fontsize=7, markerscale=3, framealpha=0.7)
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_xlabel("g_s (units of g_leak)")
    ax.set_ylabel("g_u (units of g_leak)")
    ax.set_title(title or f"{cmap.model.upper()}: reaching targets by modulating {cmap.label}")
    ax.figure.colorbar(im, ax=ax, label="median cost  Σ|ln(g'/g)|  (red: unreachable)")
    return ax.figure
