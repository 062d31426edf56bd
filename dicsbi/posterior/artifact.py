"""The posterior artifact and :class:`DICPosterior`: sampling, densities, the noise posterior, safe save and load.

The artifact is ``weights.pt`` + ``posterior.json`` (see :mod:`dicsbi.posterior`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from ..errors import DicsbiError, InputError
from ..models import get_model
from ..spikes import SpikeTrains
from .config import PosteriorConfig, PosteriorError
from .embedding import build_encoder, represent
from .inputs import _is_single, as_trains, first_window

if TYPE_CHECKING:
    from .noise_level import NoiseLevelModel
    from .typicality import Typicality

WEIGHTS = "weights.pt"


CONFIG = "posterior.json"


PRETRAINED_DIR = Path(__file__).parents[1] / "pretrained"  # dicsbi/pretrained


# nflows (inside sbi) calls a deprecated torch function on every sample; it is not ours to fix and floods output
warnings.filterwarnings("ignore", message="torch.triangular_solve is deprecated", category=UserWarning)


# ---------------------------------------------------------------------------- the posterior
class DICPosterior:
    """p(g_s, g_u | spike train) at the model's V_th, amortised over trains.

    Build with :func:`train_posterior` or :func:`load_posterior`.  All methods take one train or many
    (anything :func:`as_trains` accepts) and are vectorised over them.
    """

    def __init__(self, estimator, config: PosteriorConfig):
        self.estimator = estimator.eval()
        self.device = "cpu"
        self.config = config
        self.model = config.model
        self.vth_mV = config.vth_mV
        self.representation = config.representation
        lo, hi = np.array(config.box, dtype=float).T
        self._lo, self._hi = lo, hi
        self._fused_cache = None
        self.typicality: Typicality | None = None  # when the artifact ships one
        self.noise_level: NoiseLevelModel | None = None  # when trained on several noise levels
        self.folder: Path | None = None  # where it was loaded from (companion files, e.g. the refinement's proposal)

    def __repr__(self) -> str:
        return (f"DICPosterior(model={self.model!r}, representation={self.representation!r}, "
                f"box={[list(b) for b in self.config.box]}, V_th={self.vth_mV} mV)")

    def to(self, device: str) -> DICPosterior:
        """Run the network on ``device`` (``"cuda"``: worth it for large batches).

        Samples come back as numpy either way, and differ from the CPU's in the last bits, so a seed reproduces
        a result per device.
        """
        import torch

        try:
            self.estimator.to(torch.device(device))
        except (RuntimeError, AssertionError) as e:
            raise DicsbiError(f"cannot use torch device {device!r}: {e}") from None
        self.device = str(device)
        self._fused_cache = None
        return self

    def _fused(self):
        """Return the flow's fused CPU evaluator (:mod:`dicsbi.posterior._flow`), or None.

        None on another device or flow structure: sbi's own code is used then.
        """
        if self._fused_cache is None:
            from ._flow import FusedNSF, UnsupportedFlow

            try:
                if self.device != "cpu":
                    raise UnsupportedFlow("fused evaluation runs on the CPU")
                self._fused_cache = FusedNSF(getattr(self.estimator, "net", None))
            except UnsupportedFlow:
                self._fused_cache = False
        return self._fused_cache or None

    def _sample_u(self, n: int, x):
        """``n`` draws of the flow's variable per condition row, ``[n, B, 2]`` on the CPU."""
        fused = self._fused()
        return fused.sample(n, x) if fused else self.estimator.sample((n,), condition=x).cpu()

    # -- transforms between the box and the flow's unbounded space
    def _to_u(self, theta):
        import torch

        lo, hi = (torch.as_tensor(a, dtype=torch.float32) for a in (self._lo, self._hi))
        p = ((theta - lo) / (hi - lo)).clamp(1e-7, 1 - 1e-7)
        u = torch.log(p) - torch.log1p(-p)
        log_jac = (-torch.log(hi - lo) - torch.log(p) - torch.log1p(-p)).sum(-1)  # log |du/dtheta|
        return u, log_jac

    def _to_theta(self, u):
        import torch

        lo, hi = (torch.as_tensor(a, dtype=u.dtype) for a in (self._lo, self._hi))
        return lo + (hi - lo) * torch.sigmoid(u)

    def features(self, trains) -> np.ndarray:
        """Return the network input of ``trains`` (checked).

        With the length-aware representation a train longer than the training window is read over its first
        window: the network never saw longer trains (trained on lengths from ``length_min_ms`` to the window it
        was calibrated on all of them; past the window it was overconfident, docs/posterior.md), and less data
        keeps the posterior calibrated.
        """
        trains = as_trains(trains)
        if self.representation == "summary_length":
            window_ms = self.config.window_ms
            assert window_ms is not None, "a length-aware posterior records its training window"
            trains = first_window(trains, float(window_ms))
        # represent() only reads the stats: the config's read-only mapping serves as its dict
        return represent(trains, self.representation, cast("dict | None", self.config.sequence_stats))

    def _condition(self, trains):
        import torch

        return torch.as_tensor(self.features(trains)).to(self.device)

    def sample(self, trains, n: int, seed: int | None = 0) -> np.ndarray:
        """Draw ``n`` posterior samples of (g_s, g_u) per train: shape ``[n_trains, n, 2]``.

        The shape is ``[n, 2]`` for one train given as a plain array.  Reproducible by ``seed`` (``None``:
        torch's global state).
        """
        import torch

        single = not isinstance(trains, SpikeTrains) and _is_single(trains)
        x = self._condition(trains)
        gen_state = None
        if seed is not None:
            gen_state = torch.random.get_rng_state()
            torch.manual_seed(int(seed))
        try:
            with torch.no_grad():
                u = self._sample_u(int(n), x)
        finally:
            if gen_state is not None:
                torch.random.set_rng_state(gen_state)
        theta = self._to_theta(u).permute(1, 0, 2).numpy().astype(float)
        return theta[0] if single else theta

    def sample_noise(self, trains, theta, seed: int = 0) -> np.ndarray:
        """Draw one noise level (uA/cm^2) per DIC sample from p(sigma | g_s, g_u, train).

        ``theta`` is ``[n_trains, n, 2]`` (or ``[n, 2]`` for one train), the result ``[n_trains, n]`` (or
        ``[n]``); zeros are the point mass (a clean recording).  Together with :meth:`sample` these are joint
        posterior samples.  Raises if the posterior has no noise model (trained on one noise level).
        """
        import torch

        if self.noise_level is None:
            raise DicsbiError("this posterior was trained on one noise level and has no noise posterior")
        th = np.asarray(theta, dtype=np.float32)
        single = th.ndim == 2
        th = th[None] if single else th
        x = self._condition(trains).cpu()
        if x.shape[0] != th.shape[0]:
            raise InputError(f"theta holds samples for {th.shape[0]} trains, got {x.shape[0]} trains")
        n = th.shape[1]
        xr = x.repeat_interleave(n, 0)
        g = torch.Generator().manual_seed(int(seed))
        sig = self.noise_level.sample(xr, torch.as_tensor(th.reshape(-1, 2)), generator=g).reshape(th.shape[:2])
        return sig[0] if single else sig

    def log_prob(self, theta, trains) -> np.ndarray:
        """Return the log posterior density log p(theta | train).

        ``theta`` broadcasts to ``[..., n_trains, 2]``; the result has shape ``[..., n_trains]`` (the train axis
        dropped for one train given as a plain array).  Outside the box the density is 0 (log = -inf).
        """
        import torch

        single = not isinstance(trains, SpikeTrains) and _is_single(trains)
        x = self._condition(trains)
        n_trains = x.shape[0]
        th = np.asarray(theta, dtype=np.float32)
        if th.shape[-1:] != (2,):
            raise InputError(f"theta must end with the 2 DICs (g_s, g_u); got shape {th.shape}")
        lead = th.shape[:-2] if th.ndim >= 2 and th.shape[-2] == n_trains else th.shape[:-1]
        th = np.broadcast_to(th if th.ndim >= 2 and th.shape[-2] == n_trains else th[..., None, :],
                             (*lead, n_trains, 2)).reshape(-1, n_trains, 2)
        tt = torch.as_tensor(np.array(th))  # a writable copy
        inside = ((tt >= torch.as_tensor(self._lo, dtype=tt.dtype)) &
                  (tt <= torch.as_tensor(self._hi, dtype=tt.dtype))).all(-1)
        u, log_jac = self._to_u(tt)
        with torch.no_grad():
            lp = self._flow_log_prob(u.to(self.device), x).cpu() + log_jac
        lp = torch.where(inside, lp, torch.full_like(lp, -math.inf)).numpy().astype(float)
        lp = lp.reshape(*lead, n_trains)
        return lp[..., 0] if single else lp

    def _flow_log_prob(self, u, x, max_rows: int = 65536):
        """Return the flow's log density log q(u | x) for ``u`` of shape [S, B, 2].

        The condition is embedded once per train and the flow is evaluated in chunks of ``max_rows`` rows.
        (sbi's ``log_prob`` repeats each condition S times before the embedding, which for the sequence CNN
        costs S embeddings per train and ran a 24 GB machine out of memory at 500 samples x 500 trains.)  Same
        numbers as sbi's path (a test compares them).
        """
        import torch

        fused = self._fused()
        if fused:
            step = max(1, max_rows // max(u.shape[1], 1))
            return torch.cat([fused.log_prob(u[s0 : s0 + step], x) for s0 in range(0, u.shape[0], step)])
        net = getattr(self.estimator, "net", None)
        if net is None or not all(hasattr(net, a) for a in ("_embedding_net", "_transform", "_distribution")):
            return self.estimator.log_prob(u, condition=x)
        emb = net._embedding_net(x)
        n_s, n_b = u.shape[:2]
        out = torch.empty((n_s, n_b), dtype=u.dtype, device=u.device)
        step = max(1, max_rows // max(n_b, 1))
        for s0 in range(0, n_s, step):
            chunk = u[s0 : s0 + step]
            k = chunk.shape[0]
            ctx = emb.repeat(k, 1)
            noise, logabsdet = net._transform(chunk.reshape(k * n_b, -1), context=ctx)
            out[s0 : s0 + k] = (net._distribution.log_prob(noise, context=ctx) + logabsdet).reshape(k, n_b)
        return out

    def map(self, trains, n: int = 2000, seed: int = 0) -> np.ndarray:
        """Return the maximum a posteriori (g_s, g_u) per train, ``[n_trains, 2]``.

        It is the best of ``n`` samples, refined by gradient ascent on log p in the unbounded space.
        """
        import torch

        x = self._condition(trains)
        torch.manual_seed(seed)
        with torch.no_grad():
            u0 = self._sample_u(n, x)
            lp = self._flow_log_prob(u0.to(self.device), x).cpu() + self._u_log_jac_theta(u0)
        u = u0[lp.argmax(0), torch.arange(x.shape[0])].clone().requires_grad_(True)
        opt = torch.optim.Adam([u], lr=0.02)
        for _ in range(100):
            opt.zero_grad()
            loss = -(self.estimator.log_prob(u[None].to(self.device), condition=x)[0].cpu()
                     + self._u_log_jac_theta(u)).sum()
            loss.backward()
            opt.step()
        return self._to_theta(u.detach()).numpy().astype(float)

    def _u_log_jac_theta(self, u):
        """Return log |dtheta/du|^-1 written in u: log q(u|x) - log|dtheta/du| = log p(theta|x)."""
        import torch

        lo, hi = (torch.as_tensor(a, dtype=u.dtype) for a in (self._lo, self._hi))
        s = torch.sigmoid(u)
        return -(torch.log(hi - lo) + torch.log(s) + torch.log1p(-s)).sum(-1)

    def class_probabilities(self, trains, n: int = 500, seed: int = 0) -> np.ndarray:
        """Return ``[n_trains, 3]`` probabilities that a cell at a posterior (g_s, g_u) is silent, spiking or bursting.

        They come from the class frequencies of the training set on a grid over the box.
        """
        grid = np.asarray((self.config.class_map or {})["frequencies"], dtype=float)  # [nx, ny, 3]
        nx, ny = grid.shape[:2]
        theta = self.sample(as_trains(trains), n, seed)
        if theta.ndim == 2:
            theta = theta[None]
        ix = np.clip(((theta[..., 0] - self._lo[0]) / (self._hi[0] - self._lo[0]) * nx).astype(int), 0, nx - 1)
        iy = np.clip(((theta[..., 1] - self._lo[1]) / (self._hi[1] - self._lo[1]) * ny).astype(int), 0, ny - 1)
        return grid[ix, iy].mean(axis=1)

    # -- persistence
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``weights.pt`` + ``posterior.json`` into ``folder`` (atomically, checksummed)."""
        import torch

        from ..io.files import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{WEIGHTS}.{os.getpid()}.tmp"
        try:
            torch.save(self.estimator.state_dict(), tmp)
            digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
            os.replace(tmp, folder / WEIGHTS)
        finally:
            tmp.unlink(missing_ok=True)
        cfg = self.config.replace(weights_sha256=digest)
        if self.noise_level is not None:
            cfg = cfg.replace(noise_level=self.noise_level.save(folder))
        atomic_write_text(folder / CONFIG, json.dumps(cfg.to_json(), indent=1) + "\n")
        self.config = cfg
        if self.typicality is not None:
            self.typicality.save(folder)
        return folder


# ---------------------------------------------------------------------------- building the estimator
def _build_estimator(config: PosteriorConfig, theta_u, x):
    """Build sbi's flow with our embedding; z-scoring statistics come from (theta_u, x)."""
    import torch
    from sbi.neural_nets import posterior_nn
    from torch import nn

    rep = config.representation
    embedding = build_encoder(config.embedding_dim) if rep == "sequence" else nn.Identity()
    builder = posterior_nn(config.flow, z_score_theta="independent",
                           z_score_x="independent" if rep.startswith("summary") else "none",
                           hidden_features=config.hidden_features, num_transforms=config.num_transforms,
                           num_bins=config.num_bins, embedding_net=embedding)
    return builder(torch.as_tensor(theta_u, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32))


# ---------------------------------------------------------------------------- loading
def load_posterior(source: str | os.PathLike, model: str | None = None) -> DICPosterior:
    """Load a posterior: a shipped one by model name (``"stg"``, ``"da"``) or a folder of :meth:`DICPosterior.save`.

    ``model`` makes loading refuse an artifact made for another model.
    """
    import torch

    folder = Path(source)
    if not folder.exists() and str(source) in ("stg", "da"):
        folder = PRETRAINED_DIR / str(source)
        model = model or str(source)
        if not (folder / CONFIG).exists():
            raise PosteriorError(f"no shipped posterior for {source!r} in this installation ({folder})")
    if folder.is_file():
        folder = folder.parent
    try:
        config = json.loads((folder / CONFIG).read_text())
    except FileNotFoundError:
        raise PosteriorError(f"{folder}: not a dicsbi posterior (no {CONFIG})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PosteriorError(f"{folder / CONFIG}: damaged posterior configuration ({e})") from None
    config = PosteriorConfig.from_json(config, str(folder / CONFIG))
    if model is not None and config.model != get_model(model).name:
        raise PosteriorError(f"{folder} holds a posterior for model {config.model!r}, not {model!r}")
    wpath = folder / WEIGHTS
    try:
        raw = wpath.read_bytes()
    except FileNotFoundError:
        raise PosteriorError(f"{folder}: weights file {WEIGHTS} is missing") from None
    if hashlib.sha256(raw).hexdigest() != config.weights_sha256:
        raise PosteriorError(f"{wpath}: checksum mismatch (the file is corrupted, truncated or not the one "
                             f"{CONFIG} was written with)")
    import io

    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:
        raise PosteriorError(f"{wpath}: unreadable weights ({e})") from None
    shape = config.input_shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn((64, *shape), generator=g)
    if config.representation == "sequence":
        x[..., 2] = 1.0
    net = _build_estimator(config, torch.randn((64, 2), generator=g), x)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise PosteriorError(f"{wpath}: weights do not fit the network in {CONFIG} ({e})") from None
    from .typicality import Typicality

    post = DICPosterior(net, config)
    post.folder = folder
    post.typicality = Typicality.load(folder)
    if config.noise_level is not None:
        from .noise_level import NoiseLevelModel

        post.noise_level = NoiseLevelModel.load(folder, dict(config.noise_level), PosteriorError)
    return post
