"""The catalogue of user-facing errors: each case builds a bad input in a scratch folder and triggers the error.

``experiments/make_error_catalogue.py`` writes ``docs/errors.md`` from these cases (the message each gives, with
the scratch folder shown as ``<dir>``) and ``tests/test_errors.py`` runs every case and checks the page is
current, so every row of the page is a test.
"""

from __future__ import annotations

from pathlib import Path

CASES: list[tuple[str, str, object]] = []


def case(area: str, situation: str):
    def register(fn):
        CASES.append((area, situation, fn))
        return fn

    return register


def _csv(d: Path, text: str, name: str = "spikes.csv") -> Path:
    p = d / name
    p.write_text(text)
    return p


def _read(p, **kw):
    from dicsbi.io.readers import read_spike_trains

    return read_spike_trains(p, **kw)


# ---------------------------------------------------------------------------- spike-train files
@case("spike times", "file does not exist")
def _(d):
    _read(d / "missing.csv")


@case("spike times", "empty file")
def _(d):
    _read(_csv(d, ""))


@case("spike times", "no ID column")
def _(d):
    _read(_csv(d, 'name,spiking_times\na,"[1, 2, 3]"\n'))


@case("spike times", "no spike-time column")
def _(d):
    _read(_csv(d, "ID,when\na,1\n"))


@case("spike times", "unparsable Spike2Pop list")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[1, two, 3]"\n'))


@case("spike times", "list without brackets")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"1, 2, 3"\n'))


@case("spike times", "NaN spike time")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[1, nan, 3]"\n'))


@case("spike times", "negative spike time")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[-1, 2, 3]"\n'))


@case("spike times", "unsorted spike times")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[1, 3, 2]"\n'))


@case("spike times", "times in seconds read as ms (intervals under the refractory floor)")
def _(d):
    _read(_csv(d, 'ID,spiking_times\nLP1,"[0.100, 0.175, 0.250, 0.325]"\n'))


@case("spike times", "times in microseconds read as ms (days into the recording)")
def _(d):
    _read(_csv(d, "id,spike_time\nn1,1.2e8\nn1,2.5e8\n"))


@case("spike times", "duplicated ID")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[1, 2, 3]"\nb,"[1, 2, 3]"\na,"[4, 5, 6]"\n'))


@case("spike times", "empty ID")
def _(d):
    _read(_csv(d, 'ID,spiking_times\n,"[1, 2, 3]"\n'))


@case("spike times", "unknown time unit in the header")
def _(d):
    _read(_csv(d, 'ID,spiking_times [min]\na,"[1, 2, 3]"\n'))


@case("spike times", "unknown time unit given")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[1, 2, 3]"\n'), unit="hours")


@case("spike times", "long CSV: time is not a number")
def _(d):
    _read(_csv(d, "id,spike_time\na,1\na,x\n"))


@case("spike times", "spike outside the recording window")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[1, 2, 3000]"\n'), t_stop_ms=1000.0)


@case("spike times", "not a text file")
def _(d):
    p = d / "spikes.csv"
    p.write_bytes(b"\xff\xfe\x00\x81binary")
    _read(p)


@case("spike times", "damaged NWB file")
def _(d):
    p = d / "rec.nwb"
    p.write_bytes(b"not hdf5")
    _read(p)


@case("spike times", "every row bad (with --skip-bad)")
def _(d):
    _read(_csv(d, 'ID,spiking_times\na,"[3, 2, 1]"\n'), skip_bad=True)


# ---------------------------------------------------------------------------- trains given in Python
@case("spike trains (Python)", "fewer than 3 spikes")
def _(d):
    from dicsbi.posterior.inputs import as_trains

    as_trains([1.0, 2.0])


@case("spike trains (Python)", "not numbers")
def _(d):
    from dicsbi.posterior.inputs import as_trains

    as_trains([["a", "b", "c"]])


# ---------------------------------------------------------------------------- models and conductance tables
@case("model", "unknown model name")
def _(d):
    from dicsbi.models import get_model

    get_model("squid")


@case("conductance table", "missing conductance column")
def _(d):
    from dicsbi.io.readers import read_conductances_csv

    read_conductances_csv(_csv(d, "ID,g_Na,g_Kd\na,100,50\n", "g.csv"), "stg")


@case("conductance table", "value is not a number")
def _(d):
    from dicsbi.io.readers import read_conductances_csv

    cols = "Na,CaT,CaS,A,KCa,Kd,H,leak"
    read_conductances_csv(_csv(d, f"ID,{cols}\na,100,2,4,20,50,x,0.02,0.01\n", "g.csv"), "stg")


@case("conductance table", "negative conductance")
def _(d):
    from dicsbi.io.readers import read_conductances_csv

    cols = "Na,CaT,CaS,A,KCa,Kd,H,leak"
    read_conductances_csv(_csv(d, f"ID,{cols}\na,100,2,4,20,50,-3,0.02,0.01\n", "g.csv"), "stg")


# ---------------------------------------------------------------------------- posterior files
def _artifact(d: Path) -> Path:
    """A syntactically complete posterior folder (small, untrained) for the damage cases."""
    import json

    import torch

    from dicsbi.io.files import atomic_write_text
    from dicsbi.posterior.artifact import _build_estimator
    from dicsbi.posterior.config import PosteriorConfig

    config = PosteriorConfig(model="stg", vth_mV=-51.0, box=((-20.0, 20.0), (0.0, 20.0)), representation="summary",
                             input_shape=(22,), flow="nsf", hidden_features=8, num_transforms=1, num_bins=4,
                             embedding_dim=8)
    net = _build_estimator(config, torch.randn(16, 2), torch.randn(16, 22))
    folder = d / "post"
    folder.mkdir()
    torch.save(net.state_dict(), folder / "weights.pt")
    import hashlib

    cfg = config.replace(weights_sha256=hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()).to_json()
    atomic_write_text(folder / "posterior.json", json.dumps(cfg))
    return folder


def _load(p, **kw):
    from dicsbi.posterior.artifact import load_posterior

    return load_posterior(p, **kw)


@case("posterior", "folder without posterior.json")
def _(d):
    _load(d)


@case("posterior", "posterior for another model")
def _(d):
    _load(_artifact(d), model="da")


@case("posterior", "damaged posterior.json")
def _(d):
    f = _artifact(d)
    (f / "posterior.json").write_text('{"format": "dicsbi-posterior", "form')
    _load(f)


@case("posterior", "unexpected field in posterior.json")
def _(d):
    import json

    f = _artifact(d)
    cfg = json.loads((f / "posterior.json").read_text())
    (f / "posterior.json").write_text(json.dumps({**cfg, "hook": "run me"}))
    _load(f)


@case("posterior", "truncated or corrupted weights")
def _(d):
    f = _artifact(d)
    raw = (f / "weights.pt").read_bytes()
    (f / "weights.pt").write_bytes(raw[: len(raw) // 2])
    _load(f)


@case("posterior", "weights file missing")
def _(d):
    f = _artifact(d)
    (f / "weights.pt").unlink()
    _load(f)


# ---------------------------------------------------------------------------- options
@case("options", "n_models below 1")
def _(d):
    from dicsbi.pipeline import infer

    infer([[1.0, 2.0, 3.0]], "stg", 0, posterior=_artifact(d))


@case("options", "unknown representation for training")
def _(d):
    from dicsbi.posterior.training import TrainConfig, train_posterior

    train_posterior(d, TrainConfig(representation="transformer"))


@case("options", "output folder in use by another run")
def _(d):
    import os

    from dicsbi.io.files import OutputFolder

    (d / "out").mkdir()
    (d / "out" / ".dicsbi.lock").write_text(str(os.getppid()))
    with OutputFolder(d / "out"):
        pass


# ---------------------------------------------------------------------------- neuromodulation
def _pair(d: Path, after_text: str):
    from dicsbi.modulation import modulate

    before = _csv(d, 'ID,spiking_times\nLP1,"[10, 60, 110, 160, 210]"\nLP2,"[15, 65, 115, 165]"\n', "before.csv")
    after = _csv(d, after_text, "after.csv")
    from dicsbi.modulation.options import ComparisonOptions

    modulate(_read(before)[0], _read(after)[0], "stg", n_members=4, options=ComparisonOptions(n_pilot=4, n_particles=4))


@case("modulation", "before and after neuron IDs differ")
def _(d):
    _pair(d, 'ID,spiking_times\nLP1,"[10, 50, 90, 130]"\nLP3,"[10, 50, 90, 130]"\n')


@case("modulation", "a silent after recording")
def _(d):
    _pair(d, 'ID,spiking_times\nLP1,"[10, 50, 90, 130]"\nLP2,"[40]"\n')


@case("modulation", "before-populations of another model")
def _(d):
    from dicsbi.modulation import modulate
    from dicsbi.pipeline import InferenceResult

    modulate(InferenceResult("da", -55.5, 0, []), [[10.0, 50.0, 90.0]], "stg")


@case("modulation", "a channel the model cannot modulate")
def _(d):
    from dicsbi.modulation import parse_hypotheses

    parse_hypotheses("stg", "CaS+leak")
