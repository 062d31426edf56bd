"""The settings of a modulation comparison, as one frozen, checked object (:class:`ComparisonOptions`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import DicsbiError
from .model import COST_PRIORS, cost_scale

CostPrior = Literal["laplace", "gaussian"]


@dataclass(frozen=True)
class ComparisonOptions:
    """How :func:`~dicsbi.modulation.compare.modulate` weighs the hypotheses (defaults: the measured ones).

    Attributes
    ----------
    max_size
        Largest subset of channels in the default hypotheses (every subset of 1..``max_size``).
    size_penalty
        Prior weight ratio of a subset one channel larger, or ``"uniform"``
        (:func:`~dicsbi.modulation.hypotheses.hypothesis_log_prior`).
    typical_change
        The factor by which a modulated conductance is expected to move; sets the cost prior's scale
        (:func:`~dicsbi.modulation.model.cost_scale`).
    cost
        The cost prior on the log-ratios of the changed conductances.
    n_pilot, n_particles
        Pilot and importance samples per population member (:func:`~dicsbi.modulation.evidence.estimate_evidence`).
    """

    max_size: int = 3
    size_penalty: float | str = 1.0
    typical_change: float = 1.5
    cost: CostPrior = "laplace"
    n_pilot: int = 64
    n_particles: int = 256

    def __post_init__(self):
        if self.cost not in COST_PRIORS:
            raise DicsbiError(f"cost must be one of {COST_PRIORS}, got {self.cost!r}")
        if self.n_pilot < 2 or self.n_particles < 2:
            raise DicsbiError("n_pilot and n_particles must each be at least 2")
        if not self.scale > 0:  # a typical change that gives no scale is refused here, not mid-run
            raise DicsbiError(f"typical_change {self.typical_change!r} gives no cost scale")

    @property
    def scale(self) -> float:
        """The cost prior's scale on log-ratios (from ``typical_change``)."""
        try:
            return cost_scale(float(self.typical_change))
        except (TypeError, ValueError) as exc:
            raise DicsbiError(str(exc)) from None

    def settings(self, n_members: int, fingerprint: str) -> dict:
        """``ModulationResult.settings``: what the comparison ran with."""
        return {"typical_change": float(self.typical_change), "cost_scale": self.scale, "cost": self.cost,
                "size_penalty": self.size_penalty, "n_members": n_members, "n_pilot": self.n_pilot,
                "n_particles": self.n_particles, "max_size": self.max_size, "posterior_fingerprint": fingerprint}
