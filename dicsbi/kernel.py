"""The simulator's numba kernel, written out for each model from its structure.

A generic kernel that *interprets* a model (loops over channels and gates, reading their exponents, table
columns and reversal potentials from index arrays) spends most of a step on that interpretation: the profile
of the first kernel (73-114 ns per neuron-step) was dominated by indirect indexing, not arithmetic.  This
module instead writes the Python source of one kernel per model structure, with every column index,
exponent, reversal potential and flag baked in as a constant and every state held in a local variable, and
lets numba compile that.  User-defined models get the same treatment: the source is generated from the
:class:`~dicsbi.models.Model` data, never written by hand per model.

Lanes
-----
The step is one dependent chain (V -> table row -> gates -> conductance sum -> exp -> V), so a single neuron
leaves most of a core idle waiting for loads and the ``exp``.  The generated kernel advances ``LANES``
neurons in lock-step inside one thread (the code of a step written out once per lane, structure of local
scalars), so the out-of-order core overlaps their chains.  Lanes never share state; a neuron's train does not
depend on which lane or group it lands in (tested: same result for any neuron order, thread count or
chunking).

Table layout
------------
Each tabulated function ``c`` is stored as the pair (value at the row, slope to the next row), so the
interpolation ``T[j, 2c] + f * T[j, 2c + 1]`` reads one row and costs one multiply-add.

Divergence
----------
A neuron whose V leaves ``|V| < 1000 mV`` (or becomes NaN) is flagged and its lane stops; its partner lanes
go on, and the group ends when every lane has stopped or the time is up.  A train never depends on its lane
partners (tested with a diverging partner).

GPU
---
:func:`generate_source` with ``target="cuda"`` writes the same step code as a numba-cuda kernel, one thread
per neuron (:func:`run_cuda`); numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs it on a CPU for tests.

The generated source lives in a cache folder (``DICSBI_CACHE``, default ``~/.cache/dicsbi/kernels``;
a temporary folder if that is not writable) so numba's ``cache=True`` can keep the compiled code between
processes; a file is rewritten only when its source changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

LANES = 2  # neurons advanced in lock-step per thread (2: best speed per compile second)


def _cache_dir() -> Path:
    base = os.environ.get("DICSBI_CACHE")
    path = Path(base) if base else Path.home() / ".cache" / "dicsbi"
    path = path / "kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return path
    except OSError:
        path = Path(tempfile.gettempdir()) / f"dicsbi-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}"
        path.mkdir(parents=True, exist_ok=True)
        return path


def column_layout(model) -> dict:
    """Which table column holds which function; shared by the table builder and the code generator.

    Returns ``{"gate_e": {k: c}, "gate_p": {k: c}, "pair": {k: (j, c)}, "vf": {channel: c}, "n": n_cols}``
    where ``c`` indexes functions (each takes two table columns: value and slope).  A coupled pair ``(k, j)``
    (``k < j``) has six functions: its exact step ``Phi`` row-major, then ``w``.
    """
    gate_e, gate_p, pair, vf = {}, {}, {}, {}
    n = 0
    for k, gate in enumerate(model.gates):
        if gate.coupled_to is None:
            gate_e[k], gate_p[k] = n, n + 1
            n += 2
    for k, gate in enumerate(model.gates):
        if gate.coupled_to is not None:
            j = model.gate_index(gate.coupled_to)
            if j > k:
                pair[k] = (j, n)
                n += 6
    for c, ch in enumerate(model.channels):
        if ch.voltage_factor is not None:
            vf[c] = n
            n += 1
    return {"gate_e": gate_e, "gate_p": gate_p, "pair": pair, "vf": vf, "n": n}


# ---------------------------------------------------------------------------- code generation
def _locate(v: str, x: str, j: str, f: str, row: str, ind: str) -> list[str]:
    """Lines that find the table row ``row`` and interpolation fraction ``f`` of voltage ``v`` (clamped)."""
    return [ind + f"{x} = ({v} - v_min) * inv_h",
            ind + f"if {x} < 0.0:\n" + ind * 2 + f"{x} = 0.0",
            ind + f"elif {x} > x_max:\n" + ind * 2 + f"{x} = x_max",
            ind + f"{j} = int({x})", ind + f"{f} = {x} - {j}", ind + f"{row} = table[{j}]"]


# Fixed parts of a lane's step; ``{s}`` is the lane suffix.  Noise and stimulus are interpolated at the step's
# midpoint; V is advanced exactly for the frozen midpoint conductances.
_CURRENT_AND_V = """\
cur = 0.0
if has_noise:
    sn = (n + 0.5) * noise_ratio
    mn = int(sn)
    wn = sn - mn
    cur = noise[i{s}, mn] + wn * (noise[i{s}, mn + 1] - noise[i{s}, mn])
if has_stim:
    st = stim_t[k{s}]
    while sp{s} < stim_n[k{s}] and st[sp{s}] <= tm:
        sp{s} += 1
    if 0 < sp{s} < stim_n[k{s}]:
        t0 = st[sp{s} - 1]
        c0 = stim_i[k{s}, sp{s} - 1]
        cur += c0 + (tm - t0) / (st[sp{s}] - t0) * (stim_i[k{s}, sp{s}] - c0)
if G > 1e-12:
    vi = (GE + cur) / G
    Vn = vi + (V - vi) * math.exp(-dt_cap * G)
else:
    Vn = V + dt_cap * cur
y0{s} = Vn"""

# Divergence stops the lane; in the window, a spike starts at an upward crossing of +10 mV and counts once V
# falls below 0 mV (the published rule).
_DIVERGENCE_AND_SPIKES = """\
if not abs(Vn) < 1000.0:
    stat[i{s}] = 1
    cnt{s} = 0
    pend{s} = 0
    run{s} = False
    alive -= 1
elif n >= n_transient:
    mr = n - n_transient
    if slot{s} >= 0:
        voltage[slot{s}, mr] = Vn
    if vp{s} <= 10.0 < Vn:
        if cnt{s} + pend{s} < capacity:
            spikes[i{s}, cnt{s} + pend{s}] = (mr + 1) * dt
            pend{s} += 1
        else:
            stat[i{s}] = 2
    elif Vn < 0.0 <= vp{s}:
        cnt{s} += pend{s}
        pend{s} = 0
vp{s} = Vn"""

# A lane's start: its neuron (the last one repeated for an empty lane, which never runs) and bookkeeping.
_LANE_START = """\
i{s} = min(grp * {lanes} + {L}, n_neurons - 1)
run{s} = grp * {lanes} + {L} < n_neurons
if run{s}:
    alive += 1
k{s} = stim_k[i{s}] if has_stim else 0
vp{s} = ystart[0]
vl{s} = ystart[0]
slot{s} = rec_slot[i{s}]
cnt{s} = 0
pend{s} = 0
sp{s} = 0"""


def _block(template: str, s: str, ind: str, **extra) -> list[str]:
    """Return a template's lines for lane suffix ``s``, indented by ``ind``."""
    return [ind + line for line in template.format(s=s, **extra).split("\n")]


def _lane_step(model, lay, L: int) -> list[str]:
    """Source lines of one step of lane ``L`` (locals suffixed ``_L``)."""
    s = f"_{L}"
    out: list[str] = []
    a = out.append
    n_gates = len(model.gates)
    pool = model.calcium
    has_vf = bool(lay["vf"])
    a(f"if run{s}:")
    ind = "    "
    a(ind + f"V = y0{s}")
    if has_vf:
        a(ind + f"vm = V + 0.5 * (V - vl{s})")
        a(ind + f"vl{s} = V")
    out += _locate("V", "x", "jr", "f", "r", ind)
    if pool is not None:
        a(ind + f"caf = y{n_gates + 1}{s} / (y{n_gates + 1}{s} + {pool.half_activation_uM!r})")
    for k, gate in enumerate(model.gates):
        if k in lay["gate_e"]:
            ce, cp = 2 * lay["gate_e"][k], 2 * lay["gate_p"][k]
            drive = f"(r[{cp}] + f * r[{cp + 1}])"
            if gate.calcium_dependent:
                drive = f"{drive} * caf"
            a(ind + f"y{k + 1}{s} = y{k + 1}{s} * (r[{ce}] + f * r[{ce + 1}]) + {drive}")
        elif k in lay["pair"]:
            j, c = lay["pair"][k]
            c *= 2
            a(ind + f"pa = y{k + 1}{s}")
            a(ind + f"pb = y{j + 1}{s}")
            a(ind + f"y{k + 1}{s} = (r[{c}] + f * r[{c + 1}]) * pa + (r[{c + 2}] + f * r[{c + 3}]) * pb"
                    f" + r[{c + 8}] + f * r[{c + 9}]")
            a(ind + f"y{j + 1}{s} = (r[{c + 4}] + f * r[{c + 5}]) * pa + (r[{c + 6}] + f * r[{c + 7}]) * pb"
                    f" + r[{c + 10}] + f * r[{c + 11}]")
    if has_vf:
        out += _locate("vm", "xm", "jm", "fm", "rm", ind)
    g_terms, ge_terms, ca_terms, cae_terms = [], [], [], []
    for c, ch in enumerate(model.channels):
        factors = [f"g{c}{s}"]
        for gname, e in ch.gates:
            v = f"y{model.gate_index(gname) + 1}{s}"
            factors.append("*".join([v] * e) if e <= 4 else f"{v}**{e}")
        if c in lay["vf"]:
            cv = 2 * lay["vf"][c]
            factors.append(f"(rm[{cv}] + fm * rm[{cv + 1}])")
        a(ind + f"p{c} = " + " * ".join(f"({fa})" for fa in factors))
        g_terms.append(f"p{c}")
        ge_terms.append(f"p{c} * {float(ch.reversal_mV)!r}")
        if ch.carries_calcium:
            ca_terms.append(f"p{c}")
            cae_terms.append(f"p{c} * {float(ch.reversal_mV)!r}")
    a(ind + "G = " + " + ".join(g_terms))
    a(ind + "GE = " + " + ".join(ge_terms))
    out += _block(_CURRENT_AND_V, s, ind)
    if pool is not None:
        ca = f"y{n_gates + 1}{s}"
        gca = " + ".join(ca_terms) if ca_terms else "0.0"
        geca = " + ".join(cae_terms) if cae_terms else "0.0"
        a(ind + f"cai = {pool.beta!r} - {pool.alpha!r} * (({gca}) * 0.5 * (V + Vn) - ({geca}))")
        a(ind + f"{ca} = cai + ({ca} - cai) * ca_decay")
    out += _block(_DIVERGENCE_AND_SPIKES, s, ind)
    return out


KERNEL_ARGS = ("g, ystart, table, v_min, inv_h, dt, dt_cap, ca_decay, n_transient, n_window, noise, noise_ratio, "
               "stim_t, stim_i, stim_n, stim_k, t_first, spikes, counts, stat, rec_slot, voltage")


def generate_source(model, target: str = "cpu") -> str:
    """Python source of the kernel module for ``model`` (see the module docstring).

    ``target="cpu"``: a numba ``njit`` function, parallel over groups of :data:`LANES` neurons.
    ``target="cuda"``: a ``numba.cuda`` kernel, one thread per neuron (a GPU hides latency with threads,
    not lanes), from the very same step code; launched by :func:`run_cuda`.
    """
    lay = column_layout(model)
    ns = model.n_states
    nch = model.n_conductances
    lanes = LANES if target == "cpu" else 1
    if target == "cpu":
        head = ["from numba import njit, prange", "", "",
                "@njit(cache=True, parallel=True, fastmath=False, error_model='numpy')",
                f"def integrate({KERNEL_ARGS}):"]
    elif target == "cuda":
        head = ["from numba import cuda", "", "",
                "@cuda.jit(cache=CACHE)",
                f"def integrate({KERNEL_ARGS}):"]
    else:
        raise ValueError(f"unknown kernel target {target!r}")
    lines = [f"# generated by dicsbi.kernel for model structure {model.name!r} ({target}); do not edit",
             "import math", "import os", "",
             "CACHE = os.environ.get('NUMBA_ENABLE_CUDASIM', '0') != '1'", *head,
             "    n_neurons = g.shape[0]",
             "    n_rows = table.shape[0]",
             "    x_max = n_rows - 1.000001",
             "    has_noise = noise.shape[1] > 1",
             "    has_stim = stim_t.shape[1] > 0",
             "    n_total = n_transient + n_window",
             "    capacity = spikes.shape[1]"]
    if target == "cpu":
        lines += [f"    n_groups = (n_neurons + {lanes - 1}) // {lanes}",
                  "    for grp in prange(n_groups):"]
    else:
        lines += ["    grp = cuda.grid(1)",
                  "    if grp < n_neurons:"]
    body = lines.append
    ind = "        "
    body(ind + "alive = 0")
    for L in range(lanes):
        s = f"_{L}"
        lines += _block(_LANE_START, s, ind, lanes=lanes, L=L)
        lines += [ind + f"g{c}{s} = g[i{s}, {c}]" for c in range(nch)]
        lines += [ind + f"y{q}{s} = ystart[{q}]" for q in range(ns)]
    body(ind + "n = 0")
    body(ind + "while n < n_total and alive > 0:")
    body(ind + "    tm = (n + 0.5) * dt - t_first")
    for L in range(lanes):
        for line in _lane_step(model, lay, L):
            body("\n".join(ind + "    " + part for part in line.split("\n")))
    body(ind + "    n += 1")
    for L in range(lanes):
        s = f"_{L}"
        body(ind + f"if grp * {lanes} + {L} < n_neurons:")
        body(ind + f"    counts[i{s}] = 0 if stat[i{s}] == 1 else cnt{s}")
    lines.append("")
    return "\n".join(lines)


@lru_cache(maxsize=32)
def _compiled(source: str):
    """Import (compiling or loading numba's cache) the kernel module with this source; the source is the key."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = _cache_dir() / f"dicsbi_kernel_{digest}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    name = f"_dicsbi_kernel_{digest}"
    if name in sys.modules:
        return sys.modules[name].integrate
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot import the kernel module {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.integrate


def kernel_for(model, target: str = "cpu"):
    """Return the compiled kernel for ``model``'s structure on ``target`` (generated, cached in memory and on disk)."""
    return _compiled(generate_source(model, target))


CUDA_THREADS_PER_BLOCK = 128


def cuda_available() -> bool:
    """Return True when numba can reach a CUDA GPU (or its CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``)."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba without its CUDA target
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken driver means no GPU, not a crash
        return False


def run_cuda(model, *args) -> None:
    """Launch the CUDA kernel of ``model`` with the CPU kernel's arguments (host arrays; outputs copied back).

    Inputs are copied to the device once per call; ``spikes``, ``counts``, ``stat`` and ``voltage`` are
    copied back into the given host arrays.
    """
    from numba import cuda

    kernel = kernel_for(model, "cuda")
    names = [a.strip() for a in KERNEL_ARGS.split(",")]
    outputs = {"spikes", "counts", "stat", "voltage"}
    dev = [cuda.to_device(a) if hasattr(a, "shape") else a for a in args]
    n = args[0].shape[0]
    blocks = max(1, -(-n // CUDA_THREADS_PER_BLOCK))
    kernel[blocks, CUDA_THREADS_PER_BLOCK](*dev)
    cuda.synchronize()
    for name, host, d in zip(names, args, dev):
        if name in outputs:
            d.copy_to_host(host)
