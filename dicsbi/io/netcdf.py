"""The one place that builds ArviZ objects.

This uses arviz 0.23, the last line for Python 3.11; a move to ArviZ 1.x touches this file only.

:func:`inference_data` turns an :class:`~dicsbi.pipeline.InferenceResult` into ``InferenceData``:

* ``posterior``: ``g_s``, ``g_u`` with dims ``(chain, draw, recording)`` - the posterior sample each model of the
  population was solved for (one chain; draws are the models), so ``az.summary``, ``az.plot_pair`` and
  ``az.plot_forest`` work directly;
* ``posterior_predictive``: the population itself, ``conductance`` ``(chain, draw, recording, channel)`` in
  mS/cm^2 and the achieved ``g_f``;
* ``observed_data``: per recording, the number of spikes, the firing class and the mean ISI of the recording;
* ``constant_data``: V_th and the re-solved pair of each model.

Attributes record the model, seed, dicsbi version and the posterior's training fingerprint.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..models import get_model
from ..spikes import SpikeTrains, firing_class, firing_pattern


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz 0.23 announces its 1.x refactor on import
        import arviz

    return arviz


def inference_data(result, trains: SpikeTrains):
    """``InferenceData`` of a pipeline result (see the module docstring); silent recordings are left out."""
    import xarray as xr

    from .. import __version__
    from ..posterior.typicality import MEANING as TYPICALITY_MEANING

    az = _arviz()
    m = get_model(result.model)
    recs = result.recordings
    ids = [r.id for r in recs]
    n = min((len(r.samples) for r in recs), default=0)
    samples = np.stack([r.samples[:n] for r in recs], axis=1)[None] if recs else np.empty((1, 0, 0, 2))
    g = np.stack([r.conductances[:n] for r in recs], axis=1)[None] if recs else np.empty((1, 0, 0, m.n_conductances))
    gf = np.stack([r.dics[:n, 0] for r in recs], axis=1)[None] if recs else np.empty((1, 0, 0))
    coords = {"chain": [0], "draw": np.arange(n), "recording": ids, "channel": list(m.conductance_names)}
    index = {str(t): k for k, t in enumerate(trains.ids)}
    sel = [index[i] for i in ids]
    obs = trains.select(sel) if sel else trains.select([])
    mean_isi = np.array([np.diff(t).mean() if t.size > 1 else np.nan for t in obs])
    attrs = {"model": m.name, "seed": int(result.seed), "dicsbi_version": __version__,
             "vth_mV": float(result.vth_mV),
             "posterior_training_fingerprint": getattr(result.posterior_config, "fingerprint", "")}
    c3 = {k: coords[k] for k in ("chain", "draw", "recording")}
    posterior = xr.Dataset({"g_s": (("chain", "draw", "recording"), samples[..., 0]),
                            "g_u": (("chain", "draw", "recording"), samples[..., 1])}, coords=c3, attrs=attrs)
    if recs and all(r.noise is not None for r in recs):
        posterior["noise_std"] = (("chain", "draw", "recording"), np.stack([r.noise[:n] for r in recs], axis=1)[None])
        posterior["noise_std"].attrs.update(units="uA/cm^2", meaning="noise level; 0 is the point mass of a "
                                            "clean recording (joint draws with g_s, g_u)")
    predictive = xr.Dataset({"conductance": (("chain", "draw", "recording", "channel"), g),
                             "g_f": (("chain", "draw", "recording"), gf)}, coords=coords, attrs=attrs)
    predictive["conductance"].attrs["units"] = "mS/cm^2"
    obs_class = firing_class(obs)
    observed = xr.Dataset({"n_spikes": (("recording",), obs.counts.astype(np.int64)),
                           "firing_class": (("recording",), obs_class.astype(np.int64)),
                           "firing_pattern": (("recording",), firing_pattern(obs, obs_class).astype(np.int64)),
                           "mean_isi_ms": (("recording",), mean_isi),
                           "typicality": (("recording",), np.array([r.typicality for r in recs], dtype=float)),
                           "out_of_world": (("recording",), np.array([int(r.out_of_world) for r in recs],
                                                                     dtype=np.int64)),
                           "like_model": (("recording",), np.array([r.like_model for r in recs], dtype=str))},
                          coords={"recording": ids}, attrs=attrs)
    observed["out_of_world"].attrs["meaning"] = "1: " + TYPICALITY_MEANING
    observed["like_model"].attrs["meaning"] = "the other shipped model this recording looks like ('' if none)"
    if getattr(result, "refined", False):
        _add_refinement(observed, recs, list(m.conductance_names))
    pair = np.array([["+".join(r.pairs[p]) for p in r.pair[:n]] for r in recs], dtype=str).T[None] if recs \
        else np.empty((1, 0, 0), dtype=str)
    constant = xr.Dataset({"pair": (("chain", "draw", "recording"), pair)}, coords=c3, attrs=attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.InferenceData(posterior=posterior, posterior_predictive=predictive, observed_data=observed,
                                constant_data=constant)


def _add_refinement(observed, recs: list, channels: list[str]) -> None:
    """Add the refinement's figures per recording to ``observed_data`` (``refine_*``, :mod:`dicsbi.refine`)."""
    def col(key):
        return ("recording",), np.array([getattr(r.refinement, key) if r.refinement is not None else np.nan
                                         for r in recs], dtype=float)

    for key in ("acceptance", "tolerance", "ess", "distinct", "simulations", "seconds", "noise_std", "wide_share"):
        observed[f"refine_{key}"] = col(key)
    observed["refine_flagged"] = ("recording",), np.array(
        [int(r.refinement.flagged) if r.refinement is not None else 0 for r in recs], dtype=np.int64)
    nan = np.full(len(channels), np.nan)
    for key in ("spread_before", "spread_after"):
        values = [getattr(r.refinement, key) if r.refinement is not None else None for r in recs]
        observed[f"refine_{key}"] = (("recording", "channel"), np.array([nan if v is None else v for v in values]))
        observed[f"refine_{key}"].attrs["meaning"] = "interquartile range of log10 g over the population (decades)"
    observed.coords["channel"] = channels
    observed["refine_flagged"].attrs["meaning"] = "1: degeneracy lost or no member reproduces the recording"


def to_netcdf(idata, path):
    """Write ``InferenceData`` to ``path`` atomically (temporary name in the same folder, then rename)."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


GROUPS = ("posterior", "posterior_predictive", "observed_data", "constant_data")


class NetCDFAppender:
    """Write :func:`inference_data` chunks into one netCDF file, appending along ``recording``.

    Each group's ``recording`` dimension is unlimited (HDF5 chunked storage, via h5netcdf): a chunk resizes it
    and writes its slice, so memory and time stay flat whatever the number of recordings.  (Opening one netCDF
    part per chunk and merging them with ``open_mfdataset`` grew by ~1.2 MB and ~0.55 s per part: 400 parts of
    256 recordings took 500 MB and 220 s.)  The file reads back with ``az.from_netcdf`` like one written whole;
    it is complete when the ``with`` block ends (write it in a staging folder, :class:`dicsbi.io.OutputFolder`).
    """

    def __init__(self, path):
        from pathlib import Path

        self.path = Path(path)
        self.file = None
        self.n = 0

    def __enter__(self):
        return self

    def append(self, idata) -> None:
        """Write one :func:`inference_data` chunk after the recordings already in the file.

        The first chunk creates the file and its groups; every later chunk must have the same sizes along all
        dimensions but ``recording`` (``ValueError`` otherwise).
        """
        import h5netcdf

        groups = [g for g in GROUPS if g in idata.groups()]
        if self.file is None:
            self.file = h5netcdf.File(self.path, "w")
            for name in groups:
                self._create(self.file.create_group(name), idata[name])
        k = idata[groups[0]].sizes["recording"] if groups else 0
        for name in groups:
            grp, ds = self.file.groups[name], idata[name]
            for dim, size in ds.sizes.items():
                if dim != "recording" and grp.dimensions[dim].size != size:
                    raise ValueError(f"netCDF chunk {name}: dimension {dim} has {size} entries, the file "
                                     f"{grp.dimensions[dim].size}")
            grp.resize_dimension("recording", self.n + k)
            for var, arr in ds.variables.items():
                if "recording" not in arr.dims:
                    continue
                axis = arr.dims.index("recording")
                index = tuple(slice(self.n, self.n + k) if a == axis else slice(None) for a in range(arr.ndim))
                grp.variables[var][index] = _storable(arr.values)
        self.n += k

    @staticmethod
    def _create(grp, ds) -> None:
        import h5py

        for dim, size in ds.sizes.items():
            grp.dimensions[dim] = None if dim == "recording" else size
        for var, arr in ds.variables.items():
            values = _storable(arr.values)
            kind = h5py.string_dtype() if values.dtype.kind in "OU" else values.dtype
            chunks = tuple(max(1, min(s, 256)) if d == "recording" else s for d, s in zip(arr.dims, arr.shape))
            v = grp.create_variable(var, arr.dims, dtype=kind, chunks=chunks or None)
            if "recording" not in arr.dims:
                v[...] = values
            for key, val in arr.attrs.items():
                v.attrs[key] = val
        for key, val in ds.attrs.items():
            grp.attrs[key] = val

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
        elif exc[0] is None:
            to_netcdf(_arviz().InferenceData(), self.path)


def _storable(values: np.ndarray) -> np.ndarray:
    return values.astype(object) if values.dtype.kind == "U" else values


def pareto_k(log_weights: np.ndarray) -> np.ndarray:
    """Return the Pareto-smoothed importance sampling shape ``k`` of each row of ``log_weights[rows, draws]``.

    Computed by ArviZ ``psislw``: below 0.7 the importance-sampling estimate is reliable (Vehtari et al. 2024).
    """
    az = _arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # psislw warns for k > 0.7: the value itself is what we report
        _, k = az.psislw(np.asarray(log_weights, dtype=float))
    return np.atleast_1d(np.asarray(k, dtype=float))


def from_netcdf(path):
    """Read an ``InferenceData`` from the netCDF file ``path`` (``az.from_netcdf``)."""
    return _arviz().from_netcdf(str(path))


def diagnostics_data(diag):
    """Return the ``InferenceData`` of a :class:`~dicsbi.diagnostics.runner.Diagnostics`.

    Posterior draws ``g_s``, ``g_u`` over ``(chain, draw, simulation)``; the truths and firing classes in
    ``observed_data``; SBC ranks in ``sample_stats`` (``rank_g_s``, ``rank_g_u`` over ``simulation``).
    """
    import xarray as xr

    from .. import __version__

    az = _arviz()
    n, s, _ = diag.samples.shape
    coords = {"chain": [0], "draw": np.arange(s), "simulation": np.arange(n)}
    attrs = {"model": diag.model, "seed": int(diag.seed), "dicsbi_version": __version__, "source": diag.source,
             "verdict": diag.verdict}
    dims = ("chain", "draw", "simulation")
    posterior = xr.Dataset({"g_s": (dims, diag.samples[..., 0].T[None]), "g_u": (dims, diag.samples[..., 1].T[None])},
                           coords=coords, attrs=attrs)
    sim = {"simulation": np.arange(n)}
    observed = xr.Dataset({"g_s_true": (("simulation",), diag.theta[:, 0]),
                           "g_u_true": (("simulation",), diag.theta[:, 1]),
                           "firing_class": (("simulation",), diag.classes.astype(np.int64))}, coords=sim, attrs=attrs)
    stats = xr.Dataset({"rank_g_s": (("simulation",), diag.ranks[:, 0]),
                        "rank_g_u": (("simulation",), diag.ranks[:, 1])}, coords=sim, attrs=attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.InferenceData(posterior=posterior, observed_data=observed, sample_stats=stats)


def plot_rank_ecdf(ranks: np.ndarray, names):
    """Plot the SBC rank ECDF minus the uniform CDF with simultaneous 95% bands, one panel per parameter.

    The bands come from ArviZ ``plot_ecdf``.
    """
    from scipy.stats import uniform

    from ..report.figures import pyplot

    plt = pyplot()
    az = _arviz()
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for k, (ax, name) in enumerate(zip(axes[0], names)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            az.plot_ecdf(ranks[:, k], cdf=uniform(0, 1).cdf, difference=True, confidence_bands=True,
                         ci_prob=0.95, random_state=0, ax=ax)
        ax.set_title(f"SBC ranks of {name}")
        ax.set_xlabel("normalised rank")
        ax.set_ylabel("ECDF - uniform")
    fig.tight_layout()
    return fig


def modulation_data(result):
    """``InferenceData`` of a :class:`~dicsbi.modulation.ModulationResult`.

    * ``posterior``: ``log_ratio`` ``(chain, draw, hypothesis, neuron, channel)``: draws of each hypothesis's
      change posterior (resampled by importance weight; 0 for channels the hypothesis leaves alone), and
      ``g_s``/``g_u`` of the modulated cell ``(chain, draw, hypothesis, neuron)``;
    * ``prior``: the before-population ``conductance`` ``(chain, draw, neuron, channel)`` (draw = member) and
      its ``g_s``/``g_u``;
    * ``sample_stats``: per hypothesis ``log_evidence`` (all neurons), its standard errors, ``probability``,
      ``log_prior``, ``log_bayes_factor``, and per (hypothesis, neuron) ``log_evidence_neuron`` and ``ess``
      (the DIC-level evidence); ``probability_spike`` and per (hypothesis, neuron)
      ``log_probability_spike_neuron`` (the spike-level evidence; NaN where it was not used);
    * ``observed_data``: per neuron the firing class and rate before and after, and the after posterior's
      mean (g_s, g_u); ``constant_data``: which channels each hypothesis modulates, each channel's (g_s, g_u)
      sensitivity per neuron and the log evidence of "no change".
    """
    import xarray as xr

    from .. import __version__

    az = _arviz()
    m = get_model(result.model)
    hyps, neurons = result.hypotheses, result.neurons
    channels = list(m.conductance_names)
    labels = [h.label for h in hyps]
    ids = [n.id for n in neurons]
    attrs = {"model": m.name, "seed": int(result.seed), "dicsbi_version": __version__, "vth_mV": float(result.vth_mV),
             **{k: (str(v) if not isinstance(v, (int, float)) else v) for k, v in result.settings.items()}}
    posterior = _modulation_posterior(hyps, neurons, channels, labels, ids, attrs)
    prior = _modulation_prior(neurons, channels, ids, attrs)
    stats = _modulation_stats(result, labels, ids, attrs)
    observed = _modulation_observed(neurons, ids, attrs)
    member = np.array([[c in h.channels for c in channels] for h in hyps])
    constant = xr.Dataset({"modulated": (("hypothesis", "channel"), member),
                           "dic_sensitivity": (("neuron", "channel"), np.stack([n.sensitivity for n in neurons])),
                           "log_evidence_no_change": (("neuron",), np.array([n.log_evidence_null for n in neurons]))},
                          coords={"hypothesis": labels, "channel": channels, "neuron": ids}, attrs=attrs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.InferenceData(posterior=posterior, prior=prior, sample_stats=stats, observed_data=observed,
                                constant_data=constant)


def _modulation_posterior(hyps, neurons, channels: list[str], labels: list, ids: list, attrs: dict):
    """Build the ``posterior`` group: each hypothesis's ``log_ratio`` draws and the modulated ``g_s``/``g_u``."""
    import xarray as xr

    n_draw = min((len(n.log_ratio[h]) for n in neurons for h in range(len(hyps)) if len(n.log_ratio[h])),
                 default=0)
    lr = np.zeros((1, n_draw, len(hyps), len(neurons), len(channels)))
    dics = np.full((1, n_draw, len(hyps), len(neurons), 2), np.nan)
    for h, hyp in enumerate(hyps):
        cols = [channels.index(c) for c in hyp.channels]
        for i, n in enumerate(neurons):
            if len(n.log_ratio[h]) >= n_draw and n_draw:
                lr[0, :, h, i, cols] = n.log_ratio[h][:n_draw].T
                dics[0, :, h, i] = n.after_dics[h][:n_draw]
            elif n_draw:
                lr[0, :, h, i, cols] = np.nan
    dims = ("chain", "draw", "hypothesis", "neuron")
    coords = {"chain": [0], "draw": np.arange(n_draw), "hypothesis": labels, "neuron": ids, "channel": channels}
    return xr.Dataset({"log_ratio": ((*dims, "channel"), lr), "g_s": (dims, dics[..., 0]),
                       "g_u": (dims, dics[..., 1])}, coords=coords, attrs=attrs)


def _modulation_prior(neurons, channels: list[str], ids: list, attrs: dict):
    """Build the ``prior`` group: the before-population's conductances (draw = member) and its ``g_s``/``g_u``."""
    import xarray as xr

    n_mem = min(len(n.before) for n in neurons)
    before = np.stack([n.before[:n_mem] for n in neurons], axis=1)[None]
    bd = np.stack([n.before_dics[:n_mem] for n in neurons], axis=1)[None]
    pc = {"chain": [0], "draw": np.arange(n_mem), "neuron": ids, "channel": channels}
    return xr.Dataset({"conductance": (("chain", "draw", "neuron", "channel"), before),
                       "g_s": (("chain", "draw", "neuron"), bd[..., 1]),
                       "g_u": (("chain", "draw", "neuron"), bd[..., 2])}, coords=pc, attrs=attrs)


def _modulation_stats(result, labels: list, ids: list, attrs: dict):
    """Build the ``sample_stats`` group: per hypothesis and per (hypothesis, neuron) evidence and its checks."""
    import xarray as xr

    neurons = result.neurons
    hc = {"hypothesis": labels, "neuron": ids}
    return xr.Dataset({"log_evidence": (("hypothesis",), result.log_evidence), "se": (("hypothesis",), result.se),
                       "se_population": (("hypothesis",), result.se_population),
                       "probability": (("hypothesis",), result.probability),
                       "log_prior": (("hypothesis",), result.log_prior),
                       "log_bayes_factor": (("hypothesis",), result.log_bayes_factor),
                       "log_bayes_factor_vs_no_change": (("hypothesis",), result.log_bayes_factor_vs_no_change),
                       "log_evidence_neuron": (("hypothesis", "neuron"),
                                               np.stack([n.log_evidence for n in neurons], 1)),
                       "ess": (("hypothesis", "neuron"), np.stack([n.ess for n in neurons], 1)),
                       "pareto_k": (("hypothesis", "neuron"), np.stack([n.pareto_k for n in neurons], 1)),
                       **_spike_stats(result)},
                      coords=hc, attrs=attrs)


def _spike_stats(result) -> dict:
    """Return the spike-level evidence's probabilities (all NaN where the result has none)."""
    n_h, n_n = len(result.hypotheses), len(result.neurons)
    sp = result.spike
    return {"probability_spike": (("hypothesis",), np.full(n_h, np.nan) if sp is None else sp.probability),
            "log_probability_spike_neuron": (("hypothesis", "neuron"),
                                             np.full((n_h, n_n), np.nan) if sp is None else sp.log_q_neuron.T)}


def _modulation_observed(neurons, ids: list, attrs: dict):
    """Build the ``observed_data`` group: firing class and rate before and after, the after posterior's mean."""
    import xarray as xr

    nc = {"neuron": ids}
    return xr.Dataset({"firing_class_before": (("neuron",), np.array([n.class_before for n in neurons])),
                       "firing_class_after": (("neuron",), np.array([n.class_after for n in neurons])),
                       "rate_before_hz": (("neuron",), np.array([n.rate_before for n in neurons])),
                       "rate_after_hz": (("neuron",), np.array([n.rate_after for n in neurons])),
                       "after_g_s_mean": (("neuron",), np.array([n.after_samples[:, 0].mean() for n in neurons])),
                       "after_g_u_mean": (("neuron",), np.array([n.after_samples[:, 1].mean() for n in neurons]))},
                      coords=nc, attrs=attrs)
