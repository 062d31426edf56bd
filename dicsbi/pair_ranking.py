"""Which compensation pairs to try first for a posterior sample: rankings by the pairs' yield.

A ranking is shared by the samples in the same grid cell of the DIC plane and shipped precomputed per model.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import _seeds
from .compensation import draw_seed_population, rank_pairs
from .models import get_model

PAIR_GRID = 1.0  # g_leak: pair rankings are shared by posterior medians in the same grid cell


def compute_pair_ranking(model, i: int, j: int, vth: float) -> tuple[tuple[str, str], ...]:
    """Compute the ranking of :func:`pair_ranking` for grid cell (i, j) (64 seeded pilot cells)."""
    m = get_model(model)
    gs, gu = (i + 0.5) * PAIR_GRID, (j + 0.5) * PAIR_GRID
    rng = _seeds.rng(0, i + _seeds.PAIR_CELL, j + _seeds.PAIR_CELL)
    ranked = rank_pairs(m, draw_seed_population(m, 64, rng, vth), gs, gu, vth)
    return tuple(p for p, n_valid in ranked if n_valid > 0) or (ranked[0][0],)


def pair_table_path(model) -> Path:
    """Where the model's precomputed pair rankings ship (``dicsbi/pretrained/pair_ranking_<model>.json``)."""
    from .posterior.artifact import PRETRAINED_DIR

    return PRETRAINED_DIR / f"pair_ranking_{get_model(model).name}.json"


@lru_cache(maxsize=8)
def _shipped_table(model: str) -> dict | None:
    path = pair_table_path(model)
    if not path.exists():
        return None
    table = json.loads(path.read_text())
    return table if table.get("model") == model and table.get("grid") == PAIR_GRID else None


@lru_cache(maxsize=4096)
def _ranking_in_cell(model, i: int, j: int, vth: float) -> tuple[tuple[str, str], ...]:
    table = _shipped_table(model)
    if table is not None and table["vth_mV"] == vth and f"{i},{j}" in table["cells"]:
        return tuple(tuple(p) for p in table["cells"][f"{i},{j}"])
    return compute_pair_ranking(model, i, j, vth)


def pair_ranking(model, g_s: float, g_u: float, vth_mV: float) -> tuple[tuple[str, str], ...]:
    """Return the candidate pairs ranked by their yield of valid cells in the ``PAIR_GRID`` cell holding (g_s, g_u).

    The yield is counted on 64 pilot seed cells at the centre of the cell (ties: smallest change); pairs with
    no valid pilot cell are dropped.  Cached per cell, and seeded by the cell, so the ranking does not depend
    on the order of recordings.

    The rankings of every cell of the model's DIC box at the shipped posterior's V_th are precomputed
    (``dicsbi/pretrained/pair_ranking_<model>.json``, written by ``experiments/make_pair_rankings.py``) and
    read from there; any other cell or V_th is computed on first use.  Both give the same ranking (a test
    recomputes cells of the table), so results do not depend on whether the table is present.
    """
    i, j = int(np.floor(g_s / PAIR_GRID)), int(np.floor(g_u / PAIR_GRID))
    return _ranking_in_cell(get_model(model).name, i, j, float(vth_mV))
