"""Same seed, same outputs: ``infer`` and ``modulate`` on the shipped examples against stored golden outputs.

The golden files (``tests/golden/``, written by ``tests/golden/make_golden.py``) pin the package's results
through re-layouts: integer and text fields must match exactly, floats to rtol 1e-7 and atol 1e-8 (``RTOL``,
``ATOL``), the netCDF files variable by variable; provenance (creation time, library versions) is not
compared.  A change that alters outputs on purpose rewrites them in its own commit and says why.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import read_csv

GOLDEN = Path(__file__).resolve().parent / "golden"
# attributes that say when and with what, not what: excluded from the comparison (today only dicsbi_version is
# written; ArviZ adds the others when its own constructors are used)
PROVENANCE = {"dicsbi_version", "created_at", "arviz_version", "inference_library", "inference_library_version"}
# floats: torch's and BLAS's CPU kernels take other code paths on other processors, and the modulation's
# samples and Pareto tail indices moved by up to 1.4e-9 (absolute; 1.6e-9 relative for a tail index) between two
# machines with the same pinned installs; a re-layout that changes a result changes it by far more
RTOL, ATOL = 1e-7, 1e-8
# outputs of float32 networks (the typicality score, the noise-level posterior, the spike-level evidence) moved by
# up to 1.9e-6 relative between two AMD EPYC machines with the same installs (float32 epsilon 1.2e-7, summed over
# layers), and the
# predictive check's van Rossum ratio, whose members are simulated with noise levels drawn from that posterior,
# by 6.3e-5: these fields get their own tolerance, every other float keeps RTOL
LOOSE = {"typicality": 1e-5, "noise_p_zero": 1e-5, "noise_median": 1e-5, "noise_q05": 1e-5, "noise_q95": 1e-5,
         "noise_std": 1e-5, "check_vr_ratio": 1e-3, "probability_spike": 1e-5, "probability_targeted_spike": 1e-5,
         "log_probability_spike_neuron": 1e-5}


def _maker():
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _same_csv(got: Path, want: Path) -> None:
    a, b = read_csv(got, dict_rows=False), read_csv(want, dict_rows=False)
    assert a[0] == b[0], f"{want.name}: columns differ"
    assert len(a) == len(b), f"{want.name}: {len(a) - 1} rows, golden {len(b) - 1}"
    for i, (ra, rb) in enumerate(zip(a[1:], b[1:]), start=2):
        for col, x, y in zip(a[0], ra, rb):
            if x == y:
                continue
            try:
                fx, fy = float(x), float(y)
            except ValueError:
                raise AssertionError(f"{want.name} row {i} column {col}: {x!r} != golden {y!r}") from None
            rtol = LOOSE.get(col, RTOL)
            assert np.isclose(fx, fy, rtol=rtol, atol=ATOL) or (np.isnan(fx) and np.isnan(fy)), \
                f"{want.name} row {i} column {col}: {x} != golden {y}"


def _same_attrs(a: dict, b: dict, where: str) -> None:
    keys = (set(a) | set(b)) - PROVENANCE
    for k in sorted(keys):
        assert str(a.get(k)) == str(b.get(k)), f"{where}: attribute {k!r} {a.get(k)!r} != golden {b.get(k)!r}"


def _same_netcdf(got: Path, want: Path) -> None:
    import xarray as xr

    from dicsbi.io.netcdf import from_netcdf

    ga, gb = from_netcdf(got), from_netcdf(want)
    assert sorted(ga.groups()) == sorted(gb.groups()), f"{want.name}: groups differ"
    for group in gb.groups():
        da_, db_ = ga[group.strip("/")], gb[group.strip("/")]
        assert sorted(da_.data_vars) == sorted(db_.data_vars), f"{want.name}/{group}: variables differ"
        _same_attrs(dict(da_.attrs), dict(db_.attrs), f"{want.name}/{group}")
        for v in db_.data_vars:
            x, y = da_[v], db_[v]
            assert x.dims == y.dims and x.shape == y.shape, f"{want.name}/{group}/{v}: shape {x.shape} != {y.shape}"
            if np.issubdtype(y.dtype, np.floating):
                np.testing.assert_allclose(x.values, y.values, rtol=LOOSE.get(v, RTOL),
                                           atol=ATOL if v not in LOOSE else 1e-5, equal_nan=True,
                                           err_msg=f"{want.name}/{group}/{v}")
            else:
                np.testing.assert_array_equal(x.values, y.values, err_msg=f"{want.name}/{group}/{v}")
            _same_attrs(dict(x.attrs), dict(y.attrs), f"{want.name}/{group}/{v}")
        for c in db_.coords:
            xr.testing.assert_equal(da_[c].reset_coords(drop=True), db_[c].reset_coords(drop=True))


def _compare(made: Path, name: str, files) -> None:
    for f in files:
        if f.endswith(".csv"):
            _same_csv(made / f, GOLDEN / name / f)
        else:
            _same_netcdf(made / f, GOLDEN / name / f)


def test_infer_on_the_shipped_example_gives_the_golden_outputs(tmp_path):
    mk = _maker()
    _compare(mk.run_infer(tmp_path / "infer"), "infer", mk.INFER_FILES)


def test_modulate_on_the_shipped_example_gives_the_golden_outputs(tmp_path):
    mk = _maker()
    _compare(mk.run_modulate(tmp_path / "modulate"), "modulate", mk.MODULATE_FILES)


def test_the_comparison_sees_a_changed_number(tmp_path):
    """The checker itself: a float off by one part in a million, or one draw of the netCDF, fails it."""
    import xarray as xr

    rows = read_csv(GOLDEN / "infer" / "summary.csv", dict_rows=False)
    k = rows[0].index("g_s_mean")
    rows[1][k] = repr(float(rows[1][k]) * (1 + 1e-6))
    with open(tmp_path / "summary.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(AssertionError, match="g_s_mean"):
        _same_csv(tmp_path / "summary.csv", GOLDEN / "infer" / "summary.csv")
    _same_csv(GOLDEN / "infer" / "summary.csv", GOLDEN / "infer" / "summary.csv")
    post = xr.open_dataset(GOLDEN / "infer" / "posterior.nc", group="posterior").load()
    post["g_s"][0, 0, 0] += 1e-3
    import shutil

    shutil.copyfile(GOLDEN / "infer" / "posterior.nc", tmp_path / "posterior.nc")
    post.to_netcdf(tmp_path / "posterior.nc", group="posterior", mode="a")
    with pytest.raises(AssertionError, match="g_s"):
        _same_netcdf(tmp_path / "posterior.nc", GOLDEN / "infer" / "posterior.nc")
