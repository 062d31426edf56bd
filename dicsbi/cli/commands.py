"""``dicsbi simulate``, ``population``, ``dics``, ``simulate-dataset``, ``train``, ``infer`` and ``diagnose``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import numpy as np
import typer
from rich.console import Console

from ..errors import DicsbiError
from .app import (
    ModelOption,
    OutOption,
    PosteriorOption,
    ProgressOption,
    SeedOption,
    UnitOption,
    _check_tier,
    _set_threads,
    app,
    err,
)


@app.command()
def simulate(
    conductances: Annotated[Path, typer.Argument(help="CSV: one row per neuron, one column per conductance "
                                                      "(g_Na, ... or Na, ...), optional ID column")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output CSV (ID,spiking_times)")],
    model: ModelOption = "stg",
    duration_ms: Annotated[float | None, typer.Option(help="recorded window [ms] (model default)")] = None,
    transient_ms: Annotated[float | None, typer.Option(help="discarded transient [ms] (model default)")] = None,
    dt_ms: Annotated[float | None, typer.Option(help="integration step [ms] (overrides --tier)")] = None,
    tier: Annotated[str, typer.Option(help="accuracy tier: exact (reported spike times) or fast")] = "exact",
    step: Annotated[list[str] | None, typer.Option(
        "--step", help="inject a current step START_MS:STOP_MS:AMPLITUDE (ms on the recording's axis, "
                       "uA/cm^2); repeat for several")] = None,
    noise_std: Annotated[float, typer.Option(help="noise current std before 1 kHz low-pass [uA/cm^2]")] = 0.0,
    seed: Annotated[int, typer.Option(help="seed of the noise")] = 0,
    threads: Annotated[int | None, typer.Option(help="numba threads (default: all cores)")] = None,
    device: Annotated[str, typer.Option(help="simulate on cpu or cuda (a GPU)")] = "cpu",
    progress: ProgressOption = True,
) -> None:
    """Simulate neurons from a conductance table and write their spike trains (Spike2Pop CSV shape)."""
    from ..io.readers import read_conductances_csv
    from ..io.tables import write_spike2pop_csv
    from ..models import get_model
    from ..simulate import STATUS_NAMES
    from ..simulate import simulate as run
    from ..stimulus import Stimulus

    m = get_model(model)
    _check_tier(tier)
    stimulus = Stimulus.none()
    for text in step or []:
        stimulus = stimulus + Stimulus.parse_step(text)
    g, ids = read_conductances_csv(conductances, m)
    res = run(m, g, duration_ms, dt_ms, transient_ms, noise_std=noise_std, seed=seed, n_threads=threads,
              progress=progress, ids=ids, stimulus=None if stimulus.is_empty else stimulus, tier=tier,
              device=device)
    write_spike2pop_csv(out, res.trains)
    bad = [(i, STATUS_NAMES[s]) for i, s in zip(ids, res.status) if s != 0]
    for ident, why in bad:
        err.print(f"[yellow]warning:[/] neuron {ident}: {why} (its train is empty or truncated)")
    stim = "" if stimulus.is_empty else f", stimulus: {stimulus.describe()}"
    err.print(f"wrote {len(ids)} spike trains ({m.name}, {res.settings['duration_ms']:.0f} ms after "
              f"{res.settings['transient_ms']:.0f} ms transient, {res.settings['tier']} tier dt "
              f"{res.settings['dt_ms']} ms{stim}) to {out}", soft_wrap=True)


@app.command()
def population(
    gs: Annotated[float, typer.Option("--gs", help="target slow DIC g_s (units of g_leak)")],
    gu: Annotated[float, typer.Option("--gu", help="target ultraslow DIC g_u (units of g_leak)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output CSV (one row per cell)")],
    model: ModelOption = "stg",
    n: Annotated[int, typer.Option("-n", help="number of valid cells")] = 500,
    pair: Annotated[str, typer.Option(help="'auto', 'published' or two names, e.g. CaS,H")] = "auto",
    seed: SeedOption = 0,
) -> None:
    """Generate a degenerate population whose (g_s, g_u) at V_th hit a target."""
    from ..compensation import generate_population
    from ..io.files import atomic_write_text
    from ..io.tables import format_population_csv

    chosen = pair if pair in ("auto", "published") else tuple(p.strip() for p in pair.split(","))
    pop = generate_population(model, gs, gu, n, seed=seed, pair=chosen)
    atomic_write_text(out, format_population_csv(pop.model, pop.conductances, pop.dics, vth_mV=pop.vth_mV))
    err.print(f"wrote {n} {pop.model} cells at (g_s, g_u) = ({gs}, {gu}), V_th {pop.vth_mV} mV, re-solving "
              f"{pop.pair[0]} and {pop.pair[1]} (yield {pop.yield_fraction:.1%}, seed {seed}) to {out}",
              soft_wrap=True)


@app.command()
def dics(
    conductances: Annotated[Path, typer.Argument(help="conductance CSV (a population file works too)")],
    model: ModelOption = "stg",
    vth: Annotated[float | None, typer.Option(help="voltage [mV] (model's V_th by default)")] = None,
    per_cell_vth: Annotated[bool, typer.Option(help="use each cell's own threshold instead")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write a CSV instead of printing")] = None,
) -> None:
    """Dynamic input conductances (g_f, g_s, g_u) of every cell of a conductance table."""
    from rich.table import Table

    from ..dics import compute_dics, find_vth
    from ..io.files import atomic_write_text
    from ..io.readers import read_conductances_csv
    from ..io.tables import format_population_csv
    from ..models import get_model

    m = get_model(model)
    g, ids = read_conductances_csv(conductances, m)
    v = find_vth(m, g) if per_cell_vth else (m.vth_mV if vth is None else vth)
    d = compute_dics(m, g, v)
    if out is not None:
        atomic_write_text(out, format_population_csv(m, g, d, ids=ids, vth_mV=v))
        err.print(f"wrote DICs of {len(ids)} cells to {out}", soft_wrap=True)
        return
    table = Table("ID", "g_f", "g_s", "g_u", "V_th [mV]", title=f"DICs ({m.name}, units of g_leak)")
    for k, ident in enumerate(ids):
        vk = float(np.broadcast_to(v, (len(ids),))[k])
        table.add_row(ident, *(f"{x:.4g}" for x in d[k]), f"{vk:.3f}")
    Console().print(table)


@app.command("simulate-dataset")
def simulate_dataset(
    out: Annotated[Path, typer.Option("--out", "-o", help="data-set folder (created; resumed if it exists)")],
    model: ModelOption = "stg",
    n_targets: Annotated[int, typer.Option(help="number of (g_s, g_u) targets")] = 62500,
    cells_per_target: Annotated[int, typer.Option(help="cells simulated per target population")] = 16,
    seed: Annotated[int, typer.Option(help="root seed (targets, populations, noise)")] = 0,
    design: Annotated[str, typer.Option(help="target design over the DIC box: lhs, sobol or uniform")] = "lhs",
    gs_range: Annotated[str | None, typer.Option(help="g_s box 'min,max' (model default)")] = None,
    gu_range: Annotated[str | None, typer.Option(help="g_u box 'min,max' (model default)")] = None,
    duration_ms: Annotated[float | None, typer.Option(help="recorded window [ms] (model default)")] = None,
    transient_ms: Annotated[float | None, typer.Option(help="discarded transient [ms] (model default)")] = None,
    dt_ms: Annotated[float | None, typer.Option(help="integration step [ms] (overrides --tier)")] = None,
    tier: Annotated[str, typer.Option(help="accuracy tier of the step: fast (validated for training sets) "
                                           "or exact")] = "fast",
    noise_std: Annotated[float, typer.Option(help="noise current std before 1 kHz low-pass [uA/cm^2]")] = 0.0,
    noise_max: Annotated[float | None, typer.Option(help="each cell's noise std uniform on (0, this] [uA/cm^2] "
                                                         "(a noise prior; train with a clean set for its point "
                                                         "mass at 0)")] = None,
    pair: Annotated[str, typer.Option(help="compensated pair: 'auto' or 'published'")] = "auto",
    world: Annotated[str | None, typer.Option(help="how cells are made: a mixture such as 'generator:0.5,wide:0.2,"
                                                   "allpairs:0.15,modulated:0.15', or 'unseen' for a test world "
                                                   "(docs/datasets.md; default: the generator)")] = None,
    targets_per_shard: Annotated[int, typer.Option(help="targets per Parquet shard")] = 64,
    workers: Annotated[int, typer.Option(help="0: in-process (numba threads); N: N worker processes")] = 0,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address, e.g. tcp://host:8786")] = None,
    dask_local: Annotated[int | None, typer.Option(help="start a Dask LocalCluster with N workers")] = None,
    threads: Annotated[int | None, typer.Option(help="numba threads in-process (default: all cores)")] = None,
    max_shards: Annotated[int | None, typer.Option(help="stop after this many shards (resume later)")] = None,
    device: Annotated[str, typer.Option(help="simulate on cpu or cuda (a GPU, in-process)")] = "cpu",
    progress: ProgressOption = True,
) -> None:
    """Generate (or resume) a training set: DIC targets -> populations -> simulated spike trains, sharded Parquet."""
    from ..datasets.config import DatasetConfig
    from ..datasets.generate import simulate_dataset as run

    def box(text, name):
        if text is None:
            return None
        try:
            lo, hi = (float(x) for x in text.split(","))
        except ValueError:
            raise DicsbiError(f"--{name} must be 'min,max', got {text!r}") from None
        return (lo, hi)

    cfg = DatasetConfig(model, n_targets, cells_per_target, seed, design, box(gs_range, "gs-range"),
                        box(gu_range, "gu-range"), duration_ms, transient_ms, dt_ms, noise_std, pair,
                        targets_per_shard, tier=tier, noise_max=noise_max, world=world)
    res = run(cfg, out, workers=workers, scheduler=scheduler, dask_local=dask_local, progress=progress,
              n_threads=threads, max_shards=max_shards, device=device)
    tot, man = res.manifest["totals"], res.manifest
    state = "complete" if man["complete"] else f"{tot['shards_done']}/{man['n_shards']} shards (re-run to resume)"
    err.print(f"{out}: {state}; {res.shards_computed} shards computed now, {res.shards_skipped} already done; "
              f"{tot['rows']} cells, {tot['unreachable_targets']} unreachable targets, {tot['diverged_cells']} "
              f"diverged, {tot['silent_cells']} silent; {res.cells_per_s:.1f} cells/s this run", soft_wrap=True)


@app.command()
def train(
    data: Annotated[list[Path], typer.Option("--data", help="training-set folder (dicsbi simulate-dataset); "
                                             "repeat to train on several together, e.g. clean and noisy")],
    out: Annotated[Path, typer.Option("--out", "-o", help="posterior folder to write")],
    representation: Annotated[str, typer.Option(help="summary (statistics) or sequence (learned)")] = "summary",
    max_epochs: Annotated[int, typer.Option(help="epoch limit (early stopping on the validation loss)")] = 300,
    max_minutes: Annotated[float | None, typer.Option(help="stop after this long, keeping the best")] = None,
    batch_size: Annotated[int, typer.Option(help="training batch size")] = 256,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option(help="seed (initialisation, batches, augmentation)")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: torch's choice)")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    resume: Annotated[Path | None, typer.Option(help="continue training this posterior folder")] = None,
    progress: ProgressOption = True,
) -> None:
    """Train a DIC posterior (neural posterior estimation) on a training set and save it."""
    from ..posterior.artifact import load_posterior
    from ..posterior.config import Representation
    from ..posterior.training import TrainConfig, train_posterior

    cfg = TrainConfig(representation=cast(Representation, representation), max_epochs=max_epochs, batch_size=batch_size,
                      learning_rate=learning_rate, seed=seed, threads=threads, device=device)
    post, rep = train_posterior(data if len(data) > 1 else data[0], cfg, progress=progress,
                                max_seconds=None if max_minutes is None else 60 * max_minutes,
                                resume_from=load_posterior(resume) if resume else None)
    post.save(out)
    err.print(f"wrote {post!r} to {out}: {rep.epochs} epochs in {rep.seconds:.0f} s, best validation loss "
              f"{rep.best_val_loss:.4f}; {rep.n_train} training / {rep.n_val} validation trains, "
              f"{rep.excluded_silent} silent and {rep.excluded_diverged} diverged excluded", soft_wrap=True)


@app.command()
def infer(
    spikes: Annotated[Path, typer.Argument(help="recorded spike times: Spike2Pop CSV, long CSV or NWB")],
    out: OutOption,
    model: ModelOption = "stg",
    n_models: Annotated[int, typer.Option(help="models per recording")] = 500,
    check: Annotated[int, typer.Option(help="simulate this many models per recording and compare")] = 0,
    posterior: PosteriorOption = None,
    unit: UnitOption = None,
    t_start_ms: Annotated[float, typer.Option(help="start of the recording window [ms], on the file's time axis "
                                                    "(absolute times: spikes from 3000 ms -> 3000)")] = 0.0,
    t_stop_ms: Annotated[float | None, typer.Option(help="end of the recording window [ms]")] = None,
    skip_bad: Annotated[bool, typer.Option(help="skip malformed recordings (reported) instead of stopping")] = False,
    seed: SeedOption = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads for sampling, compensation and simulation "
                                                    "(outputs are identical for any number)")] = None,
    device: Annotated[str, typer.Option(help="torch device for the posterior, and with --refine the simulations' "
                                             "device: cpu or cuda")] = "cpu",
    refine: Annotated[bool, typer.Option(help="refine each population by simulation (SMC-ABC): --n-models members "
                                              "that reproduce the recording's spike-train features")] = False,
    noise_std: Annotated[float, typer.Option(help="noise level of refined members [uA/cm^2] when the posterior "
                                                  "has no noise posterior")] = 0.0,
    progress: ProgressOption = True,
) -> None:
    """From recorded spike times to DIC posteriors and degenerate populations (CSV tables, ArviZ netCDF)."""
    _set_threads(threads)
    from ..io.files import OutputFolder
    from ..io.readers import read_spike_trains
    from ..pipeline import run_to_folder
    from ..posterior.artifact import load_posterior

    trains, skipped = read_spike_trains(spikes, unit=unit, t_start_ms=t_start_ms, t_stop_ms=t_stop_ms,
                                        skip_bad=skip_bad)
    for why in skipped:
        err.print(f"[yellow]skipped:[/] {why}", soft_wrap=True)
    from ..refine import RefineOptions

    post = load_posterior(posterior or model, model=model).to(device)
    options = RefineOptions(noise_std=noise_std, device=device) if refine else None
    with OutputFolder(out) as stage:  # all or nothing: a killed run leaves only a temporary folder
        n_rec, n_silent, flagged = run_to_folder(trains, stage, model, n_models, post, seed, check, refine=options,
                                                 progress=progress, title=f"dicsbi infer {spikes.name}")
    err.print(f"{n_rec} recordings -> {n_models} {post.model} models each{' (refined)' if refine else ''}; "
              f"{n_silent} silent (no posterior), {len(skipped)} skipped; wrote populations.csv, summary.csv, "
              f"posterior.nc, figures/ and report.html to {out}", soft_wrap=True)
    if refine:
        err.print("refinement: summary.csv columns refine_* (tolerance, ESS, distinct members, simulations, "
                  "refine_flagged = 1 where degeneracy was lost or no member reproduces the recording)",
                  soft_wrap=True)
    if post.noise_level is not None:
        err.print("noise posterior: summary.csv columns noise_p_zero (probability of a clean recording), "
                  "noise_median, noise_q05, noise_q95 (uA/cm^2); --check simulates each model at its noise level",
                  soft_wrap=True)
    if flagged:
        from ..posterior.typicality import MEANING

        err.print(f"[yellow]out of world:[/] {len(flagged)} recording(s) ({', '.join(flagged[:10])}"
                  f"{', ...' if len(flagged) > 10 else ''}): {MEANING} (summary.csv column out_of_world)",
                  soft_wrap=True)


@app.command()
def diagnose(
    out: OutOption,
    posterior: Annotated[str, typer.Option(help="posterior folder, or stg / da for a shipped one")] = "stg",
    n_sims: Annotated[int, typer.Option(help="fresh test simulations from the posterior's prior")] = 1000,
    data: Annotated[Path | None, typer.Option(help="held-out data set folder instead of fresh simulations")] = None,
    n_samples: Annotated[int, typer.Option(help="posterior samples per test train")] = 1000,
    check: Annotated[int, typer.Option(help="test trains in the predictive check (0: skip)")] = 50,
    seed: SeedOption = 0,
    tier: Annotated[str, typer.Option(help="accuracy tier of the fresh simulations: fast or exact")] = "fast",
    threads: Annotated[int | None, typer.Option(help="torch threads (default: torch's choice)")] = None,
    progress: ProgressOption = True,
) -> None:
    """Check a posterior: SBC, coverage, TARP, recovery, contraction, predictive check; verdicts and report."""
    from ..diagnostics.runner import THRESHOLDS, write_diagnostics
    from ..diagnostics.runner import diagnose as run
    from ..posterior.artifact import load_posterior

    _set_threads(threads)
    _check_tier(tier)
    post = load_posterior(posterior)
    diag = run(post, n_sims=n_sims, data=data, n_samples=n_samples, check=check, seed=seed, progress=progress,
               tier=tier)
    write_diagnostics(diag, out, post.config)
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}
    for name, (verdict, value) in diag.verdicts.items():
        err.print(f"[{colour[verdict]}]{verdict:4}[/] {name:12} {value:9.4g}   ({THRESHOLDS[name]})", soft_wrap=True)
    err.print(f"{diag.n_test} test trains ({diag.source}); wrote diagnostics.json, diagnostics.nc, figures/ and "
              f"report.html to {out}", soft_wrap=True)
    print(diag.key_line())
