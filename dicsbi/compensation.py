"""Compensation: solve k conductances per cell so that k DICs at V_th hit their targets.

The DICs are linear in the conductances once S(V_th; g) is known (:mod:`dicsbi.dics`), so each cell's k
unknowns solve a k x k system, all cells in one batched call.  In the STG model S depends on g_CaT and g_CaS
through steady-state calcium; when one of them is solved for, the solve is repeated with S rebuilt from the
previous solution (the published *iterative compensation*, a fixed-point iteration) until the DIC residual of
every cell is below ``tol`` or ``max_iter`` iterations have run.  Convergence is decided per cell by
recomputing its DICs, never assumed.

Cells are then classified (``status``): 0 valid; 1 singular system; 2 not converged (or not finite);
3 a negative conductance; 4 a conductance above its plausible upper bound.  The plausible upper bound is
twice the model's Monte-Carlo range: published populations exceed those ranges by up to 1.5x (g_Na 1.2e4 vs
8000 mS/cm^2 in a 500-cell STG population), so the ranges themselves would reject published cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._compensation_kernel import compensate_kernel
from .dics import DIC_NAMES, SensitivityOperator
from .errors import DicsbiError
from .models import Model, SeedSpec, get_model

PLAUSIBLE_FACTOR = 2.0
VALID, SINGULAR, NOT_CONVERGED, NEGATIVE, OUT_OF_RANGE = 0, 1, 2, 3, 4
STATUS_NAMES = ("valid", "singular", "not_converged", "negative", "out_of_range")


@dataclass(frozen=True)
class Compensation:
    """Result of :func:`compensate` for every input cell (invalid ones included, see ``status``)."""

    conductances: np.ndarray
    dics: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    solve_for: tuple[str, ...]
    targets: tuple[str, ...]

    @property
    def valid(self) -> np.ndarray:
        """Return which cells are valid (status ``VALID``)."""
        return self.status == VALID

    @property
    def converged(self) -> np.ndarray:
        """Return which cells' solves converged (neither not converged nor singular)."""
        return (self.status != NOT_CONVERGED) & (self.status != SINGULAR)

    def counts(self) -> dict[str, int]:
        """Return the number of cells per status name."""
        return {name: int(np.sum(self.status == k)) for k, name in enumerate(STATUS_NAMES)}


def plausible_upper_bounds(model: Model) -> np.ndarray:
    """Return the model's upper conductance bounds times ``PLAUSIBLE_FACTOR``."""
    return PLAUSIBLE_FACTOR * model.upper_bounds


def conductance_index(model: Model, name: str) -> int:
    """Index of a conductance given as ``"g_CaS"`` or ``"CaS"`` (case-insensitive)."""
    key = name.strip().lower()
    for i, full in enumerate(model.conductance_names):
        if key in (full.lower(), full[2:].lower()):
            return i
    raise DicsbiError(f"unknown conductance {name!r} for model {model.name!r}; "
                      f"expected one of {', '.join(model.conductance_names)}")


def _dic_index(name: str) -> int:
    key = name.strip().lower().removeprefix("g_")
    for i, full in enumerate(DIC_NAMES):
        if key == full[2:]:
            return i
    raise DicsbiError(f"unknown DIC {name!r}; expected g_f, g_s or g_u")


def compensate(model: str | Model, conductances, targets: Mapping[str, float | np.ndarray],
               solve_for: Sequence[str], vth_mV=None, tol: float = 1e-6, max_iter: int = 100,
               calcium_path: str | None = None, upper_bounds=None, placeholders=None,
               method: str = "newton") -> Compensation:
    """Solve ``solve_for`` conductances of every cell so that the targeted DICs are met at V_th.

    Parameters
    ----------
    model : str or Model
    conductances : array (N, n_g)
        Every cell's conductances; the entries of ``solve_for`` are ignored (they may be NaN) except as
        starting placeholders when S depends on them.
    targets : mapping
        ``{"g_s": value or (N,) array, ...}`` for 1 to 3 of g_f, g_s, g_u (units of g_leak).
    solve_for : sequence of str
        As many conductance names as targets, e.g. ``("g_CaS", "g_A")`` or ``("CaS", "A")``.
    vth_mV : float or (N,) array, optional
        Where the DICs are evaluated (default: the model's reference V_th).
    tol : float
        Convergence: max absolute DIC error over the targets (units of g_leak).
    max_iter : int
        Iterations after the first solve (only used when S depends on a solved conductance).
    method : {"newton", "fixed_point"}
        How to iterate when S depends on a solved conductance.  ``"fixed_point"`` is the published scheme:
        rebuild S from the last solution and solve the linear system again (linear convergence; it can cycle,
        e.g. for (CaS, A), reference section 9).  ``"newton"`` (default) solves the same equations
        ``S(g) g = target`` by Newton's method from the first linear solve, with the exact Jacobian (analytic
        in the numba kernel, complex step in the generic numpy path); it converges quadratically.
    upper_bounds : array (n_g,), optional
        Plausible maxima (default: twice the model's Monte-Carlo ranges).
    placeholders : mapping, optional
        Starting values for solved conductances S depends on (default: the input values where finite and
        positive, else the middle of the conductance's range).
    """
    model = get_model(model)
    g = np.array(conductances, dtype=float, ndmin=2)
    if g.ndim != 2 or g.shape[1] != model.n_conductances:
        raise DicsbiError(f"conductances: expected shape (N, {model.n_conductances}), got {g.shape}")
    n = g.shape[0]
    rows = [_dic_index(k) for k in targets]
    cols = [conductance_index(model, name) for name in solve_for]
    if not 1 <= len(rows) <= 3 or len(set(rows)) != len(rows):
        raise DicsbiError(f"give 1 to 3 distinct DIC targets, got {list(targets)}")
    if len(cols) != len(rows) or len(set(cols)) != len(cols):
        raise DicsbiError(f"{len(rows)} DIC target(s) need exactly {len(rows)} distinct conductance(s) to "
                          f"solve for, got {list(solve_for)}")
    t = np.stack([np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in targets.values()], axis=1)
    if not np.all(np.isfinite(t)):
        raise DicsbiError("DIC targets must be finite numbers (got NaN or inf)")
    known = [c for c in range(model.n_conductances) if c not in cols]
    if not np.all(np.isfinite(g[:, known])):
        raise DicsbiError("conductances that are not solved for must be finite")
    vth = model.vth_mV if vth_mV is None else np.asarray(vth_mV, dtype=float)
    op = _operator(model, float(vth), calcium_path) if np.ndim(vth) == 0 else SensitivityOperator(
        model, vth, calcium_path)
    depends = _dependencies(model, op)
    iterate = bool(set(cols) & depends)
    for c in cols:
        start = (placeholders or {}).get(model.conductance_names[c])
        if start is None:
            usable = np.isfinite(g[:, c]) & (g[:, c] > 0)
            start = np.where(usable, g[:, c], 0.5 * (model.lower_bounds[c] + model.upper_bounds[c]))
        g[:, c] = start if c in depends else 0.0
    if method not in ("newton", "fixed_point"):
        raise DicsbiError(f"method must be 'newton' or 'fixed_point', got {method!r}")
    n_steps = 1 + (max_iter if iterate else 0)
    solver = _solve_kernel if op.ca_forms is not None else _solve_numpy
    status, iterations, residual, dics = solver(model, op, g, t, rows, cols, known, tol, n_steps,
                                                method == "newton")
    upper = plausible_upper_bounds(model) if upper_bounds is None else np.asarray(upper_bounds, dtype=float)
    fine = status == VALID
    status[fine & ~(residual <= tol)] = NOT_CONVERGED
    fine = status == VALID
    status[fine & np.any(g < 0, axis=1)] = NEGATIVE
    fine = status == VALID
    status[fine & np.any(g > upper, axis=1)] = OUT_OF_RANGE
    return Compensation(g, dics, residual, iterations, status, tuple(model.conductance_names[c] for c in cols),
                        tuple(DIC_NAMES[r] for r in rows))


@lru_cache(maxsize=64)
def _operator(model: Model, vth: float, calcium_path: str | None) -> SensitivityOperator:
    """Operators at a scalar V_th are immutable: build each once."""
    return SensitivityOperator(model, vth, calcium_path)


def _solve_kernel(model, op, g, t, rows, cols, known, tol, n_steps, newton):
    """Per-cell solves in the numba kernel (models whose S has the fast calcium form)."""
    n = g.shape[0]
    shared = op.V.ndim == 0
    m = 1 if shared else n

    def per_cell(a, tail):
        return np.ascontiguousarray(np.broadcast_to(a, (m,) + tail), dtype=float)

    n_g = model.n_conductances
    zeros = np.zeros(op.V.shape + (n_g,))
    forms = op.ca_forms
    U = per_cell(np.stack([f[2] for f in forms], axis=-2), (len(forms), 3)) if forms else np.zeros((m, 1, 3))
    W = per_cell(np.stack([f[3] for f in forms], axis=-2), (len(forms), 3)) if forms else np.zeros((m, 1, 3))
    pool = model.calcium
    iterations = np.zeros(n, np.int64)
    residual = np.full(n, np.inf)
    singular = np.zeros(n, bool)
    dics = np.empty((n, 3))
    compensate_kernel(g, np.ascontiguousarray(t), np.array(rows, np.int64), np.array(cols, np.int64),
                      np.array(known, np.int64), op.leak, per_cell(op.static, (3, n_g)),
                      per_cell(getattr(op, "ca_coef", zeros), (n_g,)),
                      per_cell(getattr(op, "dca_coef", zeros), (n_g,)),
                      np.array([f[0] for f in forms], np.int64), np.array([f[1] for f in forms], np.int64), U, W,
                      pool.alpha if pool else 0.0, pool.beta if pool else 0.0,
                      pool.half_activation_uM if pool else 1.0, tol, n_steps, newton, iterations, residual,
                      singular, dics)
    status = np.where(singular, SINGULAR, VALID).astype(np.int8)
    return status, iterations, residual, dics


def _solve_numpy(model, op, g, t, rows, cols, known, tol, n_steps, newton):
    """Run the same solves with numpy over all cells at once (any model)."""
    n = g.shape[0]
    S = op(g)
    status = np.zeros(n, np.int8)
    iterations = np.zeros(n, np.int64)
    residual = np.full(n, np.inf)
    idx = np.arange(n)
    for it in range(n_steps):
        Si = S if len(idx) == n else S[idx]  # S is kept up to date for every cell
        if it == 0 or not newton:
            A = Si[:, rows][:, :, cols]
            b = t[idx] - np.einsum("nij,nj->ni", Si[:, rows][:, :, known], g[idx][:, known])
        else:  # Newton on F(x) = S(g(x)) g(x) - t, exact Jacobian by complex step
            A = _jacobian(op, g[idx], idx, rows, cols)
            b = np.einsum("nij,nj->ni", A, g[idx][:, cols]) - (
                np.einsum("nij,nj->ni", Si[:, rows], g[idx]) - t[idx])
        singular = _singular(A)
        status[idx[singular]] = SINGULAR
        idx, A, b = idx[~singular], A[~singular], b[~singular]
        g[np.ix_(idx, cols)] = np.linalg.solve(A, b[..., None])[..., 0]
        iterations[idx] += 1
        with np.errstate(all="ignore"):
            S_new = op(g[idx], index=idx)
            residual[idx] = np.max(np.abs(np.einsum("nij,nj->ni", S_new[:, rows], g[idx]) - t[idx]), axis=1)
        S[idx] = S_new
        idx = idx[~(residual[idx] <= tol)]
        if not len(idx):
            break
    with np.errstate(all="ignore"):
        dics = np.einsum("nij,nj->ni", S, g)
    return status, iterations, residual, dics


def _jacobian(op: SensitivityOperator, g: np.ndarray, index, rows, cols, h: float = 1e-30) -> np.ndarray:
    """d(S(g) g)[rows] / d g[cols] for every cell, exact to rounding by complex step."""
    J = np.empty((g.shape[0], len(rows), len(cols)))
    for j, c in enumerate(cols):
        gc = g.astype(complex)
        gc[:, c] += 1j * h
        with np.errstate(all="ignore"):
            J[:, :, j] = np.einsum("nij,nj->ni", op(gc, index=index)[:, rows], gc).imag / h
    return J


def _singular(A: np.ndarray) -> np.ndarray:
    """Cells whose k x k system is singular or nearly so (|det| tiny relative to the row norms)."""
    with np.errstate(all="ignore"):
        scale = np.prod(np.linalg.norm(A, axis=2), axis=1)
        return ~(np.abs(np.linalg.det(A)) > 1e-12 * scale)


def _dependencies(model: Model, op: SensitivityOperator) -> set[int]:
    """Conductances the normalised S depends on: the leak, and those feeding a calcium-dependent gate."""
    depends = {op.leak}
    if op.ca_channels:
        depends |= {c for c, ch in enumerate(model.channels) if ch.carries_calcium}
    return depends


# ---------------------------------------------------------------------------- populations for a DIC target
class UnreachableTargetError(DicsbiError):
    """No (or too few) valid cells can be made for a DIC target."""


@dataclass(frozen=True)
class Population:
    """Degenerate population for one DIC target: ``n`` valid conductance vectors and their DICs."""

    model: str
    conductances: np.ndarray
    dics: np.ndarray
    target: tuple[float, float]
    pair: tuple[str, str]
    vth_mV: float
    seed: int
    n_tried: int
    n_valid_found: int

    @property
    def yield_fraction(self) -> float:
        """Valid cells found / seed cells tried (before trimming to ``n``)."""
        return self.n_valid_found / max(self.n_tried, 1)


def gamma_matched(a: float, b: float) -> tuple[float, float]:
    """Gamma (shape, scale) with the mean and variance of U[a, b]: 3(a+b)^2/(b-a)^2 and (b-a)^2/(6(a+b))."""
    return 3.0 * (a + b) ** 2 / (b - a) ** 2, (b - a) ** 2 / (6.0 * (a + b))


def draw_seed_parameters(model: str | Model, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw the free parameters of ``n`` seed cells: ``[n, k + 1]``, the ``SeedSpec.uniform`` values, then g_leak.

    Uniform draws per conductance in ``spec.uniform`` order (values per reference leak), then g_leak from the
    gamma distribution matched to ``U[leak_range]``; :func:`seed_cells` turns them into cells
    (:func:`dicsbi.refine.seed_log_prior` is their density, the training world's prior over seed cells).
    """
    spec = seed_spec(get_model(model))
    cols = [rng.uniform(lo, hi, n) for lo, hi in spec.uniform.values()]
    shape, scale = gamma_matched(*spec.leak_range)
    return np.column_stack([*cols, rng.gamma(shape, scale, n)]) if cols else rng.gamma(shape, scale, (n, 1))


def seed_cells(model: str | Model, params: np.ndarray, vth_mV=None) -> Compensation:
    """Build the seed cells of :func:`draw_seed_parameters`' ``params`` (valid ones: ``.valid``).

    The uniform values and the fixed conductances are multiplied by ``g_leak / mean_leak``, then ``solve_for``
    is solved so that the DICs at V_th equal ``dic_targets``.
    """
    model = get_model(model)
    spec = seed_spec(model)
    params = np.atleast_2d(np.asarray(params, dtype=float))
    g = np.zeros((params.shape[0], model.n_conductances))
    for k, name in enumerate(spec.uniform):
        g[:, conductance_index(model, name)] = params[:, k]
    for name, value in spec.fixed.items():
        g[:, conductance_index(model, name)] = value
    shape, scale = gamma_matched(*spec.leak_range)
    leak = conductance_index(model, "g_leak")
    g[:, leak] = params[:, -1]
    others = [c for c in range(model.n_conductances) if c != leak]
    g[:, others] *= g[:, [leak]] / (shape * scale)
    return compensate(model, g, dict(zip(DIC_NAMES, spec.dic_targets)), spec.solve_for, vth_mV)


def seed_spec(model: Model) -> SeedSpec:
    """Return the model's :class:`~dicsbi.models.base.SeedSpec`, or raise if it defines no seed population."""
    if model.seed_spec is None:
        raise DicsbiError(f"model {model.name!r} defines no seed population")
    return model.seed_spec


def draw_seed_population(model: str | Model, n: int, rng: np.random.Generator, vth_mV=None) -> np.ndarray:
    """Draw valid tonic-spiking seed cells (at most ``n``) as the model's :class:`SeedSpec` says."""
    comp = seed_cells(model, draw_seed_parameters(model, n, rng), vth_mV)
    return comp.conductances[comp.valid]


def pair_yields(model: Model, seeds: np.ndarray, g_s: float, g_u: float, pairs, vth_mV=None,
                max_iter: int = 100) -> dict[tuple[str, str], tuple[float, float]]:
    """For each pair: (fraction of seeds made valid, median over them of :func:`relative_change`)."""
    out = {}
    for pair in pairs:
        comp = compensate(model, seeds, {"g_s": g_s, "g_u": g_u}, pair, vth_mV, max_iter=max_iter)
        ok = comp.valid
        change = float(np.median(relative_change(model, seeds, comp.conductances, pair)[ok])) if ok.any() else np.nan
        out[tuple(pair)] = (float(ok.mean()), change)
    return out


def relative_change(model: Model, before: np.ndarray, after: np.ndarray, pair) -> np.ndarray:
    """Per cell, the largest relative change ``|after - before| / before`` over the re-solved pair."""
    cols = [conductance_index(model, p) for p in pair]
    b = np.maximum(before[:, cols], 1e-12)
    return (np.abs(after[:, cols] - b) / b).max(axis=1)


def candidate_pairs(model: Model) -> list[tuple[str, str]]:
    """Every pair of the model's compensating conductances (``seed_spec.candidate_pairs_from``), in order."""
    assert model.seed_spec is not None, f"model {model.name!r} defines no seed population"
    names = model.seed_spec.candidate_pairs_from
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def rank_pairs(model: str | Model, seeds: np.ndarray, g_s: float, g_u: float,
               vth_mV: float | None = None) -> list[tuple[tuple[str, str], float]]:
    """Candidate pairs from the best to the worst yield of valid cells from ``seeds`` at a target, with the yield.

    Ties are broken by the smallest median change; pairs keep their :func:`candidate_pairs` order otherwise.
    The one ranking rule behind :func:`choose_pair` (one target) and :mod:`dicsbi.pair_ranking` (a grid).
    """
    model = get_model(model)
    pairs = candidate_pairs(model)
    yields = pair_yields(model, seeds, g_s, g_u, pairs, vth_mV, max_iter=50)
    ranked = sorted(pairs, key=lambda p: (-yields[p][0], np.nan_to_num(yields[p][1], nan=np.inf)))
    return [(p, yields[p][0]) for p in ranked]


def choose_pair(model: str | Model, g_s: float, g_u: float, seed: int = 0, n_pilot: int = 128,
                vth_mV=None) -> tuple[str, str]:
    """Return the candidate pair with the highest yield of valid cells at this target (ties: smallest change).

    Evaluated on the fly on ``n_pilot`` seed cells (:func:`rank_pairs`); raises :class:`UnreachableTargetError`
    if no pair yields any valid cell.
    """
    model = get_model(model)
    seeds = draw_seed_population(model, n_pilot, np.random.default_rng(seed), vth_mV)
    best, best_yield = rank_pairs(model, seeds, g_s, g_u, vth_mV)[0]
    assert model.seed_spec is not None  # draw_seed_population refused a model without one
    if best_yield == 0:
        raise UnreachableTargetError(
            f"{model.name}: target (g_s, g_u) = ({g_s}, {g_u}) is unreachable from the seed population with any "
            f"pair of {', '.join(model.seed_spec.candidate_pairs_from)} ({n_pilot} seed cells tried per pair)")
    return best


def generate_population(model: str | Model, g_s: float, g_u: float, n: int, seed: int = 0,
                        pair: str | Sequence[str] = "auto", vth_mV: float | None = None,
                        max_tries_per_cell: int = 50) -> Population:
    """Exactly ``n`` valid cells whose (g_s, g_u) at V_th hit the target (within 1e-6).

    Two-step scheme (published): draw tonic-spiking seed cells, then re-solve two conductances for the target
    with g_f left free.  ``pair`` is ``"auto"`` (the pair with the best yield at this target,
    :func:`choose_pair`), ``"published"`` (the published fixed rule) or two conductance names.  Cells are drawn
    in batches until ``n`` are valid; :class:`UnreachableTargetError` if fewer than ``n`` are found within
    ``max_tries_per_cell * n`` seed cells.
    """
    model = get_model(model)
    if not (np.isfinite(g_s) and np.isfinite(g_u)):
        raise DicsbiError(f"target (g_s, g_u) must be finite, got ({g_s}, {g_u})")
    if n < 1:
        raise DicsbiError(f"population size must be >= 1, got {n}")
    vth = model.vth_mV if vth_mV is None else float(vth_mV)
    ss = np.random.SeedSequence(seed)
    pair_seed, draw_seed = ss.spawn(2)
    if isinstance(pair, str) and pair == "auto":
        pair = choose_pair(model, g_s, g_u, int(pair_seed.generate_state(1)[0]), vth_mV=vth)
    elif isinstance(pair, str) and pair == "published":
        spec = model.seed_spec
        assert spec is not None and spec.published_pair is not None, f"model {model.name!r} has no published pair"
        pair = spec.published_pair(g_s, g_u)
    elif isinstance(pair, str) or len(pair) != 2:
        raise DicsbiError(f"pair must be 'auto', 'published' or two conductance names, got {pair!r}")
    first, second = (model.conductance_names[conductance_index(model, p)] for p in pair)
    pair = (first, second)
    rng = np.random.default_rng(draw_seed)
    kept: list[np.ndarray] = []
    dics: list[np.ndarray] = []
    tried, rate = 0, 0.5
    while sum(len(k) for k in kept) < n and tried < max_tries_per_cell * n:
        missing = n - sum(len(k) for k in kept)
        seeds = draw_seed_population(model, int(min(max(32, 1.3 * missing / rate), 20 * n)), rng, vth)
        comp = compensate(model, seeds, {"g_s": g_s, "g_u": g_u}, pair, vth)
        tried += len(seeds)
        kept.append(comp.conductances[comp.valid])
        dics.append(comp.dics[comp.valid])
        rate = max(sum(len(k) for k in kept) / tried, 1.0 / (max_tries_per_cell * n))
    got = sum(len(k) for k in kept)
    if got < n:
        raise UnreachableTargetError(
            f"{model.name}: only {got} of {n} valid cells for (g_s, g_u) = ({g_s}, {g_u}) with pair "
            f"{pair} after {tried} seed cells; the target is not reachable from the seed population")
    return Population(model.name, np.concatenate(kept)[:n], np.concatenate(dics)[:n], (float(g_s), float(g_u)),
                      pair, vth, int(seed), tried, got)
