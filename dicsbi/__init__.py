"""dicsbi: degenerate conductance-based neuron populations from spike times.

The top-level API is deliberately small; everything else lives in its module (``dicsbi.models``,
``dicsbi.simulate``, ``dicsbi.spikes``, ``dicsbi.io``).
"""

from .compensation import compensate, generate_population
from .dics import compute_dics, find_vth
from .errors import DicsbiError
from .models import get_model
from .simulate import SimulationResult, simulate
from .spikes import SpikeTrains, firing_class, spike_features, van_rossum_distance

__version__ = "0.1.0.dev0"

__all__ = ["DicsbiError", "SimulationResult", "SpikeTrains", "compensate", "compute_dics", "find_vth",
           "firing_class", "generate_population", "get_model", "simulate", "spike_features",
           "van_rossum_distance", "__version__"]
