"""Transfer with ``ar-tokens``: fine-tuning a model pretrained on one data set against training from
scratch, at equal compute, on 1 %, 10 % and 100 % of the target data.

1. Pretrain ``ar-tokens`` on ``--source`` (``--source-epochs``).
2. For each fraction f of ``--target`` (its first f x N rows): train from scratch and from the
   pretrained weights (``train --init-from``) for the same number of optimizer steps
   (``--steps``: epochs = steps x batch / rows, at least 1), same seed and settings.
3. Generate ``--n-gen`` samples of each run and evaluate them against ``--test`` (an independent
   sample of the target): the kind's metrics with their truth-vs-truth floor (quick settings).

Prints a Markdown table (and writes ``transfer.json``): per fraction and start, the validation
loss and the headline metrics with their errors.

Example (jets g -> t, the OmniJet-alpha question at CPU scale)::

    showerforge simulate jets --type g --n 20000 --no-mpi --seed 4003 -o g_train.h5
    showerforge simulate jets --type t --n 20000 --no-mpi --seed 4001 -o t_train.h5
    showerforge simulate jets --type t --n 5000 --no-mpi --seed 4002 -o t_test.h5
    python benchmarks/bench_transfer.py --source g_train.h5 --target t_train.h5 --test t_test.h5 \\
        --out transfer_g_t/
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "subset"]


def subset(src: Path, dst: Path, fraction: float) -> int:
    """The first ``fraction`` of the rows of a jet or point file written to ``dst``; returns the rows."""
    from showerforge.data.jetnet import read_jets, write_jets
    from showerforge.data.points import read_points, write_points
    from showerforge.kinds import kind_of_file

    kind = kind_of_file(src).name
    if kind == "jet-set":
        jets = read_jets(src)
        n = max(2, int(round(fraction * len(jets.jet_type))))
        arrays = {k: getattr(jets, k)[:n] for k in ("particle_features", "jet_features", "jet_type")}
        write_jets(dst, arrays)
        return n
    clouds = read_points(src)
    n = max(2, int(round(fraction * len(clouds))))
    write_points(dst, clouds.select(np.arange(n)))
    return n


def _headline(metrics: dict[str, Any]) -> dict[str, str]:
    comp = {k.lower(): v for k, v in metrics.get("candidate_vs_reference", {}).items()}
    out = {}
    for key in ("w1m", "w1p", "w1efp", "fpd", "kpd", "w1x100_mean"):
        entry = comp.get(key)
        if isinstance(entry, dict) and "value" in entry:
            out[key] = f"{entry['value']:.3g} ± {entry.get('error', float('nan')):.2g}"
    auc = comp.get("classifier", {}).get("auc") if isinstance(comp.get("classifier"), dict) else None
    if isinstance(auc, dict):
        out["auc"] = f"{auc['value']:.3g} ± {auc['error']:.2g}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True)
    ap.add_argument("--target", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fractions", default="0.01,0.1,1")
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps of every target run")
    ap.add_argument("--source-epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-gen", type=int, default=5000)
    ap.add_argument("--types", default="t", help="jets: the type(s) to generate")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import showerforge as sf
    from showerforge.kinds import kind_of_file

    config: dict[str, Any] = {}
    for item in args.overrides:
        k, _, v = item.partition("=")
        config[k] = json.loads(v) if v[:1].isdigit() or v[:1] in "-[{" else v
    common = {"model": "ar-tokens", "seed": args.seed, "device": "cpu", "num_threads": 1, "progress": False}
    common |= {"batch_size": args.batch_size, "config": config or None}
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    source_run = args.out / "source"
    sf.train(args.source, output=source_run, epochs=args.source_epochs, **common)
    source_minutes = (time.perf_counter() - t0) / 60
    rows = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        data = args.out / f"target_{fraction:g}.h5"
        n = subset(args.target, data, fraction) if not data.exists() else None
        n = n or kind_of_file(data).count(data)
        train_rows = max(1, int(n * 0.9))  # the default validation split keeps 10 %
        epochs = max(1, math.ceil(args.steps * args.batch_size / train_rows))
        for start in ("scratch", "pretrained"):
            run = args.out / f"{start}_{fraction:g}"
            extra = {"init_from": source_run} if start == "pretrained" else {}
            t1 = time.perf_counter()
            result = sf.train(data, output=run, epochs=epochs, **common, **extra)
            minutes = (time.perf_counter() - t1) / 60
            gen = args.out / f"gen_{start}_{fraction:g}.h5"
            if not gen.exists():
                gen_kw = {"types": args.types, "n": args.n_gen} if kind_of_file(data).name == "jet-set" else {}
                if not gen_kw:
                    gen_kw = {"energies_from": args.test, "n": args.n_gen}
                sf.generate_file(run, output=gen, seed=args.seed + 1, **gen_kw)
            metrics = sf.evaluate(
                args.test, gen, output=args.out / f"eval_{start}_{fraction:g}", quick=True, plots=False
            )
            rows.append(
                {
                    "fraction": fraction,
                    "rows": n,
                    "start": start,
                    "epochs": epochs,
                    "minutes": round(minutes, 2),
                    "val_loss": result.history[-1].get("val_loss") if result.history else None,
                    **_headline(metrics),
                    "truth": _headline({"candidate_vs_reference": metrics.get("truth_vs_truth", {})}),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    doc = {
        "source": str(args.source),
        "target": str(args.target),
        "test": str(args.test),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "source_epochs": args.source_epochs,
        "source_minutes": round(source_minutes, 2),
        "config": config,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load": os.getloadavg()[0],
        "rows": rows,
    }
    (args.out / "transfer.json").write_text(json.dumps(doc, indent=2))
    keys = [k for k in ("w1m", "w1p", "w1efp", "fpd", "kpd", "w1x100_mean", "auc") if any(k in r for r in rows)]
    print("| target rows | start | epochs | minutes | val loss | " + " | ".join(keys) + " |")
    print("|---:|---|---:|---:|---:|" + "---:|" * len(keys))
    for r in rows:
        cells = " | ".join(r.get(k, "–") for k in keys)
        print(f"| {r['rows']} | {r['start']} | {r['epochs']} | {r['minutes']} | {r['val_loss']:.4g} | {cells} |")
    truth = rows[-1]["truth"] if rows else {}
    print("| truth vs truth | | | | | " + " | ".join(truth.get(k, "–") for k in keys) + " |")


if __name__ == "__main__":
    main()
