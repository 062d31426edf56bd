"""The DIC posterior: tiny end-to-end training, bounded support, save/load, refusals, bad spike trains."""

import json
from pathlib import Path

import numpy as np
import pytest

import dicsbi
from dicsbi.errors import DicsbiError, InputError
from dicsbi.posterior.artifact import PosteriorError, load_posterior
from dicsbi.posterior.inputs import as_trains

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def some_trains(tiny_set):
    from dicsbi.datasets.storage import load_dataset

    d = load_dataset(tiny_set)
    keep = np.flatnonzero(d.trains.counts >= 3)[:6]
    return d.trains.select(keep), d.targets[keep]


@pytest.mark.parametrize("rep", ["summary", "sequence"])
def test_tiny_training_end_to_end(tiny_posteriors, some_trains, rep):
    post, report = tiny_posteriors[rep]
    trains, _ = some_trains
    assert report.epochs == 4 and np.isfinite(report.best_val_loss) and report.n_train > 100
    assert post.config.training_data["excluded_silent"] == report.excluded_silent
    s = post.sample(trains, 300, seed=1)
    assert s.shape == (6, 300, 2)
    (a, b), (c, d) = post.config.box
    assert (s[..., 0] > a).all() and (s[..., 0] < b).all() and (s[..., 1] > c).all() and (s[..., 1] < d).all()
    np.testing.assert_array_equal(s, post.sample(trains, 300, seed=1))  # seeded
    lp = post.log_prob(s.transpose(1, 0, 2), trains)
    assert lp.shape == (300, 6) and np.isfinite(lp).all()
    assert post.log_prob([b + 1.0, 5.0], trains).tolist() == [-np.inf] * 6  # outside the box: density 0
    assert post.map(trains).shape == (6, 2)
    p = post.class_probabilities(trains)
    assert p.shape == (6, 3) and np.allclose(p.sum(1), 1.0)


def test_density_integrates_to_one_over_the_box(tiny_posteriors, some_trains):
    """The flow lives on logit(box): its density in (g_s, g_u) integrates to 1 on the box (no leakage)."""
    post, _ = tiny_posteriors["summary"]
    trains, _ = some_trains
    (a, b), (c, d) = post.config.box
    # midpoint rule on a fine grid; the density is smooth inside and vanishes at the edges
    n = 400
    gs = a + (np.arange(n) + 0.5) * (b - a) / n
    gu = c + (np.arange(n) + 0.5) * (d - c) / n
    G = np.stack(np.meshgrid(gs, gu, indexing="ij"), -1).reshape(-1, 2)
    lp = post.log_prob(G, trains.select([0, 1]))  # [n*n, 2]
    mass = np.exp(lp).sum(0) * (b - a) * (d - c) / n**2
    np.testing.assert_allclose(mass, 1.0, atol=0.02)


@pytest.mark.parametrize("rep", ["summary", "sequence"])
def test_save_load_round_trip(tiny_posteriors, some_trains, tmp_path, rep):
    post, _ = tiny_posteriors[rep]
    trains, _ = some_trains
    post.save(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["posterior.json", "weights.pt"]
    again = load_posterior(tmp_path / "p", model="stg")
    theta = post.sample(trains, 50, seed=3).transpose(1, 0, 2)
    np.testing.assert_array_equal(again.log_prob(theta, trains), post.log_prob(theta, trains))
    np.testing.assert_array_equal(again.sample(trains, 20, seed=9), post.sample(trains, 20, seed=9))
    cfg = json.loads((tmp_path / "p" / "posterior.json").read_text())
    for key in ("model", "vth_mV", "box", "representation", "flow", "training_data", "versions", "weights_sha256"):
        assert key in cfg
    assert cfg["versions"]["sbi"] and cfg["training_data"]["fingerprint"]


def test_refuses_wrong_model_and_damaged_artifacts(tiny_posteriors, tmp_path):
    post, _ = tiny_posteriors["summary"]
    folder = post.save(tmp_path / "p")
    with pytest.raises(PosteriorError, match="posterior for model 'stg', not 'da'"):
        load_posterior(folder, model="da")
    w = folder / "weights.pt"
    good = w.read_bytes()
    w.write_bytes(good[: len(good) // 2])
    with pytest.raises(PosteriorError, match="checksum mismatch"):
        load_posterior(folder)
    w.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
    with pytest.raises(PosteriorError, match="checksum mismatch"):
        load_posterior(folder)
    w.write_bytes(good)
    (folder / "posterior.json").write_text('{"format": "dicsbi-posterior", "format_ver')
    with pytest.raises(PosteriorError, match="damaged posterior configuration"):
        load_posterior(folder)
    with pytest.raises(PosteriorError, match="not a dicsbi posterior"):
        load_posterior(tmp_path)


@pytest.mark.parametrize("train, message", [
    ([], "has 0 spikes"),
    ([5.0, 3.0, 9.0], "not strictly increasing"),
    ([1.0, np.nan, 9.0], "spike time nan is not a finite number"),
    ([-1.0, 3.0, 9.0], "negative spike time -1.0"),
    ([1.0, 2.0], "has 2 spikes; at least 3"),
])
def test_bad_spike_trains_are_rejected(tiny_posteriors, train, message):
    post, _ = tiny_posteriors["summary"]
    with pytest.raises(InputError, match=message):
        post.sample([np.array([10.0, 20.0, 35.0]), np.array(train, dtype=float)], 10)


def test_as_trains_accepts_one_or_many():
    one = as_trains(np.array([1.0, 2.0, 4.0]))
    many = as_trains([[1.0, 2.0, 4.0], [3.0, 5.0, 9.0, 10.0]])
    assert len(one) == 1 and len(many) == 2 and many.counts.tolist() == [3, 4]
    with pytest.raises(InputError, match="no spike train"):
        as_trains([])


def test_cli_train_writes_a_loadable_posterior(tiny_set, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "post"
    r = subprocess.run([sys.executable, "-m", "dicsbi.cli", "train", "--data", str(tiny_set), "--out", str(out),
                        "--max-epochs", "2", "--threads", "1", "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "2 epochs" in r.stderr and "training / " in r.stderr
    post = load_posterior(out, model="stg")
    assert post.config.train_config["max_epochs"] == 2
    r = subprocess.run([sys.executable, "-m", "dicsbi.cli", "train", "--data", str(tmp_path / "none"), "--out",
                        str(tmp_path / "p2")], capture_output=True, text=True)
    assert r.returncode == 2 and "not a dicsbi data set" in r.stderr and not (tmp_path / "p2").exists()


@pytest.mark.parametrize("model, targets", [("stg", [(-8.0, 6.0), (8.0, 4.0)]), ("da", [(-6.0, 8.0), (4.0, 5.0)])])
def test_shipped_posterior_recovers_the_firing_regime(model, targets):
    """Fresh cells at a bursting and a tonic target: the shipped posterior puts them in the right regime."""
    from dicsbi.compensation import generate_population
    from dicsbi.posterior.artifact import PRETRAINED_DIR
    from dicsbi.simulate import simulate
    from dicsbi.spikes import firing_class

    if not (PRETRAINED_DIR / model / "posterior.json").exists():
        pytest.skip(f"no shipped {model} posterior in this checkout yet (experiments/train_pretrained.py)")
    post = load_posterior(model)
    for k, (gs, gu) in enumerate(targets):
        pop = generate_population(model, gs, gu, 4, seed=900 + k)
        trains = simulate(model, pop.conductances, seed=k).trains
        trains = trains.select(np.flatnonzero(trains.counts >= 3))
        assert len(trains) >= 3
        cls = firing_class(trains)
        p = post.class_probabilities(trains, n=300)
        assert np.mean(p.argmax(1) == cls) >= 0.75, (p, cls)
        mean = post.sample(trains, 500, seed=k).mean(1)
        # bursting: g_s pinned down to a few g_leak; tonic: barely identifiable g_s, but on the right side
        if gs < 0:
            assert np.all(np.abs(mean[:, 0] - gs) < 5.0) and np.all(np.abs(mean[:, 1] - gu) < 5.0), mean
        else:
            assert np.all(mean[:, 0] > -3.0), mean


def test_training_resumes_from_an_earlier_posterior(tiny_set, tiny_posteriors):
    from conftest import FAST

    from dicsbi.errors import DicsbiError
    from dicsbi.posterior.training import TrainConfig, train_posterior

    first, _ = tiny_posteriors["summary"]
    cfg = TrainConfig(**{**FAST, "max_epochs": 2})
    more, rep = train_posterior(tiny_set, cfg, progress=False, resume_from=first)
    assert more.config.training["epochs"] == first.config.training["epochs"] + rep.epochs
    assert rep.best_val_loss <= first.config.training["best_val_loss"] + 0.5  # starts from trained weights
    with pytest.raises(DicsbiError, match="cannot resume: the earlier posterior differs in hidden_features"):
        train_posterior(tiny_set, TrainConfig(**{**FAST, "hidden_features": 8}), progress=False, resume_from=first)


@pytest.mark.parametrize("rep", ["summary", "sequence"])
def test_log_prob_embeds_once_with_sbi_s_numbers(tiny_posteriors, some_trains, rep):
    import torch

    post, _ = tiny_posteriors[rep]
    x = post._condition(some_trains[0])
    u = torch.randn(7, x.shape[0], 2)
    with torch.no_grad():
        ours = post._flow_log_prob(u, x, max_rows=3 * x.shape[0])  # several chunks
        sbi = post.estimator.log_prob(u, condition=x)
    torch.testing.assert_close(ours, sbi, rtol=1e-5, atol=1e-5)


def _fused_agrees_with_nflows(post, x):
    import torch

    from dicsbi.posterior._flow import FusedNSF

    fused = FusedNSF(post.estimator.net)
    with torch.no_grad():
        torch.manual_seed(1)
        ref = post.estimator.sample((300,), condition=x)
        torch.manual_seed(1)
        ours = fused.sample(300, x)
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)  # same noise, same samples
        u = torch.cat([ref, 6 * torch.randn(100, x.shape[0], 2)])  # far beyond the spline interval too
        torch.testing.assert_close(fused.log_prob(u, x), post.estimator.log_prob(u, condition=x),
                                   rtol=1e-5, atol=2e-4)


@pytest.mark.parametrize("rep", ["summary", "sequence"])
def test_fused_flow_gives_nflows_numbers(tiny_posteriors, some_trains, rep):
    """dicsbi.posterior._flow evaluates sbi's NSF with per-train terms once and a numba spline: the same samples
    from the same seed and the same log densities (inside the spline interval and on its linear tails)."""
    post, _ = tiny_posteriors[rep]
    _fused_agrees_with_nflows(post, post._condition(some_trains[0]))


@pytest.mark.parametrize("model", ["stg", "da"])
def test_fused_flow_gives_nflows_numbers_on_the_shipped_posteriors(model):
    post = load_posterior(model)
    trains, _ = dicsbi.read_spike_trains(EXAMPLES / f"{model}_recordings.csv")
    _fused_agrees_with_nflows(post, post._condition(trains))


def test_other_flows_keep_sbi_s_path(some_trains):
    """A flow the fused code is not written for (MAF) is refused by FusedNSF and DICPosterior uses sbi's code."""
    import torch

    from dicsbi.posterior._flow import FusedNSF, UnsupportedFlow
    from dicsbi.posterior.artifact import DICPosterior, _build_estimator
    from dicsbi.posterior.config import PosteriorConfig

    shipped = json.loads((Path(dicsbi.__file__).parent / "pretrained" / "stg" / "posterior.json").read_text())
    cfg = PosteriorConfig.from_json(shipped).replace(flow="maf", hidden_features=8, num_transforms=2)
    net = _build_estimator(cfg, torch.randn(50, 2), torch.randn(50, *cfg.input_shape))
    with pytest.raises(UnsupportedFlow):
        FusedNSF(net.net)
    post = DICPosterior(net, cfg)
    theta = post.sample(some_trains[0], 20, seed=0)
    assert post._fused() is None and np.isfinite(theta).all()


def test_training_on_clean_and_noisy_sets_together(tiny_set, tmp_path):
    """Several data sets train one posterior: parts split by their own targets, target indices kept distinct,
    the artifact records the noise levels; diagnose's fresh simulations then mix the levels."""
    from conftest import FAST

    from dicsbi.datasets.config import DatasetConfig
    from dicsbi.datasets.generate import simulate_dataset
    from dicsbi.datasets.storage import combine_datasets, load_dataset
    from dicsbi.diagnostics.runner import test_set as fresh_test_set
    from dicsbi.errors import DicsbiError
    from dicsbi.posterior.training import TrainConfig, train_posterior

    clean = load_dataset(tiny_set)
    cfg = DatasetConfig.from_dict({**clean.manifest["config"], "n_targets": 40, "seed": 5, "noise_std": 5.0})
    simulate_dataset(cfg, tmp_path / "noisy", progress=False)
    noisy = load_dataset(tmp_path / "noisy")
    both, is_val = combine_datasets([clean, noisy], 0.1)
    assert len(both) == len(clean) + len(noisy) and is_val.sum() == 12 * 2 + 4 * 2  # 10% of each part's targets
    assert np.unique(both.target_index).size == np.unique(clean.target_index).size + np.unique(
        noisy.target_index).size
    assert both.manifest["config"]["noise_std"] == [0.0, 5.0] and len(both.manifest["parts"]) == 2
    np.testing.assert_array_equal(both.trains[len(clean)], noisy.trains[0])
    np.testing.assert_array_equal(combine_datasets([both], 0.1)[1], is_val)  # a combined set splits the same
    post, report = train_posterior([tiny_set, tmp_path / "noisy"], TrainConfig(**{**FAST, "max_epochs": 1}),
                                   progress=False)
    assert post.config.noise_std == (0.0, 5.0) and report.n_train + report.n_val == int(
        ((both.status == 0) & (both.trains.counts >= 3)).sum())
    assert post.config.fingerprint == both.manifest["fingerprint"]
    # quick fresh simulations
    post.config = post.config.replace(simulator={**post.config.simulator, "duration_ms": 600.0})
    trains, theta, source = fresh_test_set(post, 8, 3, progress=False)
    assert "std 0 (75%), std 5 (25%)" in source and len(trains) == theta.shape[0] <= 8
    other = DatasetConfig.from_dict({**cfg.__dict__, "duration_ms": 800.0, "n_targets": 2})
    simulate_dataset(other, tmp_path / "short", progress=False)
    with pytest.raises(DicsbiError, match="differs from the first in duration_ms"):
        combine_datasets([clean, load_dataset(tmp_path / "short")], 0.1)


def test_posterior_config_is_frozen_typed_and_round_trips(tiny_posteriors):
    import dataclasses
    import json

    from dicsbi.posterior.config import REPRESENTATIONS, PosteriorConfig
    from dicsbi.posterior.embedding import REPRESENTATIONS as EMBEDDINGS

    assert REPRESENTATIONS == EMBEDDINGS  # the Literal and the embeddings list the same representations
    post, _ = tiny_posteriors["summary"]
    cfg = post.config
    assert isinstance(cfg, PosteriorConfig) and isinstance(cfg.box, tuple) and isinstance(cfg.noise_std, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model = "da"
    again = PosteriorConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg
    old = {**cfg.to_json(), "noise_std": 5.0}  # files written before noise_std was always a list
    assert PosteriorConfig.from_json(old).noise_std == (5.0,)
    with pytest.raises(PosteriorError, match="noise_std must be levels >= 0"):
        PosteriorConfig.from_json({**cfg.to_json(), "noise_std": [-1.0]})


def test_train_config_is_frozen_and_refuses_unknown_choices():
    import dataclasses

    from dicsbi.posterior.training import TrainConfig

    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().seed = 3
    with pytest.raises(DicsbiError, match="flow must be one of"):
        TrainConfig(flow="glow")
