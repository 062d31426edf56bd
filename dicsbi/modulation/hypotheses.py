"""Hypotheses "the modulator changed this subset of channels" and their prior.

A hypothesis is a set of 1 to 3 of the model's modulable conductances (STG: Na, Kd, CaT, CaS, KCa, A, H; DA: Na,
Kd, CaL, CaN, ERG, NMDA; the leak is not modulated): 7 + 21 + 35 = 63 for STG, 6 + 15 + 20 = 41 for DA.

The prior over hypotheses is set by ``size_penalty`` (``p``): every subset size ``s`` present gets total mass
proportional to ``p**(s - 1)``, shared equally by the subsets of that size.  ``p = 1`` (the default) weighs one,
two and three channels equally as explanations, so the 35 triples of STG do not outweigh the 7 singles by their
number alone; ``p < 1`` penalises larger subsets further.  (Larger subsets are already penalised by the evidence
itself: each extra channel spreads the cost prior over one more dimension.)  ``size_penalty="uniform"`` gives
every listed hypothesis the same mass.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..compensation import conductance_index
from ..errors import DicsbiError
from ..models import Model, get_model

MAX_SIZE = 3


@dataclass(frozen=True)
class Hypothesis:
    """The modulated channels, as full conductance names in model order (``("g_CaS", "g_A")``)."""

    channels: tuple[str, ...]

    @property
    def label(self) -> str:
        """Channel names without the ``g_`` prefix joined by ``+`` (``"CaS+A"``)."""
        return "+".join(c[2:] for c in self.channels)

    @property
    def size(self) -> int:
        """Number of modulated channels."""
        return len(self.channels)

    def __str__(self) -> str:
        return self.label


def modulable_channels(model: str | Model) -> tuple[str, ...]:
    """Return the conductances a hypothesis may name (every channel but the leak)."""
    spec = get_model(model).seed_spec
    assert spec is not None, "hypotheses need a model with a seed population spec"
    return tuple(spec.candidate_pairs_from)


def _hypothesis(model: Model, names) -> Hypothesis:
    allowed = modulable_channels(model)
    idx = sorted({conductance_index(model, n) for n in names})
    full = tuple(model.conductance_names[i] for i in idx)
    bad = [c for c in full if c not in allowed]
    if bad:
        raise DicsbiError(f"{', '.join(bad)} cannot be modulated in model {model.name!r}; "
                          f"modulable channels: {', '.join(c[2:] for c in allowed)}")
    if not 1 <= len(full) <= MAX_SIZE:
        raise DicsbiError(f"a hypothesis names 1 to {MAX_SIZE} distinct channels, got {list(names)!r}")
    return Hypothesis(full)


def enumerate_hypotheses(model: str | Model, max_size: int = MAX_SIZE, channels=None) -> list[Hypothesis]:
    """Every subset of 1..``max_size`` of ``channels`` (default: all modulable channels), singles first."""
    model = get_model(model)
    if not 1 <= max_size <= MAX_SIZE:
        raise DicsbiError(f"max_size must be between 1 and {MAX_SIZE}, got {max_size}")
    pool = modulable_channels(model) if channels is None else tuple(
        model.conductance_names[i] for i in sorted({conductance_index(model, c) for c in channels}))
    return [_hypothesis(model, sub) for s in range(1, max_size + 1) for sub in combinations(pool, s)]


def parse_hypotheses(model: str | Model, spec) -> list[Hypothesis]:
    """Hypotheses from ``"CaS+A, H, A+H"`` or a list of name tuples; duplicates are refused."""
    model = get_model(model)
    items = [s for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    if not items:
        raise DicsbiError("the hypothesis list is empty; give e.g. 'CaS+A, H, A+H'")
    out = []
    for item in items:
        names = [n for n in item.split("+") if n.strip()] if isinstance(item, str) else list(item)
        h = _hypothesis(model, names)
        if h in out:
            raise DicsbiError(f"hypothesis {h.label} is listed twice")
        out.append(h)
    return out


def hypothesis_log_prior(hypotheses: list[Hypothesis], size_penalty: float | str = 1.0) -> np.ndarray:
    """Normalised log prior probabilities of ``hypotheses`` (see the module docstring)."""
    sizes = np.array([h.size for h in hypotheses])
    if isinstance(size_penalty, str):
        if size_penalty != "uniform":
            raise DicsbiError(f"size_penalty must be a positive number or 'uniform', got {size_penalty!r}")
        return np.full(len(hypotheses), -np.log(len(hypotheses)))
    if not (np.isfinite(size_penalty) and size_penalty > 0):
        raise DicsbiError(f"size_penalty must be a positive number or 'uniform', got {size_penalty!r}")
    counts = {s: int(np.sum(sizes == s)) for s in set(sizes.tolist())}
    w = np.array([size_penalty ** (s - 1) / counts[s] for s in sizes], dtype=float)
    return np.log(w / w.sum())


def resolve_hypotheses(model: str | Model, hypotheses=None, max_size: int = MAX_SIZE) -> list[Hypothesis]:
    """Return ``hypotheses`` as a list of :class:`Hypothesis`.

    None gives every subset of 1..``max_size`` modulable channels; a list of :class:`Hypothesis` is kept; a
    string ``"CaS+A, H"`` or a list of name tuples is parsed.
    """
    if hypotheses is None:
        return enumerate_hypotheses(model, max_size)
    if all(isinstance(h, Hypothesis) for h in hypotheses):
        return list(hypotheses)
    return parse_hypotheses(model, hypotheses)
