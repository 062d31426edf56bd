"""Reading training sets: the manifest, shards, :class:`TrainingSet`, splits and combinations."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _seeds
from ..models import get_model
from ..spikes import FEATURE_NAMES, SpikeTrains
from .config import FORMAT, FORMAT_VERSION, MANIFEST, DatasetConfig, DatasetError

_SHARD_META_KEY = b"dicsbi_shard"


# ------------------------------------------------------------------------------------------ folder state
def shard_path(out: Path, shard: int) -> Path:
    """Return the path of shard number ``shard`` in the data-set folder ``out``."""
    return Path(out) / f"shard-{shard:05d}.parquet"


def _read_shard_summary(path: Path) -> dict | None:
    """Return the summary stored in a shard's footer, or None if the file is truncated or not a shard."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        summary = json.loads(meta.metadata[_SHARD_META_KEY])
    except Exception:  # truncated, corrupted, foreign file: redo it
        return None
    if meta.num_rows != summary.get("rows"):
        return None
    return summary


def read_manifest(out: str | os.PathLike) -> dict:
    """Read and check the manifest of the data-set folder ``out``.

    Raises :class:`DatasetError` when the folder has no manifest, the manifest is damaged, is not a dicsbi
    data-set manifest or has another format version.
    """
    path = Path(out) / MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{out}: not a dicsbi data set (no {MANIFEST})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: damaged manifest ({e})") from None
    if doc.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a dicsbi data-set manifest")
    if doc.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: format version {doc.get('format_version')}, this dicsbi reads "
                           f"{FORMAT_VERSION}")
    return doc


# ------------------------------------------------------------------------------------------ loading
@dataclass
class TrainingSet:
    """A loaded data set (or split): one row per simulated cell, as arrays."""

    model: str
    targets: np.ndarray         # [n, 2] (g_s, g_u) the cell's population was solved for
    dics: np.ndarray            # [n, 3] achieved (g_f, g_s, g_u) at V_th
    vth_mV: np.ndarray          # [n]
    conductances: np.ndarray    # [n, n_g] in the model's order
    trains: SpikeTrains
    firing_class: np.ndarray    # [n] 0 silent, 1 spiking, 2 bursting
    status: np.ndarray          # [n] simulator status (0 ok)
    target_index: np.ndarray    # [n]
    features: dict[str, np.ndarray]
    population_seed: np.ndarray
    noise_seed: np.ndarray
    noise_index: np.ndarray
    manifest: dict
    noise_std: np.ndarray | None = None  # [n] each cell's noise level (uA/cm^2)
    world: np.ndarray | None = None      # [n] the world that made each cell (dicsbi.datasets.worlds)

    def __len__(self) -> int:
        return self.targets.shape[0]


def split_targets(manifest: dict, val_fraction: float) -> np.ndarray:
    """Target indices of the validation split: a seeded permutation of the targets, first fraction."""
    cfg = DatasetConfig.from_dict(manifest["config"])
    rng = _seeds.rng(cfg.seed, _seeds.SPLIT)
    perm = rng.permutation(cfg.n_targets)
    return np.sort(perm[: int(round(val_fraction * cfg.n_targets))])


def load_dataset(path: str | os.PathLike, split: str | None = None, val_fraction: float = 0.1,
                 allow_incomplete: bool = False) -> TrainingSet:
    """Load a data set folder as arrays (no Python loop over cells).

    ``split`` is ``None`` (everything), ``"train"`` or ``"val"``; the split is by target, so all cells of a
    population fall on the same side (:func:`split_targets`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    manifest = read_manifest(path)
    cfg = DatasetConfig.from_dict(manifest["config"])
    if not manifest["complete"] and not allow_incomplete:
        raise DatasetError(f"{path}: only {manifest['totals']['shards_done']} of {manifest['n_shards']} shards "
                           "are done; resume the run (same command) or pass allow_incomplete=True")
    if split not in (None, "train", "val"):
        raise DatasetError(f"split must be None, 'train' or 'val' (got {split!r})")
    tables = []
    for key in sorted(manifest["shards"], key=int):
        f = path / manifest["shards"][key]["file"]
        try:
            tables.append(pq.read_table(f))
        except (OSError, pa.ArrowInvalid) as e:
            raise DatasetError(f"{f}: unreadable shard ({e}); re-run the generation to redo it") from None
    model = get_model(cfg.model)
    if not tables:
        raise DatasetError(f"{path}: no shards")
    t = pa.concat_tables(tables)
    if split is not None:
        val = np.isin(t.column("target_index").to_numpy(), split_targets(manifest, val_fraction))
        t = t.filter(pa.array(val if split == "val" else ~val))

    def col(name, dtype=float):
        return t.column(name).to_numpy().astype(dtype, copy=False)

    spikes = t.column("spike_times_ms").combine_chunks()
    offsets = spikes.offsets.to_numpy().astype(np.int64)
    values = spikes.values.to_numpy()
    times = values[offsets[0]: offsets[-1]].astype(float)
    offsets = offsets - offsets[0]
    n = t.num_rows
    trains = SpikeTrains(times, offsets, np.zeros(n), np.full(n, cfg.resolved().duration_ms),
                         np.arange(n).astype(str))
    feats = {name: col(name) for name in FEATURE_NAMES[1:]}
    return TrainingSet(
        model=cfg.model,
        targets=np.column_stack([col("target_g_s"), col("target_g_u")]),
        dics=np.column_stack([col("g_f"), col("g_s"), col("g_u")]),
        vth_mV=col("v_th_mV"),
        conductances=np.column_stack([col(c) for c in model.conductance_names]) if n
        else np.empty((0, model.n_conductances)),
        trains=trains, firing_class=col("firing_class", np.int8), status=col("status", np.int8),
        target_index=col("target_index", np.int64), features=feats,
        population_seed=col("population_seed", np.uint64), noise_seed=col("noise_seed", np.uint64),
        noise_index=col("noise_index", np.int64), manifest=manifest,
        noise_std=col("noise_std") if "noise_std" in t.column_names else np.full(n, cfg.noise_std),
        world=(t.column("world").to_numpy(zero_copy_only=False).astype(str) if "world" in t.column_names
               else np.full(n, "generator")))


def validation_mask(ds: TrainingSet, val_fraction: float) -> np.ndarray:
    """Return the rows of ``ds`` in the validation split (:func:`split_targets`).

    A combined set is split part by part, so combining again gives the same split.
    """
    parts = ds.manifest.get("parts")
    if not parts:
        return np.isin(ds.target_index, split_targets(ds.manifest, val_fraction))
    mask = np.zeros(len(ds), dtype=bool)
    offset = 0
    for part in parts:
        n = int(part["config"]["n_targets"])
        rows = (ds.target_index >= offset) & (ds.target_index < offset + n)
        mask[rows] = np.isin(ds.target_index[rows] - offset, split_targets(part, val_fraction))
        offset += n
    return mask


# the per-row arrays of a TrainingSet besides its trains, target indices and features (set by load_dataset)
ROW_ARRAYS = ("targets", "dics", "vth_mV", "conductances", "firing_class", "status", "population_seed",
              "noise_seed", "noise_index", "noise_std", "world")
SHARED_FIELDS = ("model", "g_s_range", "g_u_range", "duration_ms", "transient_ms", "dt_ms")


def combine_datasets(sets: Sequence[TrainingSet], val_fraction: float) -> tuple[TrainingSet, np.ndarray]:
    """Combine several data sets of one model, box and simulation window into one.

    E.g. clean and noisy simulations for a posterior that serves both kinds of recording.

    Returns the combined set and its validation mask: each part is split by its own targets
    (:func:`split_targets`), and target indices are offset so that the parts' targets stay distinct.  The
    manifest keeps the first part's configuration with ``noise_std`` replaced by the list of the parts' noise
    levels, lists the parts (configuration and fingerprint) and has a fingerprint hashing theirs.  One part is
    returned as it is.
    """
    sets = list(sets)
    if not sets:
        raise DatasetError("no data sets to combine")
    val = [validation_mask(s, val_fraction) for s in sets]
    if len(sets) == 1:
        return sets[0], val[0]
    first = DatasetConfig.from_dict(sets[0].manifest["config"]).resolved()
    for s in sets[1:]:
        other = DatasetConfig.from_dict(s.manifest["config"]).resolved()
        differ = [f for f in SHARED_FIELDS if getattr(other, f) != getattr(first, f)]
        if differ:
            raise DatasetError(f"data sets to train together must share {', '.join(SHARED_FIELDS)}; "
                               f"{s.manifest['fingerprint'][:12]} differs from the first in {', '.join(differ)}")
    offsets = np.cumsum([0] + [int(s.manifest["config"]["n_targets"]) for s in sets[:-1]])
    fingerprint = hashlib.sha256("+".join(s.manifest["fingerprint"] for s in sets).encode()).hexdigest()
    manifest = {**sets[0].manifest, "fingerprint": fingerprint,
                "config": {**sets[0].manifest["config"],
                           "noise_std": [float(s.manifest["config"]["noise_std"]) for s in sets]},
                "parts": [{"fingerprint": s.manifest["fingerprint"], "config": s.manifest["config"]} for s in sets]}
    combined = TrainingSet(
        model=sets[0].model, trains=SpikeTrains.concat([s.trains for s in sets]),
        target_index=np.concatenate([s.target_index + o for s, o in zip(sets, offsets)]),
        features={k: np.concatenate([s.features[k] for s in sets]) for k in sets[0].features},
        manifest=manifest,
        **{f: np.concatenate([getattr(s, f) for s in sets]) for f in ROW_ARRAYS})
    return combined, np.concatenate(val)


def subset_trains(ds: TrainingSet, max_trains: int, val_fraction: float = 0.1, seed: int = 0,
                  min_spikes: int = 3) -> TrainingSet:
    """Return the populations of ``ds`` that hold its first ``max_trains`` training trains in a seeded order.

    Made for learning curves and for capping one part of a mixture: targets (whole populations) are taken in a
    seeded random order until their non-silent (``>= min_spikes``) training-split trains reach ``max_trains``;
    the same share of the validation targets is kept.  With one seed, a smaller subset lies inside a larger
    one.  Target indices are kept, so :func:`validation_mask` and :func:`combine_datasets` split it as they
    split ``ds``; the manifest records the subset and its fingerprint hashes ``ds``'s with it.
    """
    if max_trains < 1:
        raise DatasetError(f"max_trains must be positive (got {max_trains})")
    is_val = validation_mask(ds, val_fraction)
    ok = (ds.status == 0) & (ds.trains.counts >= min_spikes)
    rng = _seeds.rng(seed, _seeds.SUBSET)
    train_t = np.unique(ds.target_index[~is_val])
    order = rng.permutation(train_t.size)
    val_t = rng.permutation(np.unique(ds.target_index[is_val]))
    n_ok = np.bincount(np.searchsorted(train_t, ds.target_index[~is_val & ok]), minlength=train_t.size)
    n_train = min(int(np.searchsorted(np.cumsum(n_ok[order]), max_trains)) + 1, train_t.size)
    n_val = int(round(n_train / max(train_t.size, 1) * val_t.size))  # the same share of the validation targets
    keep = np.isin(ds.target_index, np.concatenate([train_t[order[:n_train]], val_t[:n_val]]))
    spec = {"max_trains": int(max_trains), "seed": int(seed), "val_fraction": float(val_fraction)}
    fingerprint = hashlib.sha256(f"{ds.manifest['fingerprint']}:{json.dumps(spec, sort_keys=True)}".encode())
    manifest = {**ds.manifest, "fingerprint": fingerprint.hexdigest(),
                "subset": {**spec, "of": ds.manifest["fingerprint"], "rows": int(keep.sum())}}
    rows = np.flatnonzero(keep)
    return TrainingSet(model=ds.model, trains=ds.trains.select(rows), manifest=manifest,
                       target_index=ds.target_index[rows], features={k: v[rows] for k, v in ds.features.items()},
                       **{f: getattr(ds, f)[rows] for f in ROW_ARRAYS})
