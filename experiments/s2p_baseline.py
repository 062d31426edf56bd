"""The published Spike2Pop network (Brandoit et al.) on dicsbi's test sets: a baseline MAE of (g_s, g_u).

The published code is run from outside the package: its model classes (``script/base_model.py``,
``script/adapted_model.py``) and weights (``models/``) are imported from an extracted copy of its repository
(``--s2p``; extracted from the local git mirror with ``git show`` when the folder is missing), never copied into
dicsbi.  Weights are loaded with ``torch.load(..., weights_only=True)``.

Inference follows the published tool (``script/main_script.py``, ``load_model`` and ``forward_model``):

* network: ``base_model.DICsNet`` built from ``models/base_model_args.json`` (``inference_only=False``), weights
  ``models/best_model_stg.pth`` (``model_state_dict``, loaded ``strict=False``) for the STG; for the DA,
  ``adapted_model.DICsNet`` from ``models/lora_args.json`` (rank ``r_value``), the STG weights mapped onto it by
  ``adapted_model.map_to_lora_model`` and the LoRA adapters plus the DA input normalisation (``mu``, ``sigma``)
  of ``models/lora_best.pth`` set as ``DICsNet.load_lora_adapter`` does;
* input: spike times in ms as float32, shifted so that the first spike is at 0, at most the first 250 spikes,
  zero-padded per batch, with the lengths ``L``; the network itself takes ISIs, log1p and its stored
  normalisation; trains with fewer than 3 spikes are silent to the tool and get no prediction (NaN here);
* output: ``forward_auxilliary(x, L)[0]`` is (g_s, g_u) in their own units, used as is (no de-normalisation
  or clipping; the tool's log-variance head is not used here).

The trains are those of ``experiments/eval_worlds.py``'s ``load_trains`` (non-silent, simulator ok, seeded choice
of ``--max-trains``), scored against the same truth (the sets' targets).  Per set it writes
``<out>/s2p-<model>-<world>.csv`` (train index in the set, truth g_s, g_u, predicted g_s, g_u) and prints n and
the MAE of g_s / g_u.

    python experiments/s2p_baseline.py --model stg --sets ~/dicsbi-data/sets --worlds unseen,generator \\
        --max-trains 1000 --seed 0 --s2p ~/spike2pop/sources --out ~/dicsbi-data/s2p

``--worlds`` takes eval_worlds.py's worlds (generator, wide, allpairs, modulated, unseen), ``-noisy`` for the
noisy twins.  Ends with one line: model=M s2p_<world>_mae_gs=.. s2p_<world>_mae_gu=.. (per world) n=<trains>.
Other scripts can call :func:`s2p_predictions`.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_worlds import WORLDS, load_trains, set_folder  # noqa: E402

MIRROR = Path("/work/.mirror/julienbrandoit+Spike2Pop---Bridging-Experimental-Neuroscience-and-Computational-Modeling"
              "/repo")
MAX_SPIKES = 250  # the tool's truncation (main_script.forward_model)
MIN_SPIKES = 3  # fewer is "silent" for the tool (inference.SpikeFeatureExtractor), never passed to the network
NAMES = {"stg": "STG", "da": "DA"}
_NETWORKS: dict = {}


def extract_sources(mirror: Path, dest: Path) -> Path:
    """Extract the repository's ``sources/`` folder from its bare git mirror into ``dest``."""
    git = ["git", f"--git-dir={mirror}"]
    try:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
        names = subprocess.run([*git, "ls-tree", "-r", "-z", "--name-only", "HEAD", "sources/"], check=True,
                               capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"no Spike2Pop sources at {dest} and none readable from the mirror {mirror}: {e}")
    tmp = dest.with_name(dest.name + ".partial")
    for name in filter(None, names):
        r = subprocess.run([*git, "show", f"{commit}:{name}"], capture_output=True)
        if r.returncode:
            print(f"skipping unreadable {name}: {r.stderr.decode().strip()}")
            continue
        path = tmp / Path(name).relative_to("sources")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(r.stdout)
    (tmp / "COMMIT").write_text(commit + "\n")
    tmp.rename(dest)
    print(f"extracted Spike2Pop sources/ at {commit[:10]} from {mirror} into {dest}")
    return dest


def _published_modules(s2p_dir: Path):
    """Import the published ``base_model`` and ``adapted_model`` from ``<s2p_dir>/script``."""
    script = (s2p_dir / "script").resolve()
    if not (script / "base_model.py").is_file():
        sys.exit(f"{s2p_dir} holds no Spike2Pop sources (no script/base_model.py)")
    # adapted_model imports wandb at module level, used only by its training main(): stand in if absent
    if "wandb" not in sys.modules and importlib.util.find_spec("wandb") is None:
        sys.modules["wandb"] = types.ModuleType("wandb")
    sys.path.insert(0, str(script))
    try:
        mods = [importlib.import_module(m) for m in ("base_model", "adapted_model")]
    finally:
        sys.path.remove(str(script))
    for m in mods:
        if Path(m.__file__).resolve().parent != script:
            raise RuntimeError(f"module {m.__name__} already imported from {m.__file__}, not from {script}")
    return mods


def load_network(model: str, s2p_dir: Path):
    """The published network of ``model`` ("stg" or "da") in eval mode on the CPU, and its V_th (mV)."""
    s2p_dir = Path(os.path.expanduser(str(s2p_dir))).resolve()
    key = (model, s2p_dir)
    if key in _NETWORKS:
        return _NETWORKS[key]
    base_model, adapted_model = _published_modules(s2p_dir)
    config = json.loads((s2p_dir / "config.json").read_text())
    base = torch.load(s2p_dir / config["base_model_weights_path"], map_location="cpu", weights_only=True)
    if model == "stg":
        args = json.loads((s2p_dir / config["base_model_args_path"]).read_text())
        net = base_model.DICsNet(args["d_encoder"], args["n_heads"], args["dropout"], args["n_blocks_encoder"],
                                 args["n_blocks_decoder"], args["d_latent"], args["activation"],
                                 inference_only=False, should_log=args["should_log"])
        missing, unexpected = net.load_state_dict(base["model_state_dict"], strict=False)
        if missing or unexpected:
            print(f"Spike2Pop STG weights: missing {missing}, unexpected {unexpected}")
        vth = config["base_model_v_th"]
    elif model == "da":
        args = json.loads((s2p_dir / config["da_adapters_args_path"]).read_text())
        net = adapted_model.DICsNet(args["d_encoder"], args["n_heads"], args["dropout"], args["n_blocks_encoder"],
                                    args["n_blocks_decoder"], args["d_latent"], args["activation"],
                                    inference_only=False, should_log=args["should_log"], r=args["r_value"])
        adapted_model.map_to_lora_model(net, base["model_state_dict"])
        # DICsNet.load_lora_adapter without its bare torch.load: the same assignments, weights_only
        lora = torch.load(s2p_dir / config["da_adapters_weights_path"], map_location="cpu", weights_only=True)["lora"]
        for name, module in net.named_modules():
            if isinstance(module, adapted_model.AdaptedLayer):
                module.set_lora_weights(lora[name + ".lora_A"], lora[name + ".lora_B"])
        net.encoder.embedder.mu.data = lora["mu"]
        net.encoder.embedder.sigma.data = lora["sigma"]
        vth = config["da_adapters_v_th"]
    else:
        raise ValueError(f"unknown model {model!r} (stg or da)")
    net.eval()
    _NETWORKS[key] = net, float(vth)
    return _NETWORKS[key]


def s2p_predictions(model: str, trains, s2p_dir, batch_size: int = 512) -> np.ndarray:
    """(g_s, g_u) of the published Spike2Pop network for each train, shape [n, 2].

    ``trains``: a SpikeTrains or a sequence of 1-D arrays of spike times in ms.  Trains with fewer than 3 spikes
    (silent to the published tool) get NaN.
    """
    net, _ = load_network(model, s2p_dir)
    arrays = [np.asarray(trains[i], dtype=np.float32) for i in range(len(trains))]
    out = np.full((len(arrays), 2), np.nan)
    keep = np.flatnonzero([a.size >= MIN_SPIKES for a in arrays])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.cuda.amp.autocast in the published Pooler
        for start in range(0, keep.size, batch_size):
            idx = keep[start:start + batch_size]
            x = [torch.from_numpy(arrays[i] - arrays[i][0])[:MAX_SPIKES] for i in idx]
            length = torch.tensor([len(t) for t in x], dtype=torch.float32)
            y_hat = net.forward_auxilliary(pad_sequence(x, batch_first=True, padding_value=0), length)[0]
            out[idx] = y_hat[:, :2].double().numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(NAMES))
    ap.add_argument("--sets", default="~/dicsbi-data/sets", help="folder of make_training_sets.py's sets")
    ap.add_argument("--worlds", default="unseen,generator", help="comma-separated worlds, '-noisy' for the twins")
    ap.add_argument("--max-trains", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--s2p", default="~/spike2pop/sources", help="extracted sources/ of the Spike2Pop repository")
    ap.add_argument("--mirror", default=str(MIRROR), help="its bare git mirror, to extract --s2p from if missing")
    ap.add_argument("--out", default="~/dicsbi-data/s2p", help="folder for the per-set CSVs")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    worlds = [w.strip() for w in args.worlds.split(",") if w.strip()]
    for world in worlds:
        if world.removesuffix("-noisy") not in WORLDS:
            sys.exit(f"unknown world {world!r} (one of {', '.join(WORLDS)}, '-noisy' for the twins)")
    sets, out = (Path(os.path.expanduser(p)) for p in (args.sets, args.out))
    s2p = Path(os.path.expanduser(args.s2p))
    if not s2p.exists():
        extract_sources(Path(args.mirror), s2p)
    _, vth = load_network(args.model, s2p)
    commit = (s2p / "COMMIT").read_text().strip()[:10] if (s2p / "COMMIT").exists() else "not recorded"
    print(f"Spike2Pop {NAMES[args.model]} network from {s2p} (commit {commit}), V_th {vth} mV")
    out.mkdir(parents=True, exist_ok=True)
    line, n_total = f"model={args.model}", 0
    print(f"\n{'set':22} {'n':>5} {'MAE g_s / g_u':>16} {'s':>6}")
    for world in worlds:
        base, noisy = world.removesuffix("-noisy"), world.endswith("-noisy")
        folder = set_folder(sets, args.model, base, noisy)
        tag = base + ("_noisy" if noisy else "")
        if not folder.exists():
            print(f"{world:22} (no set at {folder})")
            line += f" s2p_{tag}_mae_gs=nan s2p_{tag}_mae_gu=nan"
            continue
        trains, theta, _, _ = load_trains(folder, args.max_trains, args.seed)
        t0 = time.perf_counter()
        pred = s2p_predictions(args.model, trains, s2p)
        seconds = time.perf_counter() - t0
        mae = np.nanmean(np.abs(pred - theta), axis=0)
        with open(out / f"s2p-{args.model}-{world}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["train", "g_s", "g_u", "g_s_hat", "g_u_hat"])
            w.writerows([i, *map(float, t), *map(float, p)] for i, t, p in zip(trains.ids, theta, pred))
        print(f"{world:22} {len(trains):5d} {mae[0]:7.3f} / {mae[1]:<6.3f} {seconds:6.1f}")
        line += f" s2p_{tag}_mae_gs={mae[0]:.4f} s2p_{tag}_mae_gu={mae[1]:.4f}"
        n_total += len(trains)
    print(f"\nCSVs in {out}")
    print(f"{line} n={n_total}")


if __name__ == "__main__":
    main()
