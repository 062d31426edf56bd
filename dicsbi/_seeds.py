"""Every random stream dicsbi draws, by name.

A stream is ``numpy.random.SeedSequence(root, spawn_key=key)``: one root seed (the user's ``seed``) and a key
that says what the stream is for, so that no two parts of a run share a stream and parallel workers never do.
The keys below are part of the reproducibility contract (same seed, same outputs): changing one changes every
output that draws from it, and ``tests/test_golden.py`` says so.

Training sets (root: the data set's seed; :mod:`dicsbi.datasets`)
    ``(DESIGN,)`` the DIC targets; ``(POPULATION, shard, j)`` the population of target ``j`` of a shard;
    ``(NOISE, shard)`` the shard's noise (its cell ``i`` then uses noise stream ``i``, as :func:`dicsbi.simulate`);
    ``(SPLIT,)`` the validation targets; ``(NOISE_LEVELS, shard)`` each cell's noise level (``noise_max``);
    ``(WORLD_CHOICE, shard)`` the world of each target of a shard (``world``).
Subsets (root: the subset's seed; :func:`dicsbi.datasets.storage.subset_trains`)
    ``(SUBSET,)`` the order in which targets are taken.
Simulation (root: ``simulate``'s seed)
    ``(i,)`` the noise of neuron ``i`` (or of its ``noise_keys[i]``).
The main job (root: ``infer``'s seed; :mod:`dicsbi.pipeline`)
    ``(CHUNK + c,)`` the posterior draws of chunk ``c > 0`` (chunk 0 draws from the seed itself); ``(i,)`` the
    population of recording ``i``; ``(i, MORE + r)`` its ``r``-th extra draw; ``(i, NOISE_DRAWS)`` its noise
    posterior draws.
Refinement (root: the recording's own stream ``(i, REFINE)`` under ``infer``'s seed; :mod:`dicsbi.refine`)
    ``(REFINE_FIRST,)`` the first generation's seed parameters, ``(REFINE_FIRST, k)`` its posterior draws;
    ``(REFINE, gen)`` generation ``gen``'s resampling and moves, ``(REFINE, gen, 1)`` their simulations' noise.
Neuromodulation (root: ``modulate``'s seed)
    ``(MODULATION + i,)`` neuron ``i``'s likelihood tables and importance samples; scenario sets of the benchmark
    ``(set index, i)``; training pairs of the spike-level evidence (root: the run's seed) ``(MOD_PAIRS, block)``.
Pair rankings (root 0)
    ``(i + PAIR_CELL, j + PAIR_CELL)`` the pilot cells of grid cell ``(i, j)``.
Refinement proposal flows (root: the training run's seed)
    ``(REFINE_FLOW, k)`` chunk ``k`` of the simulated prior cells (draws), ``(REFINE_FLOW, k, 1)`` their noise.
Training (root: ``TrainConfig.seed``)
    ``(WINDOWS,)`` the random windows of the validation trains.
"""

from __future__ import annotations

import numpy as np

DESIGN, POPULATION, NOISE, SPLIT, NOISE_LEVELS, WORLD_CHOICE, SUBSET = 0, 1, 2, 3, 4, 5, 6
WINDOWS = 1
CHUNK = 2**31
MORE = 2**20
NOISE_DRAWS = 2**21
MODULATION = 2**30
PAIR_CELL = 10**6
REFINE_FIRST = 2**22
REFINE = 2**23  # also the recording's refinement root: (i, REFINE) under infer's seed
MOD_PAIRS = 2**24
REFINE_FLOW = 2**25  # the refinement's proposal-flow training cells: (REFINE_FLOW, chunk) under the run's seed


def stream(root: int, *key: int) -> np.random.SeedSequence:
    """Return the stream ``key`` under ``root``."""
    return np.random.SeedSequence(root, spawn_key=tuple(int(k) for k in key))


def rng(root: int, *key: int) -> np.random.Generator:
    """Return a generator on the stream ``key`` under ``root``."""
    return np.random.default_rng(stream(root, *key))


def int_seed(root: int, *key: int) -> int:
    """Return a 32-bit seed drawn from the stream ``key`` (for APIs that take an integer seed)."""
    return int(stream(root, *key).generate_state(1)[0])


def int_seed63(root: int, *key: int) -> int:
    """Return a non-negative 63-bit seed drawn from the stream ``key`` (the data sets' population and noise seeds)."""
    return int(stream(root, *key).generate_state(1, np.uint64)[0] >> 1)
