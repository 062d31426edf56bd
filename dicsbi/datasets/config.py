"""A training set's configuration and what it determines: the DIC targets, shards and seed streams."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .. import _seeds
from ..errors import DicsbiError
from ..models import get_model
from ..models.base import TIERS

FORMAT = "dicsbi-dataset"


FORMAT_VERSION = 1


MANIFEST = "manifest.json"


DESIGNS = ("lhs", "sobol", "uniform")


class DatasetError(DicsbiError):
    """A data-set folder that cannot be used as asked (other configuration, damaged manifest, ...)."""


# ------------------------------------------------------------------------------------------ configuration
def _world_spec(spec: str) -> str:
    """Return a world specification in canonical form (names in ``WORLDS`` order, weights normalised)."""
    from .worlds import WORLDS, parse_worlds

    try:
        weights = parse_worlds(spec)
    except DicsbiError as e:
        raise DatasetError(f"invalid data-set configuration: {e}") from None
    return ",".join(f"{k}:{weights[k]:.6g}" for k in WORLDS if k in weights)


def _float_pair(values) -> tuple[float, float]:
    """Return a (min, max) range as two floats."""
    lo, hi = (float(x) for x in values)
    return lo, hi


@dataclass(frozen=True)
class DatasetConfig:
    """Everything that determines a data set's content.  ``None`` fields take the model's defaults.

    Two configurations with the same :meth:`fingerprint` produce identical shards.  The integration step is
    ``dt_ms`` when given, else that of the accuracy ``tier`` (default ``"fast"``: training sets are simulated
    at the fast tier, whose class and ISI agreement with the exact tier is validated in
    ``docs/simulator.md``); the resolved configuration names the tier of its step (``"custom"`` for others).
    """

    model: str
    n_targets: int
    cells_per_target: int = 16
    seed: int = 0
    design: str = "lhs"
    g_s_range: tuple[float, float] | None = None
    g_u_range: tuple[float, float] | None = None
    duration_ms: float | None = None
    transient_ms: float | None = None
    dt_ms: float | None = None
    noise_std: float = 0.0
    pair: str = "auto"
    targets_per_shard: int = 64
    tier: str = "fast"
    noise_max: float | None = None  # if set: each cell's noise level uniform on (0, noise_max], noise_std unused
    world: str | None = None  # None: the generator alone; else a world mixture (dicsbi.datasets.worlds)

    def resolved(self) -> DatasetConfig:
        """Return a checked copy with every default filled in from the model (what the manifest stores)."""
        model = get_model(self.model)
        box = model.dic_box
        if self.tier not in TIERS and not (self.tier == "custom" and self.dt_ms is not None):
            raise DatasetError(f"invalid data-set configuration: tier must be one of {', '.join(TIERS)} "
                               f"(got {self.tier!r})")
        # the step: dt_ms if given, else the tier's; the manifest names the tier the step belongs to
        dt_ms = float(self.dt_ms) if self.dt_ms is not None else model.tier_dt_ms(self.tier)
        tier = model.tier_of(dt_ms)
        cfg = dataclasses.replace(
            self, model=model.name,
            g_s_range=_float_pair(self.g_s_range or box[0]),
            g_u_range=_float_pair(self.g_u_range or box[1]),
            duration_ms=float(self.duration_ms if self.duration_ms is not None else model.default_duration_ms),
            transient_ms=float(self.transient_ms if self.transient_ms is not None
                               else model.default_transient_ms),
            dt_ms=dt_ms, tier=tier,
            noise_std=float(self.noise_std), n_targets=int(self.n_targets),
            noise_max=None if self.noise_max is None else float(self.noise_max),
            world=None if self.world is None else _world_spec(self.world),
            cells_per_target=int(self.cells_per_target), seed=int(self.seed),
            targets_per_shard=int(self.targets_per_shard))
        problems = []
        if cfg.n_targets < 1:
            problems.append(f"n_targets must be >= 1 (got {cfg.n_targets})")
        if cfg.cells_per_target < 1:
            problems.append(f"cells_per_target must be >= 1 (got {cfg.cells_per_target})")
        if cfg.targets_per_shard < 1:
            problems.append(f"targets_per_shard must be >= 1 (got {cfg.targets_per_shard})")
        if cfg.seed < 0:
            problems.append(f"seed must be >= 0 (got {cfg.seed})")
        if cfg.design not in DESIGNS:
            problems.append(f"design must be one of {', '.join(DESIGNS)} (got {cfg.design!r})")
        for name in ("g_s_range", "g_u_range"):
            lo, hi = getattr(cfg, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                problems.append(f"{name} must be finite with min < max (got {(lo, hi)})")
        assert cfg.duration_ms is not None and cfg.transient_ms is not None and cfg.dt_ms is not None  # set above
        if not (cfg.duration_ms > 0 and cfg.transient_ms >= 0 and cfg.dt_ms > 0):
            problems.append("duration and dt must be > 0 and the transient >= 0")
        if not (np.isfinite(cfg.noise_std) and cfg.noise_std >= 0):
            problems.append(f"noise_std must be >= 0 (got {cfg.noise_std})")
        if cfg.noise_max is not None and not (np.isfinite(cfg.noise_max) and cfg.noise_max > 0
                                              and cfg.noise_std == 0):
            problems.append(f"noise_max must be > 0 with noise_std 0 (got {cfg.noise_max}, {cfg.noise_std})")
        if problems:
            raise DatasetError("invalid data-set configuration: " + "; ".join(problems))
        return cfg

    @property
    def n_shards(self) -> int:
        """Return the number of shards: ``n_targets`` over ``targets_per_shard``, rounded up."""
        return -(-self.n_targets // self.targets_per_shard)

    def to_dict(self) -> dict:
        """JSON-able fields; ``noise_max`` and ``world`` only when set, so earlier sets keep their fingerprints."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
                if not (k in ("noise_max", "world") and v is None)}

    @property
    def world_weights(self) -> dict[str, float]:
        """Return the normalised weight of each world the set's targets are drawn from."""
        from .worlds import parse_worlds

        return parse_worlds(self.world)

    @classmethod
    def from_dict(cls, d: dict) -> DatasetConfig:
        """Build a configuration from its :meth:`to_dict` mapping (ranges back to tuples)."""
        d = dict(d)
        for k in ("g_s_range", "g_u_range"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    def fingerprint(self) -> str:
        """SHA-256 of the resolved configuration (canonical JSON) plus the storage format version."""
        doc = {"format_version": FORMAT_VERSION, **self.resolved().to_dict()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def design_targets(config: DatasetConfig) -> np.ndarray:
    """Return the ``[n_targets, 2]`` (g_s, g_u) targets of a configuration (deterministic in its seed)."""
    from scipy.stats import qmc

    cfg = config.resolved()
    rng = _seeds.rng(cfg.seed, _seeds.DESIGN)
    if cfg.design == "lhs":
        u = qmc.LatinHypercube(d=2, rng=rng).random(cfg.n_targets)
    elif cfg.design == "sobol":
        m = int(np.ceil(np.log2(max(cfg.n_targets, 2))))
        u = qmc.Sobol(d=2, scramble=True, rng=rng).random_base2(m)[: cfg.n_targets]
    else:
        u = rng.uniform(size=(cfg.n_targets, 2))
    assert cfg.g_s_range is not None and cfg.g_u_range is not None  # resolved() fills them
    lo = np.array([cfg.g_s_range[0], cfg.g_u_range[0]])
    hi = np.array([cfg.g_s_range[1], cfg.g_u_range[1]])
    return lo + u * (hi - lo)


def shard_targets(config: DatasetConfig, shard: int) -> np.ndarray:
    """Global indices of the targets that shard ``shard`` holds."""
    start = shard * config.targets_per_shard
    return np.arange(start, min(start + config.targets_per_shard, config.n_targets))


def population_seed(config: DatasetConfig, shard: int, j: int) -> int:
    """Return the seed of the population of target ``j`` of shard ``shard`` (stream ``POPULATION``)."""
    return _seeds.int_seed63(config.seed, _seeds.POPULATION, shard, j)


def noise_seed(config: DatasetConfig, shard: int) -> int:
    """Return the noise seed of the simulations of shard ``shard`` (stream ``NOISE``)."""
    return _seeds.int_seed63(config.seed, _seeds.NOISE, shard)


def shard_worlds(config: DatasetConfig, shard: int) -> list[str]:
    """Return the world of each target of shard ``shard`` (stream ``(WORLD_CHOICE, shard)``)."""
    from .worlds import choose_worlds

    cfg = config.resolved()
    n = shard_targets(cfg, shard).size
    if cfg.world is None:
        return ["generator"] * n
    return choose_worlds(cfg.world_weights, _seeds.rng(cfg.seed, _seeds.WORLD_CHOICE, shard).uniform(size=n))


def cell_noise_levels(config: DatasetConfig, shard: int, n: int) -> np.ndarray:
    """Return the noise level (uA/cm^2) of each of the ``n`` cells of shard ``shard``.

    It is ``noise_std`` for all, or with ``noise_max`` one level per cell, uniform on (0, noise_max] (stream
    ``(4, shard)``).
    """
    cfg = config.resolved()
    if cfg.noise_max is None:
        return np.full(n, cfg.noise_std)
    rng = _seeds.rng(cfg.seed, _seeds.NOISE_LEVELS, shard)
    return cfg.noise_max * (1.0 - rng.uniform(size=n))  # (0, noise_max]
