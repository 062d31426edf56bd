"""Tables, figures, ``modulation.nc`` and the self-contained ``report.html`` of a modulation comparison.

``hypotheses.csv`` ranks every hypothesis (posterior probability, log evidence +- its Monte Carlo errors,
Bayes factor against the best, median change factors); ``channels.csv`` gives each channel's probability of
being targeted; ``changes.csv`` the posterior of the changes per neuron and hypothesis (median and 90%
interval of the factor ``g'/g``).  Figures: hypothesis probabilities, channel probabilities, the before and
after populations of the top hypotheses (conductance space and DIC plane) and cost-coloured reachability maps
of the top three (:mod:`dicsbi.modulation.maps`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.files import atomic_write_text
from ..io.tables import format_table_csv
from ..models import get_model
from ..report.figures import pyplot
from ..report.page import bullet_list, esc, html_page, save_figures
from ..spikes import CLASS_NAMES
from .hypotheses import modulable_channels
from .maps import cost_map, plot_cost_map

TOP_FIGURES = 3
def _q(x: np.ndarray, q) -> np.ndarray:
    return np.quantile(x, q) if len(x) else np.full(np.shape(q), np.nan)


def _describe(changes: dict[str, np.ndarray]) -> str:
    parts = []
    for c, lr in changes.items():
        lo, med, hi = np.exp(_q(lr, [0.05, 0.5, 0.95]))
        parts.append(f"{c[2:]} x{med:.2f} [{lo:.2f}, {hi:.2f}]")
    return "; ".join(parts)


def _spike_p(result) -> np.ndarray:
    """Return the spike-level probabilities, NaN where the result has none."""
    sp = result.spike_probability
    return np.full(len(result.hypotheses), np.nan) if sp is None else sp


def _spike_channels(result) -> dict[str, float]:
    """Return the spike-level channel probabilities, NaN where the result has none."""
    if result.spike is None:
        return {c: np.nan for c in modulable_channels(result.model)}
    return result.channel_probability("spike")


def hypotheses_table(result) -> str:
    """Return ``hypotheses.csv``: one row per hypothesis, most probable first (DIC-level evidence).

    The columns hold its probability (DIC-level; ``probability_spike``: the spike-level evidence), log evidence
    with standard errors, log Bayes factors against the best and against no change, log prior, the smallest ESS
    and largest Pareto k over neurons, the median change factor of each channel and the changes' medians with
    90% intervals.
    """
    order = result.order()
    chans = modulable_channels(result.model)
    prob, le, bf = result.probability, result.log_evidence, result.log_bayes_factor
    ess = np.min([n.ess for n in result.neurons], axis=0)
    pk = np.fmax.reduce([n.pareto_k for n in result.neurons], axis=0)  # NaN: no diagnostic for that hypothesis
    cols = {"rank": list(range(1, len(order) + 1)), "hypothesis": [result.hypotheses[i].label for i in order],
            "n_channels": [result.hypotheses[i].size for i in order], "probability": [prob[i] for i in order],
            "probability_spike": list(_spike_p(result)[order]),
            "log_evidence": [le[i] for i in order], "log_evidence_se": [result.se[i] for i in order],
            "log_evidence_se_population": [result.se_population[i] for i in order],
            "log_bayes_factor_vs_best": [bf[i] for i in order],
            "log_bayes_factor_vs_no_change": [result.log_bayes_factor_vs_no_change[i] for i in order],
            "log_prior": [result.log_prior[i] for i in order],
            "ess_min": [ess[i] for i in order],
            "pareto_k_max": [pk[i] for i in order]}
    med: dict[str, list[float]] = {c: [] for c in chans}
    text = []
    for i in order:
        ch = result.changes(i)
        text.append(_describe(ch))
        for c in chans:
            med[c].append(float(np.exp(np.median(ch[c]))) if c in ch and len(ch[c]) else float("nan"))
    for c in chans:
        cols[f"factor_{c[2:]}"] = med[c]
    cols["changes_median_90pct"] = text
    return format_table_csv(cols)


def _mixture_draws(result, channel: str) -> np.ndarray:
    """Draws of a channel's log-ratio given that it is targeted: hypotheses weighted by probability."""
    prob = result.probability
    rng = np.random.default_rng(result.seed)
    idx = [i for i, h in enumerate(result.hypotheses) if channel in h.channels and prob[i] > 0]
    if not idx:
        return np.empty(0)
    w = prob[idx] / prob[idx].sum()
    counts = rng.multinomial(2000, w)
    out = []
    for i, k in zip(idx, counts):
        d = result.changes(i)[channel]
        if k and len(d):
            out.append(rng.choice(d, k))
    return np.concatenate(out) if out else np.empty(0)


def channels_table(result) -> str:
    """Return ``channels.csv``: per channel, most probable first, the probability that it was targeted.

    ``probability_targeted`` is the DIC-level evidence's, ``probability_targeted_spike`` the spike-level one's.

    With it: its DIC sensitivity, whether it is invisible to the DICs, and the median and 90% interval of its
    change factor given that it was targeted (hypotheses weighted by probability).
    """
    p = result.channel_probability()
    ps = _spike_channels(result)
    chans = sorted(p, key=lambda c: -p[c])
    meds, lo, hi = [], [], []
    for c in chans:
        q = np.exp(_q(_mixture_draws(result, c), [0.05, 0.5, 0.95]))
        lo.append(q[0])
        meds.append(q[1])
        hi.append(q[2])
    sens = result.channel_sensitivity()
    invisible = result.invisible_channels()
    return format_table_csv({"channel": [c[2:] for c in chans], "probability_targeted": [p[c] for c in chans],
                             "probability_targeted_spike": [ps[c] for c in chans],
                             "dic_sensitivity": [sens[c] for c in chans],
                             "dic_invisible": [c in invisible for c in chans],
                             "factor_median_if_targeted": meds, "factor_q05_if_targeted": lo,
                             "factor_q95_if_targeted": hi})


def changes_table(result) -> str:
    """Return one row per (hypothesis, neuron, channel): the change factor's median and 90% interval."""
    rows: dict[str, list] = {k: [] for k in ("neuron", "hypothesis", "probability", "channel", "factor_median",
                                             "factor_q05", "factor_q95", "log_ratio_median")}
    prob = result.probability
    for i in result.order():
        h = result.hypotheses[i]
        for n in result.neurons:
            for j, c in enumerate(h.channels):
                lr = n.log_ratio[i][:, j] if len(n.log_ratio[i]) else np.empty(0)
                q = _q(lr, [0.05, 0.5, 0.95])
                rows["neuron"].append(n.id)
                rows["hypothesis"].append(h.label)
                rows["probability"].append(prob[i])
                rows["channel"].append(c[2:])
                rows["factor_median"].append(float(np.exp(q[1])))
                rows["factor_q05"].append(float(np.exp(q[0])))
                rows["factor_q95"].append(float(np.exp(q[2])))
                rows["log_ratio_median"].append(float(q[1]))
    return format_table_csv(rows)


# ------------------------------------------------------------------------------------------------ figures


def hypothesis_bars(result, top: int = 15):
    """Plot the posterior probability of the ``top`` hypotheses as bars, each with its log Bayes factor."""
    plt = pyplot()
    order = result.order()[:top]
    prob = result.probability
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(order) + 1.4))
    y = np.arange(len(order))[::-1]
    sp = result.spike_probability
    if sp is None:
        ax.barh(y, prob[order], color="#1f77b4")
    else:
        ax.barh(y + 0.2, prob[order], 0.4, color="#1f77b4", label="DIC-level evidence")
        ax.barh(y - 0.2, sp[order], 0.4, color="#2ca02c", label="spike-level evidence")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(y, [result.hypotheses[i].label for i in order], fontsize=8)
    for yy, i in zip(y, order):
        ax.text(prob[i] + 0.01, yy, f"log BF {result.log_bayes_factor[i]:.1f} ± {result.se[i]:.2f}", va="center",
                fontsize=7)
    ax.set_xlim(0, 1.25)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("posterior probability of the hypothesis")
    ax.set_title(f"Which channels changed? (top {len(order)} of {len(result.hypotheses)})")
    fig.tight_layout()
    return fig


def channel_bars(result):
    """Plot the marginal probability that each channel was modulated, with what the prior alone gives it."""
    plt = pyplot()
    p = result.channel_probability()
    chans = list(p)
    fig, ax = plt.subplots(figsize=(6, 3))
    if result.spike is None:
        ax.bar([c[2:] for c in chans], [p[c] for c in chans], color="#ff7f0e")
    else:
        ps = result.channel_probability("spike")
        x = np.arange(len(chans))
        ax.bar(x - 0.2, [p[c] for c in chans], 0.4, color="#ff7f0e", label="DIC-level")
        ax.bar(x + 0.2, [ps[c] for c in chans], 0.4, color="#2ca02c", label="spike-level")
        ax.set_xticks(x, [c[2:] for c in chans])
    prior = np.exp(result.log_prior)
    for k, c in enumerate(chans):  # what the hypothesis prior alone gives each channel
        level = sum(prior[i] for i, h in enumerate(result.hypotheses) if c in h.channels)
        ax.plot([k - 0.4, k + 0.4], [level, level], "k--", lw=1, label="prior" if k == 0 else None)
    ax.legend(fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(channel targeted)")
    ax.set_title("Marginal probability that each channel was modulated")
    fig.tight_layout()
    return fig


def populations_figure(result, h: int, neuron: int = 0):
    """Plot the before (grey) and after (colour) populations under hypothesis ``h``.

    The panels show the modulated channels' conductances (log axes) and the DIC plane with the after posterior.
    """
    plt = pyplot()
    m = get_model(result.model)
    n = result.neurons[neuron]
    hyp = result.hypotheses[h]
    cols = [m.conductance_names.index(c) for c in hyp.channels]
    after = n.before[n.member[h]].copy() if len(n.member[h]) else np.empty((0, n.before.shape[1]))
    if len(after):
        after[:, cols] *= np.exp(n.log_ratio[h])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ax = axes[0]
    if len(cols) >= 2:
        a, b = cols[0], cols[1]
    else:
        spread = np.std(np.log(n.before), axis=0)
        spread[cols[0]] = -1
        spread[m.conductance_names.index("g_leak")] = -1
        a, b = cols[0], int(np.argmax(spread))
    ax.scatter(n.before[:, a], n.before[:, b], s=6, c="0.6", label="before")
    if len(after):
        ax.scatter(after[:, a], after[:, b], s=6, c="#d62728", alpha=0.6, label=f"after ({hyp.label})")
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{m.conductance_names[a]} (mS/cm²)")
    ax.set_ylabel(f"{m.conductance_names[b]} (mS/cm²)")
    ax.legend(fontsize=7)
    ax.set_title(f"{n.id}: population in conductance space")
    ax = axes[1]
    ax.scatter(n.after_samples[:600, 0], n.after_samples[:600, 1], s=4, c="#1f77b4", alpha=0.3,
               label="after posterior (recording)")
    ax.scatter(n.before_dics[:, 1], n.before_dics[:, 2], s=6, c="0.6", label="before population")
    if len(after):
        ax.scatter(n.after_dics[h][:, 0], n.after_dics[h][:, 1], s=6, c="#d62728", alpha=0.6,
                   label="modulated population")
    ax.set_xlabel("g_s (units of g_leak)")
    ax.set_ylabel("g_u (units of g_leak)")
    ax.legend(fontsize=7)
    ax.set_title(f"DIC plane, P({hyp.label}) = {result.probability[h]:.2f}")
    fig.tight_layout()
    return fig


def write_modulation(result, out, maps: bool = True, max_map_members: int = 60, design=None) -> Path:
    """Write the tables, ``modulation.nc``, ``figures/`` and ``report.html`` into the folder ``out``.

    ``design``: a :class:`~dicsbi.modulation.design.ProtocolDesign` (``design.csv``, a figure and a report
    section), or None.
    """
    from ..io.netcdf import modulation_data, to_netcdf

    out = Path(out)
    atomic_write_text(out / "hypotheses.csv", hypotheses_table(result))
    atomic_write_text(out / "channels.csv", channels_table(result))
    atomic_write_text(out / "changes.csv", changes_table(result))
    to_netcdf(modulation_data(result), out / "modulation.nc")
    figs = {"hypotheses": hypothesis_bars(result), "channels": channel_bars(result)}
    if design is not None:
        atomic_write_text(out / "design.csv", format_table_csv(design.table()))
        figs["design"] = design.figure()
    top = [i for i in result.order()[:TOP_FIGURES] if result.probability[i] > 0]
    n0 = result.neurons[0]
    for rank, i in enumerate(top, 1):
        figs[f"populations_{rank}_{result.hypotheses[i].label}"] = populations_figure(result, i)
        if maps:
            cm = cost_map(result.model, result.hypotheses[i].channels, n0.before, max_members=max_map_members,
                          seed=result.seed)
            figs[f"reachability_{rank}_{result.hypotheses[i].label}"] = plot_cost_map(
                cm, before=n0.before_samples, after=n0.after_samples,
                title=f"{n0.id}: targets reachable by modulating {result.hypotheses[i].label}")
    atomic_write_text(out / "report.html", _report_html(result, save_figures(figs, out / "figures"), design))
    return out


def _evidence_note(result) -> str:
    """Say which evidence each probability is."""
    dic = ("<b>DIC-level</b>: the Pyro model's evidence of each hypothesis given the before-population and the "
           "after recording's (g_s, g_u) posterior (log evidence, Bayes factors and changes are this one's).")
    if result.spike is None:
        return f"<p>{dic} Spike-level evidence: {esc(str(result.settings.get('spike_evidence', 'off')))}.</p>"
    best = result.order("spike")[0]
    return (f"<p>{dic} <b>Spike-level</b>: the amortised posterior over the same hypotheses and the same Pyro prior, "
            "read from both whole spike trains (rate, burst structure, ISI shape, and the DIC posteriors), "
            f"trained on simulated before/after pairs ({esc(str(result.settings.get('spike_evidence')))}); "
            f"its best: {esc(result.hypotheses[best].label)} (P = {result.spike.probability[best]:.2f}).</p>")


def _report_html(result, imgs: str, design=None) -> str:
    order = result.order()[:10]
    prob, sp = result.probability, _spike_p(result)
    rows = "".join(
        f"<tr><td>{k}</td><td>{esc(result.hypotheses[i].label)}</td><td>{prob[i]:.3f}</td>"
        f"<td>{sp[i]:.3f}</td>"
        f"<td>{result.log_evidence[i]:.2f} ± {result.se[i]:.2f}</td><td>{result.log_bayes_factor[i]:.2f}</td>"
        f"<td>{esc(_describe(result.changes(i)))}</td></tr>" for k, i in enumerate(order, 1))
    chan = result.channel_probability()
    chan_sp = _spike_channels(result)
    sens = result.channel_sensitivity()
    crow = "".join(f"<tr><td>{c[2:]}</td><td>{p:.3f}</td><td>{chan_sp[c]:.3f}</td><td>{sens[c]:.3g}</td></tr>"
                   for c, p in sorted(chan.items(), key=lambda x: -x[1]))
    null = (f"<p>Log evidence of 'nothing changed in (g_s, g_u)': {result.log_evidence_null:.2f}; the best hypothesis "
            f"against it: log Bayes factor {result.log_bayes_factor_vs_no_change[result.order()[0]]:.2f}.</p>")
    neurons = "".join(
        f"<tr><td>{esc(n.id)}</td><td>{CLASS_NAMES[n.class_before]} → {CLASS_NAMES[n.class_after]}</td>"
        f"<td>{n.rate_before:.2f} → {n.rate_after:.2f}</td></tr>" for n in result.neurons)
    warn = bullet_list(result.warnings())
    s = result.settings
    return html_page("dicsbi modulation", f"""
<p>Model {esc(result.model)}, V<sub>th</sub> = {result.vth_mV} mV, {len(result.neurons)} neuron(s),
{len(result.hypotheses)} hypotheses, cost prior {esc(str(s['cost']))} with typical change factor
{s['typical_change']} (scale {s['cost_scale']:.3f}), {s['n_members']} population members,
{s['n_particles']} importance samples per member, seed {result.seed}.</p>
{f'<div class="warn">{warn}</div>' if warn else ''}
<h2>Neurons</h2><table><tr><th>neuron</th><th>firing class</th><th>rate (Hz)</th></tr>{neurons}</table>
<h2>Top hypotheses</h2>
{_evidence_note(result)}
<table><tr><th>rank</th><th>channels</th><th>P (DIC-level)</th><th>P (spike-level)</th>
<th>log evidence ± MC error</th><th>log BF vs best</th>
<th>changes: median factor [90% interval]</th></tr>{rows}</table>
{null}
<h2>Channels</h2><table><tr><th>channel</th><th>P(targeted), DIC-level</th><th>spike-level</th>
<th>|d(g_s, g_u)/d ln g| (median)</th></tr>{crow}
</table>
{"" if design is None else design.html()}
<h2>Figures</h2>{imgs}""", "Which channels did the modulator change?")


# ------------------------------------------------------------------------------------ the cost rule
def cost_hypotheses_table(rankings) -> str:
    """Return the cost rule's hypotheses table: one row per (neuron, hypothesis), best first.

    The columns hold the rank, the median cost, the share of members reaching and the median cheapest change
    factors.
    """
    cols: dict[str, list] = {k: [] for k in ("neuron", "rank", "hypothesis", "n_channels", "median_cost",
                                             "fraction_reaching", "target_g_s", "target_g_u", "median_change_factors")}
    for nid, r in rankings:
        for k, i in enumerate(r.order(), 1):
            ch = r.median_change(i)
            cols["neuron"].append(nid)
            cols["rank"].append(k)
            cols["hypothesis"].append(r.hypotheses[i].label)
            cols["n_channels"].append(r.hypotheses[i].size)
            cols["median_cost"].append(float(r.cost[i]))
            cols["fraction_reaching"].append(float(r.fraction[i]))
            cols["target_g_s"].append(float(r.target[0]))
            cols["target_g_u"].append(float(r.target[1]))
            cols["median_change_factors"].append(
                "; ".join(f"{c[2:]} x{np.exp(v):.3f}" for c, v in ch.items() if np.isfinite(v)))
    return format_table_csv(cols)


def cost_channels_table(rankings) -> str:
    """Return, per neuron and channel, the best rank and the cheapest median cost of a hypothesis naming it."""
    cols: dict[str, list] = {k: [] for k in ("neuron", "channel", "best_rank", "cheapest_median_cost")}
    for nid, r in rankings:
        rank = r.rank()
        for c in modulable_channels(r.model):
            named = [i for i, h in enumerate(r.hypotheses) if c in h.channels]
            if not named:  # a channel no listed hypothesis names
                continue
            cols["neuron"].append(nid)
            cols["channel"].append(c[2:])
            cols["best_rank"].append(int(min(rank[i] for i in named)))
            cols["cheapest_median_cost"].append(float(min(r.cost[i] for i in named)))
    return format_table_csv(cols)


def cost_bars(nid: str, ranking, top: int = 15):
    """Plot the median cost of neuron ``nid``'s ``top`` cheapest hypotheses, each with its share reaching."""
    plt = pyplot()
    order = ranking.order()[:top]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(order) + 1.4))
    y = np.arange(len(order))[::-1]
    cost = np.where(np.isfinite(ranking.cost[order]), ranking.cost[order], 0.0)
    ax.barh(y, cost, color="#2ca02c")
    ax.set_yticks(y, [ranking.hypotheses[i].label for i in order], fontsize=8)
    for yy, i in zip(y, order):
        label = f"{ranking.fraction[i]:.0%} reach" + ("" if np.isfinite(ranking.cost[i]) else " (under half)")
        ax.text(max(cost.max(), 1e-3) * 0.02 + (cost[list(order).index(i)]), yy, label, va="center", fontsize=7)
    ax.set_xlabel("median cost  Σ|ln(g'/g)|  over the members that reach")
    ax.set_title(f"{nid}: cheapest subsets onto ({ranking.target[0]:.2f}, {ranking.target[1]:.2f})")
    fig.tight_layout()
    return fig


def write_cost_ranking(rankings, members: dict, out, maps: bool = True, max_map_members: int = 60,
                       seed: int = 0) -> Path:
    """Write the outputs of :func:`~dicsbi.modulation.cost_rule.rank_by_cost` into ``out`` and return it.

    They are ``hypotheses.csv``, ``channels.csv``, ``figures/`` and ``report.html``; ``members`` maps a neuron
    id to its before-population, for the reachability maps.
    """
    out = Path(out)
    atomic_write_text(out / "hypotheses.csv", cost_hypotheses_table(rankings))
    atomic_write_text(out / "channels.csv", cost_channels_table(rankings))
    nid, r0 = rankings[0]
    figs = {f"costs_{n}": cost_bars(n, r) for n, r in rankings}
    if maps:
        for rank, i in enumerate(r0.order()[:TOP_FIGURES], 1):
            h = r0.hypotheses[i]
            cm = cost_map(r0.model, h.channels, members[nid], max_members=max_map_members, seed=seed)
            fig = plot_cost_map(cm, title=f"{nid}: targets reachable by modulating {h.label}")
            fig.axes[0].plot(*r0.target, "k*", ms=12, label="after DICs")
            figs[f"reachability_{rank}_{h.label}"] = fig
    imgs = save_figures(figs, out / "figures")
    rows = "".join(
        f"<tr><td>{esc(n)}</td><td>{k}</td><td>{esc(r.hypotheses[i].label)}</td>"
        f"<td>{r.cost[i]:.3f}</td><td>{r.fraction[i]:.0%}</td></tr>"
        for n, r in rankings for k, i in enumerate(r.order()[:10], 1))
    s = r0.settings
    atomic_write_text(out / "report.html", html_page("dicsbi modulation (cost rule)", f"""
<p>Model {esc(r0.model)}: every subset ranked by the median (over {s['n_members']} before-population
members) of the cheapest change {'Σ|ln(g′/g)|' if s['cost'] == 'laplace' else 'Σ ln(g′/g)²'} that moves a member
onto the after recording's DICs (the mean of its posterior; single channels within {s['tolerance']} g_leak), with
every conductance positive and under its plausible bound.  This is the published rule, a ranking without
probabilities; <code>dicsbi modulate</code> without <code>--method cost</code> weighs the same hypotheses as a
Bayesian comparison.  Seed {seed}.</p>
<h2>Top hypotheses</h2>
<table><tr><th>neuron</th><th>rank</th><th>channels</th><th>median cost</th><th>members reaching</th></tr>{rows}
</table><h2>Figures</h2>{imgs}""", "Which channels did the modulator change? The cost rule"))
    return out
