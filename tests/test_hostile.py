"""Hostile posterior artifacts are refused and nothing in them is executed."""

import hashlib
import json
import pickle

import pytest
import torch

from dicsbi.posterior.artifact import PosteriorError, load_posterior


class _Payload:
    """Unpickling this object would create the file ``path`` (what an attacker's pickle would do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _fix_checksum(folder):
    cfg = json.loads((folder / "posterior.json").read_text())
    cfg["weights_sha256"] = hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()
    (folder / "posterior.json").write_text(json.dumps(cfg))


@pytest.fixture
def artifact(tiny_posteriors, tmp_path):
    return tiny_posteriors["summary"][0].save(tmp_path / "post")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch on the crafted payload
def test_pickle_payload_in_the_weights_is_never_executed(artifact, tmp_path):
    marker = tmp_path / "pwned"
    state = {"x": torch.zeros(1), "evil": _Payload(marker)}
    torch.save(state, artifact / "weights.pt")  # a valid torch file whose pickle runs open() when loaded unsafely
    _fix_checksum(artifact)  # an attacker can recompute the checksum, so the checksum alone is no defence
    with pytest.raises(PosteriorError, match="unreadable weights"):
        load_posterior(artifact)
    assert not marker.exists()
    (artifact / "weights.pt").write_bytes(pickle.dumps(_Payload(marker)))  # a bare pickle
    _fix_checksum(artifact)
    with pytest.raises(PosteriorError, match="unreadable weights"):
        load_posterior(artifact)
    assert not marker.exists()


def test_unexpected_or_invalid_json_fields_are_refused(artifact):
    good = json.loads((artifact / "posterior.json").read_text())
    (artifact / "posterior.json").write_text(json.dumps({**good, "loader": "os.system('rm -rf /')"}))
    with pytest.raises(PosteriorError, match="unexpected field\\(s\\) 'loader'"):
        load_posterior(artifact)
    for key, value, message in [("box", [[0, 1]], "box must be"), ("hidden_features", 10**9, "hidden_features"),
                                ("representation", "transformer", "representation must be"),
                                ("flow", "__import__", "flow must be"), ("model", "squid", "unknown model")]:
        (artifact / "posterior.json").write_text(json.dumps({**good, key: value}))
        with pytest.raises(PosteriorError, match=message):
            load_posterior(artifact)


def test_wrong_shape_and_truncated_weights_are_refused(artifact):
    state = torch.load(artifact / "weights.pt", weights_only=True)
    name = next(k for k, v in state.items() if v.ndim == 2)
    state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
    torch.save(state, artifact / "weights.pt")
    _fix_checksum(artifact)
    with pytest.raises(PosteriorError, match="weights do not fit the network"):
        load_posterior(artifact)
    raw = (artifact / "weights.pt").read_bytes()
    (artifact / "weights.pt").write_bytes(raw[: len(raw) // 3])
    _fix_checksum(artifact)
    with pytest.raises(PosteriorError, match="unreadable weights"):
        load_posterior(artifact)
