"""Neuromodulation: finding which channels a modulator changed.

Bayesian comparison of channel subsets (Pyro), reachability maps coloured by cost, and tracking populations
through time.

See :func:`modulate` (the comparison), :mod:`dicsbi.modulation.model` (the Pyro model and cost prior),
:mod:`dicsbi.modulation.evidence` (the estimator), :mod:`dicsbi.modulation.cost_rule` (the published rule as a
baseline), :mod:`dicsbi.modulation.scenarios` and :mod:`dicsbi.modulation.scoring` (the benchmark) and
``docs/modulation.md``.
"""

from .compare import ModulationResult, compare_population, modulate
from .cost_rule import CostRanking, rank_by_cost, rank_by_cost_population
from .hypotheses import Hypothesis, enumerate_hypotheses, hypothesis_log_prior, modulable_channels, parse_hypotheses
from .inputs import ModelMismatchError, match_recordings
from .maps import CostMap, cost_map, plot_cost_map
from .options import ComparisonOptions
from .scenarios import Scenario, draw_scenario
from .tracking import Tracking, track

__all__ = ["ComparisonOptions", "CostMap", "CostRanking", "Hypothesis", "ModelMismatchError", "ModulationResult",
           "Scenario", "Tracking", "compare_population", "cost_map", "draw_scenario", "enumerate_hypotheses",
           "hypothesis_log_prior", "match_recordings", "modulable_channels", "modulate", "parse_hypotheses",
           "plot_cost_map", "rank_by_cost", "rank_by_cost_population", "track"]
