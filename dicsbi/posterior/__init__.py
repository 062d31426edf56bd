"""The amortised DIC posterior p(g_s, g_u, noise level | spike train): the artifact and :class:`DICPosterior`
(:mod:`.artifact`), training (:mod:`.training`), the network's input (:mod:`.summary` statistics,
:mod:`.embedding`), the fused flow (:mod:`._flow`), the noise posterior (:mod:`.noise_level`) and the
out-of-world flag (:mod:`.typicality`)."""

from .artifact import PRETRAINED_DIR, DICPosterior, PosteriorError, first_window, load_posterior
from .training import TrainConfig, TrainingReport, train_posterior

__all__ = ["PRETRAINED_DIR", "DICPosterior", "PosteriorError", "TrainConfig", "TrainingReport", "first_window",
           "load_posterior", "train_posterior"]
