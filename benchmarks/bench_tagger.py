"""A jet tagger on a generative backbone: ``ar-tokens`` pretrained by generation, then a small
head for top vs gluon, against the same network trained from scratch (OmniJet-alpha's third
transfer task, at CPU scale).

Three taggers, the same architecture (the run's transformer, mean-pooled over the constituents,
then a 2-layer head), the same labelled jets, optimizer steps and seed:

* ``frozen``: the pretrained backbone fixed, the head trained;
* ``fine-tuned``: backbone and head trained (the backbone at a tenth of the head's learning rate);
* ``scratch``: the backbone freshly initialised, everything trained.

Each is trained on the first f of the labelled jets for each fraction f and scored on an
independent test set (ROC AUC and the gluon rejection 1/eps_g at 50 % top efficiency; the AUC
error from 20 bootstrap replicas of the test set). The tagger never sees the jet type: the
backbone's type condition is a vector of zeros.

Example::

    python benchmarks/bench_tagger.py --run g_to_t/source --signal t_train.h5 --background g_train.h5 \\
        --test-signal t_test.h5 --test-background g_test.h5 --out tagger/
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

__all__ = ["main", "tag_scores"]


def _rows(run: Any, path: Path, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    from showerforge.data.jetnet import read_jets

    jets = read_jets(path)
    pf = jets.particle_features[:n] if n else jets.particle_features
    x, mask = run.preprocessing.forward(pf)
    return torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(mask, bool))


class Tagger(nn.Module):
    def __init__(self, backbone: Any, d_model: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Linear(d_model, 64), nn.GELU(), nn.Linear(64, 1))
        self.n_cond = int(backbone.config["n_cond"])

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cond = torch.zeros((len(x), self.n_cond), dtype=x.dtype)
        return self.head(self.backbone.features(x, cond, mask))[:, 0]


def tag_scores(tagger: Tagger, x: torch.Tensor, mask: torch.Tensor, batch: int = 512) -> np.ndarray:
    tagger.eval()
    with torch.no_grad():
        return np.concatenate([tagger(x[i : i + batch], mask[i : i + batch]).numpy() for i in range(0, len(x), batch)])


def _train(
    tagger: Tagger, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, mode: str, steps: int, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    if mode == "frozen":
        for p in tagger.backbone.parameters():
            p.requires_grad_(False)
        groups = [{"params": tagger.head.parameters(), "lr": 1e-3}]
    else:
        lr_backbone = 1e-4 if mode == "fine-tuned" else 1e-3
        groups = [{"params": tagger.head.parameters(), "lr": 1e-3}]
        groups.append({"params": tagger.backbone.parameters(), "lr": lr_backbone})
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    loss_fn = nn.BCEWithLogitsLoss()
    tagger.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(128, len(x)),), generator=gen)
        loss = loss_fn(tagger(x[idx], mask[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def _score(y: np.ndarray, s: np.ndarray, seed: int) -> dict[str, float]:
    auc = float(roc_auc_score(y, s))
    fpr, tpr, _ = roc_curve(y, s)
    eps_b = float(np.interp(0.5, tpr, fpr))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(20):
        i = rng.integers(0, len(y), len(y))
        boots.append(roc_auc_score(y[i], s[i]))
    return {"auc": auc, "auc_error": float(np.std(boots)), "rejection_at_50": 1.0 / max(eps_b, 1e-9)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a trained ar-tokens jet run (the backbone)")
    ap.add_argument("--signal", type=Path, required=True)
    ap.add_argument("--background", type=Path, required=True)
    ap.add_argument("--test-signal", type=Path, required=True)
    ap.add_argument("--test-background", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-train", type=int, default=10000, help="labelled jets of each class at 100 %%")
    ap.add_argument("--n-test", type=int, default=2000, help="test jets of each class")
    ap.add_argument("--fractions", default="0.01,0.1,1")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import showerforge as sf
    from showerforge.models import build_model

    torch.set_num_threads(1)
    run = sf.load(args.run)
    xs, ms = _rows(run, args.signal, args.n_train)
    xb, mb = _rows(run, args.background, args.n_train)
    ts, tms = _rows(run, args.test_signal, args.n_test)
    tb, tmb = _rows(run, args.test_background, args.n_test)
    x_test, m_test = torch.cat([ts, tb]), torch.cat([tms, tmb])
    y_test = np.concatenate([np.ones(len(ts)), np.zeros(len(tb))])
    d_model = int(run.config["d_model"])
    rows = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        k = max(5, int(round(fraction * min(len(xs), len(xb)))))
        x = torch.cat([xs[:k], xb[:k]])
        m = torch.cat([ms[:k], mb[:k]])
        y = torch.cat([torch.ones(k), torch.zeros(k)])
        for mode in ("frozen", "fine-tuned", "scratch"):
            torch.manual_seed(args.seed)
            if mode == "scratch":
                backbone = build_model(run.config)
                backbone.load_state_dict(
                    {k_: v for k_, v in run.model.state_dict().items() if "tokeniser" in k_}, strict=False
                )  # the same tokens; the network fresh
            else:
                backbone = copy.deepcopy(run.model)
            tagger = Tagger(backbone, d_model)
            _train(tagger, x, m, y, mode, args.steps, args.seed)
            res = _score(y_test, tag_scores(tagger, x_test, m_test), args.seed)
            rows.append({"fraction": fraction, "labelled_jets": 2 * k, "mode": mode, **res})
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "run": str(args.run),
        "steps": args.steps,
        "n_test": 2 * args.n_test,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": os.getloadavg()[0],
        "rows": rows,
    }
    (args.out / "tagger.json").write_text(json.dumps(doc, indent=2))
    print("| labelled jets (t + g) | backbone | AUC | 1/ε_g at ε_t = 0.5 |")
    print("|---:|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['labelled_jets']} | {r['mode']} | {r['auc']:.3f} ± {r['auc_error']:.3f} | {r['rejection_at_50']:.1f} |"
        )


if __name__ == "__main__":
    main()
