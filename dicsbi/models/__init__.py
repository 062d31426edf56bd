"""Registry of the shipped neuron models.

``get_model("stg")`` returns the :class:`~dicsbi.models.base.Model`; passing a ``Model`` returns it
unchanged, so every public function accepts either a name or a model object (including user-defined ones).
"""

from __future__ import annotations

from ..errors import ModelError
from .base import CalciumPool, Channel, Gate, Model, SeedSpec
from .da import DA
from .stg import STG

MODELS: dict[str, Model] = {STG.name: STG, DA.name: DA}


def get_model(model: str | Model) -> Model:
    """Look a model up by name (case-insensitive) or pass a :class:`Model` through."""
    if isinstance(model, Model):
        return model
    key = str(model).strip().lower()
    if key not in MODELS:
        raise ModelError(f"unknown model {model!r}; available models: {', '.join(sorted(MODELS))}")
    return MODELS[key]


__all__ = ["CalciumPool", "Channel", "DA", "Gate", "MODELS", "Model", "STG", "SeedSpec", "get_model"]
