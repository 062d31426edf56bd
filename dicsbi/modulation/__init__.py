"""Neuromodulation: which channels did a modulator change?  Bayesian comparison of channel subsets (Pyro),
reachability maps coloured by cost, and tracking populations through time.

See :func:`modulate` (the comparison), :mod:`dicsbi.modulation.model` (the Pyro model and cost prior),
:mod:`dicsbi.modulation.evidence` (the estimator) and ``docs/modulation.md``.
"""

from .compare import ModelMismatchError, ModulationResult, match_recordings, modulate
from .hypotheses import Hypothesis, enumerate_hypotheses, hypothesis_log_prior, modulable_channels, parse_hypotheses
from .maps import CostMap, cost_map, plot_cost_map
from .tracking import Tracking, track

__all__ = ["CostMap", "Hypothesis", "ModelMismatchError", "ModulationResult", "Tracking", "cost_map",
           "enumerate_hypotheses", "hypothesis_log_prior", "match_recordings", "modulable_channels", "modulate",
           "parse_hypotheses", "plot_cost_map", "track"]
