"""The noise level's posterior p(sigma | g_s, g_u, spike train): a point mass at 0 and a density on (0, max].

Why a second network and not a third flow dimension
    The noise prior has a point mass at 0 (clean recordings) and a continuous part, and a normalising flow has
    no point masses.  The posterior is factorised exactly instead,
    ``p(g_s, g_u, sigma | x) = p(g_s, g_u | x) p(sigma | g_s, g_u, x)``: the DIC flow
    (:class:`dicsbi.posterior.DICPosterior`) is the marginal over the noise (it is trained on clean and noisy
    trains together), and this module's conditional model is a mixed distribution,

        P(sigma = 0 | theta, x) = pi(theta, x),
        p(sigma | theta, x) = (1 - pi) * sum_k w_k N(logit(sigma / max); mu_k, s_k) |d logit / d sigma|,

    with pi, w, mu, s from a small network of the (z-scored) network input and the DICs scaled to the box.  It
    is trained by maximum likelihood on the same (DIC target, noise level, augmented train) triples as the flow
    (:func:`dicsbi.posterior.train_posterior` trains both in one loop), so samples of (g_s, g_u) followed by
    one noise level each are samples of the joint posterior.  Conditioning on the DICs keeps their correlation
    with the noise (an irregular train is a noisy cell or a cell near the spiking/bursting border).

The prior
    The training world's: the clean training set gives the point mass, the ``noise_max`` set (levels uniform on
    (0, max], :class:`dicsbi.datasets.DatasetConfig`) the continuous part; the artifact records both shares.
    8 uA/cm^2 as the top: the published noisy data sets use 5 (STG, DA) and 3; the prior reaches past them.

Calibration of a mixed variable
    A posterior CDF has a jump at 0, so the rank of a clean truth is drawn uniformly inside the jump
    (randomised PIT): PIT = U * P(sigma = 0) for sigma = 0, P(sigma < truth) otherwise.  For a calibrated
    posterior it is uniform, which gives the SBC statistic and the central-interval coverage
    (:func:`randomised_pit`).
"""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np

WEIGHTS = "noise_level.pt"


def _net(n_in: int, hidden: int, components: int):
    from torch import nn

    return nn.Sequential(nn.Linear(n_in + 2, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                         nn.Linear(hidden, 1 + 3 * components))


class NoiseLevelModel:
    """The conditional noise-level model p(sigma | theta, x) (see the module docstring).

    ``config``: max, p_zero (the prior's point mass), hidden, components, the input's z-scoring (x_mean, x_std)
    and the DIC box.
    """

    def __init__(self, net, config: dict):
        import torch

        self.net = net.eval()
        self.config = config
        self.max = float(config["max"])
        self._mean = torch.as_tensor(config["x_mean"], dtype=torch.float32)
        self._std = torch.as_tensor(config["x_std"], dtype=torch.float32)
        lo, hi = np.array(config["box"], dtype=float).T
        self._lo, self._span = torch.as_tensor(lo, dtype=torch.float32), torch.as_tensor(hi - lo, dtype=torch.float32)

    @classmethod
    def create(cls, x, box, noise_max: float, p_zero: float, hidden: int = 64, components: int = 8,
               seed: int = 0) -> NoiseLevelModel:
        """Create a fresh model z-scoring the network input like ``x`` (a tensor of training inputs)."""
        import torch

        torch.manual_seed(seed)
        x = x.reshape(x.shape[0], -1).float()
        std = x.std(0)
        cfg = {"max": float(noise_max), "p_zero": float(p_zero), "hidden": int(hidden),
               "components": int(components), "box": [list(map(float, b)) for b in box],
               "x_mean": x.mean(0).tolist(), "x_std": torch.where(std > 1e-8, std, torch.ones_like(std)).tolist()}
        return cls(_net(x.shape[1], hidden, components), cfg)

    # -- the distribution
    def _params(self, x, theta):
        """Return logit pi, log w, mu, log s for rows of (x [R, D], theta [R, 2])."""
        import torch

        h = torch.cat([(x.reshape(x.shape[0], -1) - self._mean) / self._std, (theta - self._lo) / self._span], -1)
        out = self.net(h)
        k = self.config["components"]
        logw = torch.log_softmax(out[:, 1:1 + k], -1)
        return out[:, 0], logw, out[:, 1 + k:1 + 2 * k], out[:, 1 + 2 * k:].clamp(-7.0, 3.0)

    def log_prob(self, sigma, x, theta):
        """Return log P(sigma = 0) for zeros, log density (per uA/cm^2) for sigma in (0, max]; rows of tensors."""
        import torch
        import torch.nn.functional as F

        logit_pi, logw, mu, logs = self._params(x, theta)
        zero = sigma <= 0
        p = (sigma / self.max).clamp(1e-6, 1 - 1e-6)
        s = torch.log(p) - torch.log1p(-p)
        comp = -0.5 * ((s[:, None] - mu) / logs.exp()) ** 2 - logs - 0.5 * math.log(2 * math.pi)
        dens = torch.logsumexp(logw + comp, -1) - math.log(self.max) - torch.log(p) - torch.log1p(-p)
        return torch.where(zero, F.logsigmoid(logit_pi), F.logsigmoid(-logit_pi) + dens)

    def loss(self, sigma, x, theta):
        """Return the training loss: the mean negative :meth:`log_prob` over the rows (tensors)."""
        return -self.log_prob(sigma, x, theta).mean()

    def sample(self, x, theta, generator=None) -> np.ndarray:
        """One noise level per row of (x [R, ...], theta [R, 2]) (tensors); zeros for the point mass."""
        import torch

        with torch.no_grad():
            logit_pi, logw, mu, logs = self._params(x, theta)
            r = logit_pi.shape[0]
            zero = torch.rand(r, generator=generator) < torch.sigmoid(logit_pi)
            k = torch.multinomial(logw.exp(), 1, generator=generator)[:, 0]
            rows = torch.arange(r)
            s = mu[rows, k] + logs[rows, k].exp() * torch.randn(r, generator=generator)
            sigma = self.max * torch.sigmoid(s)
        return torch.where(zero, torch.zeros_like(sigma), sigma).numpy().astype(float)

    def prob_zero(self, x, theta) -> np.ndarray:
        """Return P(sigma = 0 | theta, x), the probability of a clean recording, per row of (x, theta) (tensors)."""
        import torch

        with torch.no_grad():
            return torch.sigmoid(self._params(x, theta)[0]).numpy().astype(float)

    # -- persistence (a state dict loaded with weights_only=True, its config inside posterior.json)
    def save(self, folder) -> dict:
        """Write the weights into ``folder``; returns the config entry (with the weights' SHA-256)."""
        import torch

        from ..io.files import atomic_write_bytes

        buf = io.BytesIO()
        torch.save(self.net.state_dict(), buf)
        raw = buf.getvalue()
        atomic_write_bytes(Path(folder) / WEIGHTS, raw)
        self.config = {**self.config, "weights_sha256": hashlib.sha256(raw).hexdigest()}
        return self.config

    @classmethod
    def load(cls, folder, config: dict, error) -> NoiseLevelModel:
        """Load from ``folder`` with ``config`` (checked); ``error`` is the exception class to raise."""
        import torch

        path = Path(folder) / WEIGHTS
        keys = {"max", "p_zero", "hidden", "components", "box", "x_mean", "x_std", "weights_sha256"}
        if not isinstance(config, dict) or set(config) != keys:
            raise error(f"{path.parent}: invalid noise-level configuration (expected the fields {sorted(keys)})")
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise error(f"{path.parent}: weights file {WEIGHTS} is missing") from None
        if hashlib.sha256(raw).hexdigest() != config["weights_sha256"]:
            raise error(f"{path}: checksum mismatch (the file is corrupted or not the one the configuration "
                        "was written with)")
        net = _net(len(config["x_mean"]), int(config["hidden"]), int(config["components"]))
        try:
            net.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
        except Exception as e:
            raise error(f"{path}: unreadable weights ({e})") from None
        return cls(net, config)


def randomised_pit(samples: np.ndarray, truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return the randomised PIT of each truth under its posterior samples ``[n_trains, n]``.

    For a variable with a point mass at 0, the PIT is the share of samples below the truth, plus a uniform share
    of the samples equal to it (ties, i.e. zeros).
    """
    rng = np.random.default_rng(seed)
    below = (samples < truth[:, None]).mean(1)
    ties = (samples == truth[:, None]).mean(1)
    return below + rng.uniform(size=truth.size) * ties
