"""Is the spike-level evidence's channel AUC lost in summing hypothesis probabilities?  A per-channel head.

Trains, on the same pairs and split as ``train_spike_evidence.py`` (validation: blocks 9 mod 10, other before
cells), one MLP (256 x 3) with a sigmoid per channel on "this channel was changed" (binary cross-entropy) and the
same MLP with a softmax over the hypotheses, each stopped at its best validation loss, and prints the channel AUC
of both on the validation pairs (per pair: changed channels against unchanged ones, as the benchmark scores it;
the softmax's channel scores are its hypothesis probabilities summed per channel).

    python experiments/channel_head.py --model stg [--max-blocks 100]

Ends with one line: model=M auc_channel_head=x auc_softmax=x n_train=n n_val=n
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from train_spike_evidence import load_blocks

from dicsbi.modulation import enumerate_hypotheses
from dicsbi.posterior.artifact import load_posterior


def channel_auc(scores: np.ndarray, changed: np.ndarray) -> float:
    """Mean over pairs of P(score of a changed channel > score of an unchanged one), ties counting half."""
    out = []
    for s, c in zip(scores, changed):
        hit, miss = s[c], s[~c]
        if hit.size and miss.size:
            d = hit[:, None] - miss[None]
            out.append(float((d > 0).mean() + 0.5 * (d == 0).mean()))
    return float(np.mean(out))


def fit(x, target, val, n_out: int, binary: bool, seed: int = 0) -> torch.nn.Module:
    """One MLP (256 x 3, SiLU), Adam, batches of 256, stopped after 15 epochs without a better validation loss."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    width = x.shape[1]
    for _ in range(3):
        layers += [torch.nn.Linear(width, 256), torch.nn.SiLU()]
        width = 256
    net = torch.nn.Sequential(*layers, torch.nn.Linear(256, n_out))
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-5)
    loss = torch.nn.BCEWithLogitsLoss() if binary else torch.nn.CrossEntropyLoss()
    y = torch.tensor(target, dtype=torch.float32 if binary else torch.long)
    xt, yt, xv, yv = x[~val], y[~val], x[val], y[val]
    best, bad, state = np.inf, 0, None
    while bad < 15:
        net.train()
        for j in torch.randperm(len(xt)).split(256):
            opt.zero_grad()
            loss(net(xt[j]), yt[j]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            lv = loss(net(xv), yv).item()
        if lv < best - 1e-4:
            best, bad, state = lv, 0, {k: v.clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
    net.load_state_dict(state)
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["stg", "da"])
    ap.add_argument("--data", default=None, help="blocks folder (default ~/dicsbi-data/modpairs-MODEL)")
    ap.add_argument("--max-blocks", type=int, default=None)
    args = ap.parse_args()
    folder = Path(os.path.expanduser(args.data or f"~/dicsbi-data/modpairs-{args.model}"))
    feats, hyp, block = load_blocks(folder, args.max_blocks, load_posterior(args.model))
    hyps = enumerate_hypotheses(args.model)
    channels = sorted(set().union(*[set(h.channels) for h in hyps]))
    member = np.array([[c in h.channels for c in channels] for h in hyps])  # hypothesis x channel
    val = block % 10 == 9
    mu, sd = feats[~val].mean(0), feats[~val].std(0) + 1e-6
    x = torch.tensor((feats - mu) / sd, dtype=torch.float32)
    changed = member[hyp]
    head_net = fit(x, changed.astype(float), val, len(channels), True)
    soft_net = fit(x, hyp, val, len(hyps), False)
    with torch.no_grad():
        head = torch.sigmoid(head_net(x[val])).numpy()
        soft = torch.softmax(soft_net(x[val]), -1).numpy() @ member
    a_head, a_soft = channel_auc(head, changed[val]), channel_auc(soft, changed[val])
    print(f"channel AUC on {int(val.sum())} validation pairs: per-channel head {a_head:.4f}, "
          f"softmax over hypotheses {a_soft:.4f}")
    print(f"model={args.model} auc_channel_head={a_head:.4f} auc_softmax={a_soft:.4f} "
          f"n_train={int((~val).sum())} n_val={int(val.sum())}")


if __name__ == "__main__":
    main()
