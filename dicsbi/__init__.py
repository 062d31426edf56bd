"""dicsbi: degenerate conductance-based neuron populations from spike times.

The top-level API is deliberately small; everything else lives in its module (``dicsbi.models``,
``dicsbi.simulate``, ``dicsbi.spikes``, ``dicsbi.io``); ``docs/architecture.md`` says which module owns what.
"""

from . import _openmp as _openmp  # first: OpenMP's wait policy is set before numba or torch start a runtime
from .compensation import compensate, generate_population
from .dics import compute_dics, find_vth
from .errors import DicsbiError
from .models import get_model
from .simulate import SimulationResult, simulate
from .spikes import SpikeTrains, firing_class, spike_features, van_rossum_distance
from .stimulus import Stimulus

__version__ = "0.1.0.dev0"

_LAZY = {"load_posterior": "posterior", "train_posterior": "posterior", "DICPosterior": "posterior",
         "simulate_dataset": "datasets", "load_dataset": "datasets", "DatasetConfig": "datasets",
         "TrainConfig": "posterior", "infer": "pipeline", "read_spike_trains": "io", "from_neo": "io",
         "inference_data": "io.netcdf"}


def __getattr__(name):
    """Torch- and pyarrow-backed parts are imported on first use, so ``import dicsbi`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'dicsbi' has no attribute {name!r}")

__all__ = ["DICPosterior", "DatasetConfig", "DicsbiError", "SimulationResult", "SpikeTrains", "Stimulus",
           "TrainConfig",
           "compensate", "compute_dics", "find_vth", "firing_class", "from_neo", "generate_population",
           "get_model", "infer", "inference_data", "load_dataset", "load_posterior", "read_spike_trains",
           "simulate", "simulate_dataset", "spike_features", "train_posterior", "van_rossum_distance",
           "__version__"]
