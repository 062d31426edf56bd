"""`dicsbi simulate` end to end: output shape, clear errors, nothing half-written."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dicsbi.models import STG

SETS = json.loads((Path(__file__).parent / "data" / "simulator_sets.json").read_text())


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dicsbi.cli", *map(str, args)], capture_output=True, text=True)


def write_table(path, rows, header=None, ids=True):
    header = header or (["ID"] if ids else []) + list(STG.conductance_names)
    lines = [",".join(header)]
    for k, row in enumerate(rows):
        lines.append(",".join(([f"cell{k}"] if ids else []) + [repr(float(x)) for x in row]))
    path.write_text("\n".join(lines) + "\n")


def test_simulate_writes_spike2pop_csv(tmp_path):
    g = np.array(SETS["sets"]["stg"][:4])
    write_table(tmp_path / "g.csv", g)
    out = tmp_path / "res" / "spikes.csv"
    r = run_cli("simulate", tmp_path / "g.csv", "--out", out, "--duration-ms", 400, "--transient-ms", 200,
                "--no-progress")
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "ID,spiking_times" and len(lines) == 5
    from dicsbi.simulate import simulate

    expected = simulate(STG, g, 400.0, None, 200.0)
    for k, line in enumerate(lines[1:]):
        ident, times = line.split(",", 1)
        assert ident == f"cell{k}"
        parsed = json.loads(times.strip('"'))
        np.testing.assert_allclose(parsed, expected.trains[k], atol=1e-4)


def test_simulate_with_a_current_step_and_a_tier(tmp_path):
    from dicsbi.simulate import simulate
    from dicsbi.stimulus import Stimulus

    g = np.array(SETS["sets"]["stg"][:3])
    write_table(tmp_path / "g.csv", g)
    out = tmp_path / "stim.csv"
    r = run_cli("simulate", tmp_path / "g.csv", "-o", out, "--duration-ms", 400, "--transient-ms", 200,
                "--step", "50:250:1.5", "--step", "300:350:-1", "--tier", "fast", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "fast tier dt 0.05 ms" in r.stderr and "stimulus: piecewise-linear current" in r.stderr
    stim = Stimulus.step(50.0, 250.0, 1.5) + Stimulus.step(300.0, 350.0, -1.0)
    expected = simulate(STG, g, 400.0, None, 200.0, tier="fast", stimulus=stim)
    for k, line in enumerate(out.read_text().splitlines()[1:]):
        np.testing.assert_allclose(json.loads(line.split(",", 1)[1].strip('"')), expected.trains[k], atol=1e-4)
    for bad, why in ((["--step", "250:50:1"], "must come after start"), (["--step", "1:2"], "START_MS:STOP_MS"),
                     (["--tier", "coarse"], "--tier must be one of")):
        r = run_cli("simulate", tmp_path / "g.csv", "-o", tmp_path / "bad.csv", "--duration-ms", 100, *bad,
                    "--no-progress")
        assert r.returncode != 0 and why in r.stderr and not (tmp_path / "bad.csv").exists(), r.stderr


def test_short_names_and_any_column_order(tmp_path):
    g = np.array(SETS["sets"]["stg"][:2])
    header = [n[2:] for n in STG.conductance_names][::-1]
    write_table(tmp_path / "g.csv", g[:, ::-1], header=header, ids=False)
    r = run_cli("simulate", tmp_path / "g.csv", "-o", tmp_path / "o.csv", "--duration-ms", 100,
                "--transient-ms", 0, "--no-progress")
    assert r.returncode == 0, r.stderr


def test_bad_tables_give_one_clear_error_and_no_output(tmp_path):
    cases = {
        "missing": ("ID,g_Na,g_Kd\na,1,2\n", "missing column(s) g_CaT"),
        "unknown": ("ID,g_Na,g_Kd,g_CaT,g_CaS,g_KCa,g_A,g_H,g_leak,g_X\na,1,1,1,1,1,1,1,1,1\n", "unknown column 'g_X'"),
        "text": ("ID,g_Na,g_Kd,g_CaT,g_CaS,g_KCa,g_A,g_H,g_leak\na,1,1,1,1,oops,1,1,1\n",
                 "row 2, column g_KCa: 'oops' is not a number"),
        "negative": ("ID,g_Na,g_Kd,g_CaT,g_CaS,g_KCa,g_A,g_H,g_leak\na,1,1,1,1,1,1,1,1\nb,1,1,-2,1,1,1,1,1\n",
                     "row 3, column g_CaT: '-2' is not a finite value >= 0"),
        "nan": ("ID,g_Na,g_Kd,g_CaT,g_CaS,g_KCa,g_A,g_H,g_leak\na,1,1,1,1,1,1,nan,1\n", "column g_H: 'nan'"),
        "dup": ("ID,g_Na,g_Kd,g_CaT,g_CaS,g_KCa,g_A,g_H,g_leak\na,1,1,1,1,1,1,1,1\na,1,1,1,1,1,1,1,1\n",
                "row 3: duplicated ID 'a'"),
        "empty": ("", "empty file"),
        "header_only": ("ID,g_Na,g_Kd,g_CaT,g_CaS,g_KCa,g_A,g_H,g_leak\n", "no data rows"),
        "ragged": ("ID,g_Na,g_Kd,g_CaT,g_CaS,g_KCa,g_A,g_H,g_leak\na,1,1,1\n", "row 2: 4 fields"),
    }
    for name, (text, message) in cases.items():
        src = tmp_path / f"{name}.csv"
        src.write_text(text)
        out = tmp_path / f"{name}_out.csv"
        r = run_cli("simulate", src, "-o", out, "--no-progress")
        assert r.returncode == 2, (name, r.stderr)
        assert message in r.stderr and str(src) in " ".join(r.stderr.split()), (name, r.stderr)
        assert "Traceback" not in r.stderr
        assert not out.exists() and not list(tmp_path.glob(f".{name}_out*"))


def test_unknown_model_and_missing_file(tmp_path):
    r = run_cli("simulate", tmp_path / "nope.csv", "-o", tmp_path / "o.csv")
    assert r.returncode == 2 and "cannot read conductance table" in r.stderr
    write_table(tmp_path / "g.csv", np.ones((1, 8)))
    r = run_cli("simulate", tmp_path / "g.csv", "-o", tmp_path / "o.csv", "--model", "hh")
    assert r.returncode == 2 and "unknown model 'hh'" in r.stderr


def test_population_and_dics_commands(tmp_path):
    out = tmp_path / "pop.csv"
    r = run_cli("population", "--model", "stg", "--gs", "-4", "--gu", "5", "-n", "40", "--seed", "3", "--out", out)
    assert r.returncode == 0, r.stderr
    header = out.read_text().splitlines()[0]
    assert header.startswith("ID,g_Na [mS/cm^2],g_Kd [mS/cm^2]") and "g_s [g_leak]" in header
    from dicsbi.dics import compute_dics
    from dicsbi.io.readers import read_conductances_csv

    g, ids = read_conductances_csv(out, "stg")
    assert g.shape == (40, 8) and len(set(ids)) == 40
    np.testing.assert_allclose(compute_dics("stg", g)[:, 1:], [[-4.0, 5.0]] * 40, atol=1e-6)
    dics_out = tmp_path / "dics.csv"
    r = run_cli("dics", out, "--model", "stg", "-o", dics_out)
    assert r.returncode == 0, r.stderr
    rows = [line.split(",") for line in dics_out.read_text().splitlines()[1:]]
    np.testing.assert_allclose([[float(x) for x in row[-3:-1]] for row in rows], [[-4.0, 5.0]] * 40, atol=1e-6)
    r = run_cli("dics", out, "--model", "stg")
    assert r.returncode == 0 and "g_leak" in r.stdout
    r = run_cli("population", "--gs", "400", "--gu", "-300", "-n", "5", "--out", tmp_path / "x.csv")
    assert r.returncode == 2 and "unreachable" in r.stderr and not (tmp_path / "x.csv").exists()
    r = run_cli("population", "--gs", "1", "--gu", "5", "-n", "5", "--pair", "CaS,Foo", "--out", tmp_path / "y.csv")
    assert r.returncode == 2 and "unknown conductance 'Foo'" in r.stderr


def test_infer_reads_absolute_times_with_t_start_ms(tmp_path):
    """``--t-start-ms`` reaches the reader: the shipped example shifted by +3000 ms gives the unshifted results."""
    from conftest import read_csv

    from dicsbi.io.readers import read_spike_trains
    from dicsbi.io.tables import format_spike2pop_csv
    from dicsbi.pipeline import run_to_folder
    from dicsbi.posterior.artifact import load_posterior
    from dicsbi.spikes import SpikeTrains

    trains, _ = read_spike_trains(Path(__file__).parents[1] / "examples" / "stg_recordings.csv")
    trains = trains.select([0])  # one recording keeps it fast
    shifted = tmp_path / "absolute.csv"
    shifted.write_text(format_spike2pop_csv(SpikeTrains.from_list([trains[0] + 3000.0], ids=list(trains.ids))))
    first = float(trains[0][0]) + 3000.0
    r = run_cli("infer", shifted, "--out", tmp_path / "bad", "--t-start-ms", first + 1.0, "--no-progress")
    assert r.returncode == 2 and not (tmp_path / "bad").exists(), r.stderr
    message = " ".join(r.stderr.split())
    assert str(shifted) in message and "(train 'stg_tonic'): first spike at" in message, r.stderr
    assert "before the start of the recording window" in message
    r = run_cli("infer", shifted, "--out", tmp_path / "abs", "--t-start-ms", 3000, "--t-stop-ms",
                float(trains.t_stop_ms[0]) + 3000.0, "--n-models", 20, "--check", 4, "--no-progress")
    assert r.returncode == 0, r.stderr
    (tmp_path / "rel").mkdir()
    run_to_folder(trains, tmp_path / "rel", "stg", 20, load_posterior("stg"), seed=0, check=4)
    got, want = read_csv(tmp_path / "abs" / "summary.csv"), read_csv(tmp_path / "rel" / "summary.csv")
    for col in ("n_spikes", "firing_class", "check_n", "check_class_match", "check_freq_match",
                "check_rate_cv_match"):
        assert got[0][col] == want[0][col], col
    assert float(got[0]["check_vr_ratio"]) == pytest.approx(float(want[0]["check_vr_ratio"]), rel=1e-6)
