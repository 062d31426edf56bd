"""Registry of the neuron models: the shipped ones and those a user registers.

``get_model("stg")`` returns the :class:`~dicsbi.models.base.Model`; passing a ``Model`` returns it
unchanged, so every public function accepts either a name or a model object.  :func:`register_model` adds a
user's model under its name, so that it runs through every command that takes ``--model`` (training sets,
training, ``infer``, ``modulate``) in the same process.
"""

from __future__ import annotations

from ..errors import ModelError
from .base import CalciumPool, Channel, Gate, Model, SeedSpec
from .da import DA
from .stg import STG

MODELS: dict[str, Model] = {STG.name: STG, DA.name: DA}
SHIPPED = frozenset(MODELS)


def register_model(model: Model, replace: bool = False) -> Model:
    """Make ``model`` available by its name (lower case) to :func:`get_model` and every command.

    Parameters
    ----------
    model : Model
        The model to register.
    replace : bool
        Replace a model registered earlier under the same name (never a shipped one).

    Returns
    -------
    Model
        ``model``, so that ``MY = register_model(Model(...))`` reads as a definition.
    """
    if not isinstance(model, Model):
        raise ModelError(f"register_model takes a dicsbi.models.Model, got {type(model).__name__}")
    key = model.name.strip().lower()
    if key in SHIPPED or (key in MODELS and MODELS[key] is not model and not replace):
        raise ModelError(f"a model named {model.name!r} is already registered"
                         + (" (a shipped model)" if key in SHIPPED else "; pass replace=True to replace it"))
    MODELS[key] = model
    return model


def get_model(model: str | Model) -> Model:
    """Look a model up by name (case-insensitive) or pass a :class:`Model` through."""
    if isinstance(model, Model):
        return model
    key = str(model).strip().lower()
    if key not in MODELS:
        raise ModelError(f"unknown model {model!r}; available models: {', '.join(sorted(MODELS))}")
    return MODELS[key]


__all__ = ["CalciumPool", "Channel", "DA", "Gate", "MODELS", "Model", "STG", "SeedSpec", "get_model", "register_model"]
