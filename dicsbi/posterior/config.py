"""The posterior artifact's configuration (``posterior.json``) as one frozen, typed, validated object.

:class:`PosteriorConfig` is what :class:`~dicsbi.posterior.DICPosterior` reads its network, box, window and
training world from; :meth:`PosteriorConfig.from_json` refuses a file with unknown fields or fields of the
wrong kind before anything is built from it, and :meth:`PosteriorConfig.to_json` writes it back.  The nested
records (``simulator``, ``training_data``, ``train_config``, ``class_map``, ``versions``, ``training``,
``noise_level``) are provenance written once by training and read by name; they stay JSON mappings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ..errors import DicsbiError
from ..models import get_model

ARTIFACT_FORMAT = "dicsbi-posterior"
ARTIFACT_VERSION = 1

Representation = Literal["summary", "summary_length", "sequence"]
Flow = Literal["nsf", "maf", "mdn"]
REPRESENTATIONS: tuple[str, ...] = get_args(Representation)
FLOWS: tuple[str, ...] = get_args(Flow)
_SIZE_LIMITS = {"hidden_features": 4096, "num_transforms": 64, "num_bins": 256, "embedding_dim": 4096}


class PosteriorError(DicsbiError):
    """A posterior artifact that cannot be used (missing, corrupted, other model, other format)."""


@dataclass(frozen=True)
class PosteriorConfig:
    """Everything ``posterior.json`` holds, typed.

    Attributes
    ----------
    model
        The registered model's name.
    vth_mV
        The threshold voltage the DICs are evaluated at (mV).
    box
        ``((g_s lo, hi), (g_u lo, hi))``: the prior box the flow's coordinates map onto.
    representation, input_shape, sequence_stats
        How a spike train becomes the network's input (:mod:`dicsbi.posterior.embedding`).
    flow, hidden_features, num_transforms, num_bins, embedding_dim
        The network (sbi's ``posterior_nn``).
    window_ms
        The training window; longer trains are read from their first spike for this long.
    noise_std
        The training sets' distinct fixed noise levels (uA/cm^2), sorted; always a tuple (one level: one entry).
    weights_sha256
        Checksum of ``weights.pt`` (empty before the artifact is saved).
    """

    model: str
    vth_mV: float
    box: tuple[tuple[float, float], tuple[float, float]]
    representation: Representation
    input_shape: tuple[int, ...]
    flow: Flow
    hidden_features: int
    num_transforms: int
    num_bins: int
    embedding_dim: int
    window_ms: float | None = None
    noise_std: tuple[float, ...] = (0.0,)
    sequence_stats: Mapping[str, Any] | None = None
    simulator: Mapping[str, Any] = field(default_factory=dict)
    training_data: Mapping[str, Any] = field(default_factory=dict)
    train_config: Mapping[str, Any] = field(default_factory=dict)
    class_map: Mapping[str, Any] | None = None
    versions: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    noise_level: Mapping[str, Any] | None = None

    @property
    def fingerprint(self) -> str:
        """The training data set's fingerprint ('' when not recorded)."""
        return str(self.training_data.get("fingerprint", ""))

    def replace(self, **changes: Any) -> PosteriorConfig:
        """Return a copy with ``changes`` (the configuration itself never changes)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """Return the ``posterior.json`` mapping (tuples as lists), ``format`` and ``format_version`` first."""
        out: dict[str, Any] = {"format": ARTIFACT_FORMAT, "format_version": ARTIFACT_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "box":
                value = [list(b) for b in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: object, where: str = "posterior.json") -> PosteriorConfig:
        """Check and build from a parsed ``posterior.json``; :class:`PosteriorError` names every problem.

        ``noise_std`` may be one number (files written before it was always a list) or a list.
        """
        if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
            raise PosteriorError(f"{where}: not a dicsbi posterior configuration")
        if data.get("format_version") != ARTIFACT_VERSION:
            raise PosteriorError(f"{where}: format version {data.get('format_version')}, this dicsbi "
                                       f"reads {ARTIFACT_VERSION}")
        known = {f.name for f in dataclasses.fields(cls)} | {"format", "format_version"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PosteriorError(
                f"{where}: unexpected field(s) {', '.join(map(repr, unknown))}; this file was not written by "
                "dicsbi (or by a newer version) and is refused")
        problems = _problems(data)
        if problems:
            raise PosteriorError(f"{where}: invalid posterior configuration: {'; '.join(problems)}")
        fields = {k: v for k, v in data.items() if k not in ("format", "format_version")}
        fields["box"] = tuple(tuple(float(v) for v in b) for b in data["box"])
        fields["input_shape"] = tuple(int(v) for v in data["input_shape"])
        fields["vth_mV"] = float(data["vth_mV"])
        fields["noise_std"] = tuple(sorted({float(v) for v in _as_list(data.get("noise_std", 0.0))}))
        if fields.get("window_ms") is not None:
            fields["window_ms"] = float(fields["window_ms"])
        return cls(**fields)


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _problems(data: dict) -> list[str]:
    """Every field of the wrong kind, in words."""
    problems = []
    try:
        get_model(data.get("model", ""))
    except DicsbiError:
        problems.append(f"unknown model {data.get('model')!r}")
    box = data.get("box")
    if not (isinstance(box, list) and len(box) == 2 and all(
            isinstance(b, list) and len(b) == 2 and all(isinstance(v, int | float) for v in b) and b[0] < b[1]
            for b in box)):
        problems.append(f"box must be [[g_s lo, hi], [g_u lo, hi]], got {box!r}")
    if data.get("representation") not in REPRESENTATIONS:
        problems.append(f"representation must be one of {REPRESENTATIONS}, got {data.get('representation')!r}")
    if data.get("flow") not in FLOWS:
        problems.append(f"flow must be one of {FLOWS}, got {data.get('flow')!r}")
    for key, hi in _SIZE_LIMITS.items():
        v = data.get(key)
        if not (isinstance(v, int) and 0 < v <= hi):
            problems.append(f"{key} must be an integer in 1..{hi}, got {v!r}")
    shape = data.get("input_shape")
    if not (isinstance(shape, list) and shape and all(isinstance(v, int) and v > 0 for v in shape)):
        problems.append(f"input_shape must be a list of positive integers, got {shape!r}")
    if not isinstance(data.get("vth_mV"), int | float):
        problems.append(f"vth_mV must be a number, got {data.get('vth_mV')!r}")
    if not all(isinstance(v, int | float) and v >= 0 for v in _as_list(data.get("noise_std", 0.0))):
        problems.append(f"noise_std must be levels >= 0, got {data.get('noise_std')!r}")
    if not isinstance(data.get("weights_sha256"), str):
        problems.append("weights_sha256 is missing")
    return problems
