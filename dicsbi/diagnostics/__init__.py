"""Is a posterior right?  Calibration metrics (:mod:`.metrics`: SBC, coverage, TARP), the posterior
predictive check of populations (:mod:`.predictive`) and the ``dicsbi diagnose`` runner (:mod:`.runner`)."""

from .metrics import expected_coverage, sbc_ks_pvalues, sbc_ranks, tarp

__all__ = ["expected_coverage", "sbc_ks_pvalues", "sbc_ranks", "tarp"]
