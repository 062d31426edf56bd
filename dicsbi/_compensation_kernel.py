"""Numba kernel of :func:`dicsbi.compensation.compensate` for models whose S(V; g) has the fast form.

At a fixed voltage, S(g) = S0 + sum over calcium-dependent channels c of
``T_c = F^e u_c + F^(e-1) F' dCa w_c`` in column c, with ``F = Ca / (Ca + K)``, ``Ca = beta - alpha g.a``,
``dCa = -alpha g.a'`` (see :class:`dicsbi.dics.SensitivityOperator`).  Each cell then solves its k x k system
(first step, and every step of the published fixed point) or takes Newton steps with the analytic Jacobian,
all in registers: microseconds per cell instead of numpy passes over (N, 3, n_g) arrays.  ``tests`` check it
against the numpy path and by recomputing DICs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _solve_small(A, b, x):
    """Gaussian elimination with partial pivoting for k <= 3; returns False if (nearly) singular."""
    k = b.size
    scale = 1.0
    for r in range(k):
        s = 0.0
        for q in range(k):
            s += A[r, q] * A[r, q]
        scale *= np.sqrt(s)
    M = A.copy()
    y = b.copy()
    det = 1.0
    for p in range(k):
        piv = p
        for r in range(p + 1, k):
            if abs(M[r, p]) > abs(M[piv, p]):
                piv = r
        if piv != p:
            for q in range(k):
                M[p, q], M[piv, q] = M[piv, q], M[p, q]
            y[p], y[piv] = y[piv], y[p]
            det = -det
        det *= M[p, p]
        if M[p, p] == 0.0:
            return False
        for r in range(p + 1, k):
            f = M[r, p] / M[p, p]
            for q in range(p, k):
                M[r, q] -= f * M[p, q]
            y[r] -= f * y[p]
    if not abs(det) > 1e-12 * scale:
        return False
    for p in range(k - 1, -1, -1):
        s = y[p]
        for q in range(p + 1, k):
            s -= M[p, q] * x[q]
        x[p] = s / M[p, p]
    return True


@njit(cache=True)
def _matrix(g, S0, ca_coef, dca_coef, form_c, form_e, U, W, alpha, beta, K, S, dT):
    """Unnormalised S(g) into ``S``; ``dT[f, 0:3]`` = dT/dCa and ``dT[f, 3:6]`` = dT/d(dCa) per form."""
    n_g = g.size
    ca = beta
    dca = 0.0
    for j in range(n_g):
        ca -= alpha * g[j] * ca_coef[j]
        dca -= alpha * g[j] * dca_coef[j]
    F = ca / (ca + K)
    F1 = K / ((ca + K) * (ca + K))
    F2 = -2.0 * K / ((ca + K) * (ca + K) * (ca + K))
    for r in range(3):
        for j in range(n_g):
            S[r, j] = S0[r, j]
    for f in range(form_c.size):
        c = form_c[f]
        e = form_e[f]
        Fe = F**e
        Fe1 = F ** (e - 1)
        Fe2 = F ** (e - 2) if e >= 2 else 0.0
        for r in range(3):
            S[r, c] = Fe * U[f, r] + Fe1 * F1 * dca * W[f, r]
            dT[f, r] = e * Fe1 * F1 * U[f, r] + ((e - 1) * Fe2 * F1 * F1 + Fe1 * F2) * dca * W[f, r]
            dT[f, 3 + r] = Fe1 * F1 * W[f, r]


@njit(cache=True, parallel=True)
def compensate_kernel(G, T, rows, cols, known, leak, S0, ca_coef, dca_coef, form_c, form_e, U, W, alpha,
                      beta, K, tol, n_steps, newton, iterations, residual, singular, dics):
    n, n_g = G.shape
    k = rows.size
    per_cell = np.int64(S0.shape[0] > 1)
    for i in prange(n):
        m = np.int64(i) * per_cell  # row of the coefficients: shared (0) or per cell (i)
        g = G[i]
        S = np.empty((3, n_g))
        dT = np.empty((max(form_c.size, 1), 6))
        A = np.empty((k, k))
        b = np.empty(k)
        x = np.empty(k)
        for step in range(n_steps):
            _matrix(g, S0[m], ca_coef[m], dca_coef[m], form_c, form_e, U[m], W[m], alpha, beta, K, S, dT)
            gl = g[leak]
            if step == 0 or not newton:
                for r in range(k):
                    b[r] = T[i, r]
                    for q in range(k):
                        A[r, q] = S[rows[r], cols[q]] / gl
                    for j in known:
                        b[r] -= S[rows[r], j] * g[j] / gl
                ok = _solve_small(A, b, x)
                if ok:
                    for q in range(k):
                        g[cols[q]] = x[q]
            else:
                for r in range(k):
                    d_un = 0.0
                    for j in range(n_g):
                        d_un += S[rows[r], j] * g[j]
                    b[r] = d_un / gl - T[i, r]
                    for q in range(k):
                        j = cols[q]
                        d = S[rows[r], j]
                        for f in range(form_c.size):
                            c = form_c[f]
                            d -= alpha * g[c] * (dT[f, rows[r]] * ca_coef[m, j] + dT[f, 3 + rows[r]] * dca_coef[m, j])
                        d /= gl
                        if j == leak:
                            d -= d_un / (gl * gl)
                        A[r, q] = d
                ok = _solve_small(A, b, x)
                if ok:
                    for q in range(k):
                        g[cols[q]] -= x[q]
            if not ok:
                singular[i] = True
                break
            iterations[i] += 1
            _matrix(g, S0[m], ca_coef[m], dca_coef[m], form_c, form_e, U[m], W[m], alpha, beta, K, S, dT)
            res = 0.0
            for r in range(k):
                d = 0.0
                for j in range(n_g):
                    d += S[rows[r], j] * g[j]
                err = abs(d / g[leak] - T[i, r])
                if not err <= res:  # also propagates NaN
                    res = err
            residual[i] = res
            if res <= tol:
                break
        _matrix(g, S0[m], ca_coef[m], dca_coef[m], form_c, form_e, U[m], W[m], alpha, beta, K, S, dT)
        for r in range(3):
            d = 0.0
            for j in range(n_g):
                d += S[r, j] * g[j]
            dics[i, r] = d / g[leak]
