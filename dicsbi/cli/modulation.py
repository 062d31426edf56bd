"""``dicsbi modulate``, ``dicsbi reachability`` and ``dicsbi track``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import numpy as np
import typer

from ..errors import DicsbiError
from .app import ModelOption, OutOption, PosteriorOption, ProgressOption, SeedOption, UnitOption, _set_threads, app, err


def _size_penalty(text: str) -> float | str:
    if text == "uniform":
        return text
    try:
        return float(text)
    except ValueError:
        raise DicsbiError(f"--size-penalty must be a positive number or 'uniform', got {text!r}") from None


@app.command()
def modulate(
    before: Annotated[Path, typer.Argument(help="spike times before the modulator (Spike2Pop CSV, long CSV, NWB)")],
    after: Annotated[Path, typer.Argument(help="spike times after, same neuron IDs")],
    out: OutOption,
    model: ModelOption = "stg",
    hypotheses: Annotated[str | None, typer.Option(help="hypotheses to compare, e.g. 'CaS+A, H, A+H' "
                                                        "(default: every subset of 1..max-size channels)")] = None,
    max_size: Annotated[int, typer.Option(help="largest subset when enumerating hypotheses")] = 3,
    size_penalty: Annotated[str, typer.Option(help="prior weight per extra channel, or 'uniform'")] = "1",
    typical_change: Annotated[float, typer.Option(help="factor a modulated conductance typically moves by "
                                                       "(sets the cost prior's scale)")] = 1.5,
    cost: Annotated[str, typer.Option(help="cost prior on log-ratios: laplace or gaussian")] = "laplace",
    n_members: Annotated[int, typer.Option(help="before-population size per neuron")] = 200,
    n_particles: Annotated[int, typer.Option(help="importance samples per member and hypothesis")] = 256,
    posterior: PosteriorOption = None,
    unit: Annotated[str | None, typer.Option(help="time unit of the inputs: ms, s or us (default ms)")] = None,
    maps: Annotated[bool, typer.Option(help="draw reachability maps of the top 3 hypotheses")] = True,
    method: Annotated[str, typer.Option(help="evidence (Bayesian comparison) or cost (the published rule: the "
                                             "cheapest subset onto the after DICs)")] = "evidence",
    tolerance: Annotated[float, typer.Option(help="--method cost: how close (g_leak units) a single channel "
                                                  "must bring a member to the after DICs")] = 0.1,
    spike_evidence: Annotated[str, typer.Option(help="spike-level evidence beside the DIC-level one: auto (the "
                                                     "shipped model), off, or a folder of a trained one")] = "auto",
    design: Annotated[str, typer.Option(help="rank current steps by how well they would separate the leading "
                                             "hypotheses: auto (when no hypothesis reaches P 0.5), always or "
                                             "never")] = "auto",
    seed: SeedOption = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads")] = None,
    progress: ProgressOption = True,
) -> None:
    """Which channels did a modulator change?  A Bayesian comparison of channel subsets.

    From before/after spikes (``--method cost``: the published rule's ranking by the cheapest conductance change).
    """
    _set_threads(threads)
    from ..io.files import OutputFolder
    from ..io.readers import read_spike_trains
    from ..modulation import modulate as run
    from ..modulation.options import ComparisonOptions, CostPrior
    from ..modulation.output import write_modulation
    from ..posterior.artifact import load_posterior

    if method not in ("evidence", "cost"):
        raise DicsbiError(f"--method must be 'evidence' or 'cost', got {method!r}")
    if design not in ("auto", "always", "never"):
        raise DicsbiError(f"--design must be 'auto', 'always' or 'never', got {design!r}")
    b, _ = read_spike_trains(before, unit=unit)
    a, _ = read_spike_trains(after, unit=unit)
    post = load_posterior(posterior or model, model=model)
    if method == "cost":
        _modulate_by_cost(b, a, out, model, hypotheses, max_size, cost, tolerance, n_members, post, maps, seed,
                          progress)
        return
    options = ComparisonOptions(max_size=max_size, size_penalty=_size_penalty(size_penalty),
                                typical_change=typical_change, cost=cast(CostPrior, cost),
                                n_particles=n_particles)
    result = run(b, a, model, hypotheses, n_members, post, seed, options=options, progress=progress,
                 spike_evidence=None if spike_evidence == "off" else spike_evidence)
    plan = _design(result, design, seed, threads)
    with OutputFolder(out) as stage:
        write_modulation(result, stage, maps=maps, design=plan)
    _print_outcome(result, plan, out)


def _print_outcome(result, plan, out) -> None:
    """Say what ``dicsbi modulate`` found and wrote: each evidence's best hypothesis, notes, the design."""
    best = result.order()[0]
    top = result.order("spike")[0] if result.spike is not None else None
    spike = "" if top is None else (f"; spike-level evidence: best {result.hypotheses[top].label} "
                                     f"(P = {result.spike.probability[top]:.2f})")
    err.print(f"{len(result.neurons)} neuron(s), {len(result.hypotheses)} hypotheses: DIC-level evidence: best "
              f"{result.hypotheses[best].label} (P = {result.probability[best]:.2f}){spike}; wrote hypotheses.csv, "
              f"channels.csv, changes.csv, modulation.nc, figures/ and report.html to {out}", soft_wrap=True)
    for w in result.warnings():
        err.print(f"[yellow]note:[/] {w}", soft_wrap=True)
    for line in [] if plan is None else plan.sentences():
        err.print(f"design: {line}", soft_wrap=True)


def _design(result, when: str, seed: int, threads):
    """Return the experiment design of ``dicsbi modulate --design`` (None when not asked for or not needed)."""
    from ..modulation.design import design_protocols

    if when == "never" or (when == "auto" and result.probability_of(result.lead_evidence).max() >= 0.5):
        return None
    try:
        return design_protocols(result, seed=seed, threads=threads)
    except DicsbiError as exc:
        if when == "always":
            raise
        err.print(f"[yellow]note:[/] no experiment design: {exc}", soft_wrap=True)
        return None


def _modulate_by_cost(b, a, out, model, hypotheses, max_size, cost, tolerance, n_members, post, maps, seed,
                      progress) -> None:
    from ..io.files import OutputFolder
    from ..models import get_model
    from ..modulation.cost_rule import rank_by_cost
    from ..modulation.inputs import prepare_inputs
    from ..modulation.output import write_cost_ranking

    pre, _, _ = prepare_inputs(b, a, get_model(model), post, n_members, seed, progress)
    rankings = rank_by_cost(pre, a, model, hypotheses, max_size, tolerance, cost, n_members, post, seed)
    with OutputFolder(out) as stage:
        write_cost_ranking(rankings, {r.id: r.conductances for r in pre.recordings}, stage, maps=maps, seed=seed)
    nid, r = rankings[0]
    best = r.order()[0]
    err.print(f"{len(rankings)} neuron(s), {len(r.hypotheses)} hypotheses ranked by cost: cheapest for {nid} "
              f"{r.hypotheses[best].label} (median cost {r.cost[best]:.3f}, {r.fraction[best]:.0%} of members reach); "
              f"wrote hypotheses.csv, channels.csv, figures/ and report.html to {out}", soft_wrap=True)


@app.command()
def reachability(
    channels: Annotated[list[str], typer.Option("--channels", "-c", help="subset to modulate, e.g. CaS+A "
                                                                         "(repeat for several maps)")],
    out: OutOption,
    model: ModelOption = "stg",
    before: Annotated[Path | None, typer.Option(help="before recording(s): the population of the first one "
                                                     "(default: the model's tonic seed population)")] = None,
    after: Annotated[Path | None, typer.Option(help="after recording(s): its posterior is drawn on the map")] = None,
    n_members: Annotated[int, typer.Option(help="population members used per map")] = 100,
    step: Annotated[float, typer.Option(help="grid step in g_s and g_u (units of g_leak)")] = 1.0,
    seed: SeedOption = 0,
) -> None:
    """Which (g_s, g_u) targets a subset of channels can reach from a population, coloured by cost."""
    from ..compensation import draw_seed_population
    from ..io.files import OutputFolder, atomic_write_bytes, atomic_write_text
    from ..io.readers import read_spike_trains
    from ..io.tables import format_table_csv
    from ..models import get_model
    from ..modulation import parse_hypotheses
    from ..modulation.maps import cost_map, default_grid, plot_cost_map
    from ..report.page import png_bytes

    m = get_model(model)
    subsets = parse_hypotheses(m, ",".join(channels))
    before_samples = after_samples = None
    if before is not None:
        from ..pipeline import infer

        b, _ = read_spike_trains(before)
        res = infer(b.select([0]), m.name, n_members, seed=seed)
        if not res.recordings:
            raise DicsbiError(f"{before}: the first recording ({b.ids[0]}) is silent or unreachable: no population")
        members, before_samples = res.recordings[0].conductances, res.recordings[0].samples
    else:
        members = draw_seed_population(m, n_members, np.random.default_rng(seed))
    if after is not None:
        from ..posterior.artifact import load_posterior

        a, _ = read_spike_trains(after)
        after_samples = load_posterior(m.name, model=m.name).sample(a.select([0]), 500, seed=seed)[0]
    g_s, g_u = default_grid(m, step)
    with OutputFolder(out) as stage:
        for h in subsets:
            cm = cost_map(m, h.channels, members, g_s, g_u, max_members=n_members, seed=seed)
            GS, GU = np.meshgrid(cm.g_s, cm.g_u)
            atomic_write_text(stage / f"reachability_{h.label}.csv", format_table_csv(
                {"g_s": GS.ravel(), "g_u": GU.ravel(), "fraction_reached": cm.fraction.ravel(),
                 "median_cost": cm.cost.ravel()}))
            atomic_write_bytes(stage / f"reachability_{h.label}.png",
                               png_bytes(plot_cost_map(cm, before_samples, after_samples)))
            err.print(f"{h.label}: {np.mean(cm.fraction > 0):.0%} of the grid reachable", soft_wrap=True)
    err.print(f"wrote {len(subsets)} map(s) to {out}", soft_wrap=True)


@app.command()
def track(
    spikes: Annotated[Path, typer.Argument(help="long recording(s): Spike2Pop CSV, long CSV or NWB")],
    out: OutOption,
    model: ModelOption = "stg",
    window_ms: Annotated[float | None, typer.Option(help="window length [ms] (default: the posterior's "
                                                          "training window)")] = None,
    step_ms: Annotated[float | None, typer.Option(help="step between windows [ms] (default: half a window)")] = None,
    n_models: Annotated[int, typer.Option(help="models per window")] = 100,
    posterior: PosteriorOption = None,
    unit: UnitOption = None,
    t_stop_ms: Annotated[float | None, typer.Option(help="end of the recording [ms]")] = None,
    seed: SeedOption = 0,
    progress: ProgressOption = True,
) -> None:
    """Track DIC posteriors and populations through a long recording in sliding windows."""
    from ..io.files import OutputFolder
    from ..io.readers import read_spike_trains
    from ..modulation.tracking import track as run
    from ..modulation.tracking import write_tracking

    trains, _ = read_spike_trains(spikes, unit=unit, t_stop_ms=t_stop_ms)
    result = run(trains, model, window_ms, step_ms, n_models, posterior, seed, progress)
    with OutputFolder(out) as stage:
        written = write_tracking(result, stage)
    err.print(f"{result.n_windows} windows of {result.settings['window_ms']:.0f} ms (step "
              f"{result.settings['step_ms']:.0f} ms), {len(result.silent)} silent; wrote "
              f"{', '.join(p.name for p in written)} to {out}", soft_wrap=True)
