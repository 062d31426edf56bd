"""The amortised DIC posterior p(g_s, g_u, noise level | spike train).

The artifact and :class:`DICPosterior` (:mod:`.artifact`), its configuration (:mod:`.config`), what it accepts
as input (:mod:`.inputs`), training (:mod:`.training`), the network's input (:mod:`.summary` statistics,
:mod:`.embedding`), the fused flow (:mod:`._flow`), the noise posterior (:mod:`.noise_level`) and the
out-of-world flag (:mod:`.typicality`).
"""

from .artifact import PRETRAINED_DIR, DICPosterior, load_posterior
from .config import PosteriorConfig, PosteriorError
from .inputs import as_trains, first_window
from .training import TrainConfig, TrainingReport, train_posterior

__all__ = ["PRETRAINED_DIR", "DICPosterior", "PosteriorConfig", "PosteriorError", "TrainConfig", "TrainingReport",
           "as_trains", "first_window", "load_posterior", "train_posterior"]
