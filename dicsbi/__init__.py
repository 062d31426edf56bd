"""dicsbi: degenerate conductance-based neuron populations from spike times.

The top-level API is deliberately small; everything else lives in its module (``dicsbi.models``,
``dicsbi.simulate``, ``dicsbi.spikes``, ``dicsbi.io``); ``docs/architecture.md`` says which module owns what.
"""

import os as _os

# numba's parallel kernels and torch both use OpenMP; with the default active wait policy the idle workers of
# one runtime spin for a while after each parallel region and starve the other on small machines (measured on
# 2 cores: a 1000 x 64 torch op after a numba feature kernel took 2.8 ms instead of 0.02 ms, and one posterior
# draw of 1000 samples 234 ms instead of a few).  Passive waiting is set unless the user chose a policy.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .compensation import compensate, generate_population  # noqa: E402
from .dics import compute_dics, find_vth  # noqa: E402
from .errors import DicsbiError  # noqa: E402
from .models import get_model  # noqa: E402
from .simulate import SimulationResult, simulate  # noqa: E402
from .spikes import SpikeTrains, firing_class, spike_features, van_rossum_distance  # noqa: E402
from .stimulus import Stimulus  # noqa: E402

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
