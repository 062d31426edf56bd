"""Is a posterior right?  Calibration metrics, the posterior predictive check and the ``diagnose`` runner.

The calibration metrics are in :mod:`.metrics` (SBC, coverage, TARP), the posterior predictive check of
populations in :mod:`.predictive` and the ``dicsbi diagnose`` runner in :mod:`.runner`.
"""

from .metrics import expected_coverage, sbc_ks_pvalues, sbc_ranks, tarp

__all__ = ["expected_coverage", "sbc_ks_pvalues", "sbc_ranks", "tarp"]
