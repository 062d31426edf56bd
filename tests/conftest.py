import csv
import random
import sys

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seeded_global_streams():
    """Every test starts from the same global random state (Python, numpy and torch when loaded).

    dicsbi itself never reads a global stream (every function takes a seed); this keeps a test that calls into
    third-party code relying on one (sbi's classifier tests, torch initialisers) reproducible.
    """
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 - the legacy global stream is the one third-party code reads
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# a tiny STG training set and posteriors trained on it (seconds), shared by the inference and pipeline tests
FAST = dict(max_epochs=4, hidden_features=16, num_transforms=2, num_bins=4, batch_size=64, patience=50)


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory):
    from dicsbi.datasets.config import DatasetConfig
    from dicsbi.datasets.generate import simulate_dataset

    out = tmp_path_factory.mktemp("tiny") / "stg"
    cfg = DatasetConfig("stg", n_targets=120, cells_per_target=2, seed=4, duration_ms=1000.0, transient_ms=300.0,
                        targets_per_shard=40)
    simulate_dataset(cfg, out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_posteriors(tiny_set):
    from dicsbi.posterior.training import TrainConfig, train_posterior

    return {rep: train_posterior(tiny_set, TrainConfig(representation=rep, embedding_dim=8, **FAST),
                                 progress=False) for rep in ("summary", "sequence")}


def kill_while_writing(cmd: list[str], out, timeout_s: float = 180.0) -> set[str]:
    """Start a dicsbi command, SIGKILL it while its staging folder holds a file, and return the names left in
    ``out`` (the caller asserts they are temporary ones only)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < timeout_s and proc.poll() is None:
        stages = list(out.glob(".partial-*")) if out.exists() else []
        if stages and any(stages[0].rglob("*")):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {p.name for p in out.iterdir()}


def read_csv(path, dict_rows: bool = True) -> list:
    """The rows of a CSV file (dicts by header, or lists), the file closed again."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f)) if dict_rows else list(csv.reader(f))
