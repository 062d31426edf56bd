"""Compensation checked by recomputing the DICs of its output; populations; reachability."""

import numpy as np
import pytest

from dicsbi.compensation import (
    NEGATIVE,
    SINGULAR,
    VALID,
    UnreachableTargetError,
    compensate,
    draw_seed_population,
    generate_population,
)
from dicsbi.dics import compute_dics
from dicsbi.errors import DicsbiError
from dicsbi.models import DA, STG
from dicsbi.modulation.pair_maps import plot_reachability, reachability


@pytest.fixture(scope="module")
def stg_seeds():
    return draw_seed_population(STG, 300, np.random.default_rng(0))


@pytest.mark.parametrize("pair", [("CaS", "A"), ("CaS", "H"), ("A", "H"), ("CaS", "KCa"), ("CaT", "A")])
@pytest.mark.parametrize("calcium_path", ["tau_ca", "ultraslow"])
def test_stg_pairs_hit_target_when_dics_are_recomputed(stg_seeds, pair, calcium_path):
    target = {"g_s": -4.0, "g_u": 5.0}
    comp = compensate(STG, stg_seeds, target, pair, calcium_path=calcium_path)
    ok = comp.valid
    assert ok.sum() >= 5, comp.counts()
    d = compute_dics(STG, comp.conductances[ok], calcium_path=calcium_path)
    assert np.max(np.abs(d[:, 1:] - [-4.0, 5.0])) <= 1e-6
    assert np.all(comp.conductances[ok] >= 0)
    unsolved = [i for i, n in enumerate(STG.conductance_names) if n[2:] not in pair]
    np.testing.assert_array_equal(comp.conductances[:, unsolved], stg_seeds[:, unsolved])
    assert sum(comp.counts().values()) == len(stg_seeds)


def test_three_targets_and_one_target(stg_seeds):
    comp = compensate(STG, stg_seeds, {"g_f": -6.2, "g_s": 4.0, "g_u": 5.0}, ("Na", "A", "H"))
    assert comp.valid.all()
    np.testing.assert_allclose(compute_dics(STG, comp.conductances), [[-6.2, 4.0, 5.0]] * len(stg_seeds),
                               atol=1e-9)
    comp = compensate(STG, stg_seeds, {"g_u": 7.0}, ("g_CaS",))
    np.testing.assert_allclose(compute_dics(STG, comp.conductances[comp.valid])[:, 2], 7.0, atol=1e-6)
    assert comp.iterations.max() > 1  # CaS is solved for: S had to be rebuilt


def test_da_single_solve_is_exact():
    rng = np.random.default_rng(1)
    seeds = draw_seed_population(DA, 200, rng)
    assert len(seeds) > 150
    np.testing.assert_allclose(compute_dics(DA, seeds), [DA.seed_spec.dic_targets] * len(seeds), atol=1e-9)
    comp = compensate(DA, seeds, {"g_s": -1.5, "g_u": 5.0}, ("ERG", "CaN"))
    assert comp.iterations.max() == 1  # DA's S does not depend on g
    d = compute_dics(DA, comp.conductances[comp.valid])
    np.testing.assert_allclose(d[:, 1:], [[-1.5, 5.0]] * len(d), atol=1e-9)


def test_invalid_cells_are_classified_and_counted(stg_seeds):
    comp = compensate(STG, stg_seeds, {"g_s": 19.0, "g_u": 0.0}, ("CaS", "H"))
    assert comp.counts()["negative"] > 0 and np.all(comp.conductances[comp.status == NEGATIVE].min(1) < 0)
    comp = compensate(STG, stg_seeds[:5], {"g_s": 1.0}, ("leak",))  # leak has no slow component
    assert np.all(comp.status == SINGULAR)
    comp = compensate(STG, stg_seeds[:5], {"g_s": 4.0, "g_u": 5.0}, ("A", "H"), upper_bounds=np.full(8, 1e-3))
    assert np.all(comp.status == 4)
    assert not np.any(comp.status == VALID)


def test_bad_targets_raise(stg_seeds):
    with pytest.raises(DicsbiError, match="finite"):
        compensate(STG, stg_seeds, {"g_s": np.nan, "g_u": 5.0}, ("CaS", "H"))
    with pytest.raises(DicsbiError, match="need exactly 2"):
        compensate(STG, stg_seeds, {"g_s": 1.0, "g_u": 5.0}, ("CaS",))
    with pytest.raises(DicsbiError, match="unknown conductance 'Ka'"):
        compensate(STG, stg_seeds, {"g_s": 1.0}, ("Ka",))
    with pytest.raises(DicsbiError, match="unknown DIC 'g_x'"):
        compensate(STG, stg_seeds, {"g_x": 1.0}, ("A",))
    with pytest.raises(DicsbiError, match="finite"):
        generate_population(STG, np.nan, 5.0, 10)


@pytest.mark.parametrize("model,target", [(STG, (-4.0, 5.0)), (STG, (5.0, 10.0)), (DA, (-1.5, 5.0))])
def test_population_exact_size_and_target(model, target):
    pop = generate_population(model, *target, n=60, seed=5)
    assert pop.conductances.shape == (60, model.n_conductances)
    assert np.all(pop.conductances >= 0)
    d = compute_dics(model, pop.conductances)
    assert np.max(np.abs(d[:, 1:] - target)) <= 1e-6
    np.testing.assert_allclose(pop.dics, d, atol=1e-9)
    assert 0 < pop.yield_fraction <= 1


def test_population_seeds():
    a = generate_population(STG, -4.0, 5.0, 30, seed=11)
    b = generate_population(STG, -4.0, 5.0, 30, seed=11)
    np.testing.assert_array_equal(a.conductances, b.conductances)
    workers = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(11).spawn(2)]
    c, d = (generate_population(STG, -4.0, 5.0, 30, seed=s) for s in workers)
    assert not np.allclose(c.conductances, d.conductances)
    assert not np.allclose(a.conductances, c.conductances)


def test_unreachable_target_says_so():
    with pytest.raises(UnreachableTargetError, match="unreachable|not reachable"):
        generate_population(STG, 400.0, -300.0, 10, seed=0)


def test_reachability_map(tmp_path):
    rmap = reachability(STG, ("A", "H"), g_s=[-20.0, 4.0, 12.0], g_u=[5.0], n_seeds=80)
    assert rmap.fraction.shape == (1, 3)
    assert rmap.fraction[0, 1] == pytest.approx(1.0, abs=0.05)  # the seed target itself
    assert rmap.change[0, 1] < 1e-6
    assert rmap.fraction[0, 0] == 0.0  # strong bursting cannot be reached with A and H
    import matplotlib

    matplotlib.use("Agg")
    plot_reachability(rmap).savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 1000


@pytest.mark.parametrize("method", ["newton", "fixed_point"])
def test_numba_kernel_matches_numpy_path(stg_seeds, monkeypatch, method):
    import dicsbi.compensation as comp_mod

    target = {"g_s": -2.0, "g_u": 6.0}
    fast = compensate(STG, stg_seeds, target, ("CaS", "A"), method=method, max_iter=60)
    monkeypatch.setattr(comp_mod, "_solve_kernel", comp_mod._solve_numpy)
    slow = compensate(STG, stg_seeds, target, ("CaS", "A"), method=method, max_iter=60)
    np.testing.assert_array_equal(fast.status, slow.status)
    ok = fast.valid
    np.testing.assert_allclose(fast.conductances[ok], slow.conductances[ok], rtol=1e-6)
    assert np.abs(fast.iterations - slow.iterations)[ok].max() <= 1


def test_per_cell_vth(stg_seeds):
    vth = np.linspace(-53.0, -49.0, len(stg_seeds))
    comp = compensate(STG, stg_seeds, {"g_s": -4.0, "g_u": 5.0}, ("CaS", "H"), vth_mV=vth)
    ok = comp.valid
    assert ok.sum() > 100
    d = compute_dics(STG, comp.conductances[ok], vth[ok])
    assert np.max(np.abs(d[:, 1:] - [-4.0, 5.0])) <= 1e-6
