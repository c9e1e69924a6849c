"""Evaluate a trained 30-particle JetNet run per jet type and package it as the shipped ``jetnet30``.

The recipe (each step resumable; figures in ``docs/benchmarks.md``, section "The shipped jetnet30")::

    bash benchmarks/reference_campaigns.sh      # jets30_train.h5 (5 x 100k), jets30_test.h5 (5 x 20k)
    showerforge train --data jets30_train.h5 --model cfm-set --condition type+mass -o run_j30 --epochs 30 --threads 1
    python benchmarks/ship_jetnet30.py --run run_j30 --train jets30_train.h5 --test jets30_test.h5 --work j30
    showerforge distill --model run_j30 --steps 1 --n-pairs 50000 -o run_j30_1step
    python benchmarks/ship_jetnet30.py --name jetnet30-1step --run run_j30_1step ... --work j30_1step

For every type the script generates ``--n`` jets (``showerforge generate --type T --seed S``) and
evaluates them with ``showerforge evaluate --reference TEST.h5:T``: the candidate against one random
half of the type's test jets, the two halves against each other as the truth-vs-truth floor at the
same size (jetnet's conventions). It prints one markdown table per type with the ratio
candidate / max(truth value, truth error) and whether it is within ``--factor`` (2, the target),
writes ``WORK/fidelity.json`` and, unless ``--no-export``, the shipped folder with its model card.
Generated files and reports already present in ``WORK`` are reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import showerforge as sf
from showerforge.data.jet_preprocess import jet_mass_gev
from showerforge.data.jetnet import read_jets
from showerforge.evaluation.jets.separation import RESONANCES, mass_window, type_separation_auc
from showerforge.runs import read_checkpoint
from showerforge.runs.shipped import PRETRAINED_DIR, export_pretrained

__all__ = ["main", "type_row", "markdown_table", "physics_checks"]

METRICS = ("W1M", "W1P", "W1EFP", "FPD", "KPD")
SEPARATION_JETS = 600  # jets per type in each g-vs-t classifier (the size tests/test_shipped_jets.py uses)
SEPARATION_REPEATS = 5
CONDITION_WORDS = {
    "type": "the type",
    "type+pt": "the type and the jet pT",
    "type+mass": "the type and the relative jet mass m/pT (drawn per type and pT from the training jets)",
}


def _spec_arrays(spec: str | Path) -> tuple[np.ndarray, np.ndarray]:
    d = read_jets(spec)
    return d.particle_features, jet_mass_gev(d.particle_features, d.jet_features[:, 0])


def _first_per_type(settings: dict[str, Any]) -> dict[str, Any]:
    """The first merged shard of each jet type (its Pythia8 settings)."""
    out: dict[str, Any] = {}
    for shard in settings.get("merged_from", []):
        jet_type = shard.get("settings", {}).get("config", {}).get("jet_type")
        if jet_type and jet_type not in out:
            out[jet_type] = shard
    return out


def physics_checks(files: dict[str, str | Path], seed: int) -> dict[str, Any]:
    """Mass windows of t, w, z (mass of the kept particles, GeV) and the g-vs-t separation AUC
    (mean of SEPARATION_REPEATS disjoint samples of SEPARATION_JETS per type, error of the mean)."""
    out: dict[str, Any] = {"mass_window": {}}
    arrays = {t: _spec_arrays(spec) for t, spec in files.items()}
    for jet_type, (centre, half) in RESONANCES.items():
        if jet_type in arrays:
            out["mass_window"][jet_type] = {
                "centre_gev": centre,
                "half_width_gev": half,
                **mass_window(arrays[jet_type][1], centre, half),
            }
    if "g" in arrays and "t" in arrays:
        n = SEPARATION_JETS
        aucs = [
            type_separation_auc(arrays["g"][0][i * n : (i + 1) * n], arrays["t"][0][i * n : (i + 1) * n], seed=seed + i)
            for i in range(SEPARATION_REPEATS)
        ]
        values = np.array([a.value for a in aucs])
        out["separation_g_t"] = {
            "jets_per_type": n,
            "repeats": SEPARATION_REPEATS,
            "auc": float(values.mean()),
            "error": float(values.std(ddof=1) / np.sqrt(values.size)),
            "single_error": float(np.mean([a.error for a in aucs])),
        }
    return out


def _value(block: dict[str, Any], key: str) -> dict[str, float]:
    entry = block[key]
    if key == "W1P":
        entry = entry["mean"]
    return {"value": float(entry["value"]), "error": float(entry["error"])}


def type_row(metrics: dict[str, Any], factor: float) -> dict[str, Any]:
    """Per metric: candidate and truth (value, error), ratio to max(truth, truth error), within ``factor``."""
    cand, truth = metrics["candidate_vs_reference"], metrics["truth_vs_truth"]
    row: dict[str, Any] = {"n_jets": cand["n_jets"], "truth_n_jets": truth["n_jets"]}
    for key in METRICS:
        c, t = _value(cand, key), _value(truth, key)
        scale = max(t["value"], t["error"])
        ratio = c["value"] / scale if scale > 0 else float("inf")
        row[key] = {"candidate": c, "truth": t, "ratio": round(ratio, 2), "within": bool(ratio <= factor)}
    row["all_within"] = all(row[k]["within"] for k in METRICS)
    return row


def _pm(entry: dict[str, float]) -> str:
    return f"{entry['value']:.3g} ± {entry['error']:.1g}"


def markdown_table(rows: dict[str, dict[str, Any]], factor: float) -> str:
    """One line per type: each metric as candidate (truth) and the ratio."""
    head = "| type | n | " + " | ".join(f"{k} model | {k} truth | ratio" for k in METRICS) + " |"
    sep = "|---|---:|" + "---:|---:|---:|" * len(METRICS)
    lines = [head, sep]
    for jet_type, row in rows.items():
        cells = []
        for key in METRICS:
            m = row[key]
            mark = "" if m["within"] else " ✗"
            cells.append(f"{_pm(m['candidate'])} | {_pm(m['truth'])} | {m['ratio']:.2f}{mark}")
        lines.append(f"| {jet_type} | {row['n_jets'][1]} vs {row['n_jets'][0]} | " + " | ".join(cells) + " |")
    lines.append(f"\nratio = model / max(truth value, truth error); ✗: above {factor:g}×")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="run directory of the trained (or distilled) model")
    ap.add_argument("--train", type=Path, required=True, help="training file (for its provenance)")
    ap.add_argument("--test", type=Path, required=True, help="independent Pythia8 test file")
    ap.add_argument("--work", type=Path, required=True, help="folder for generated files and reports")
    ap.add_argument("--types", default="g,q,t,w,z")
    ap.add_argument("--n", type=int, default=10_000, help="generated jets per type (default 10000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--factor", type=float, default=2.0, help="target: model within FACTOR x truth (default 2)")
    ap.add_argument("--name", default="jetnet30")
    ap.add_argument("--note", default="")
    ap.add_argument("--device", default="CPU, 1 thread (2-core x86_64, shared)")
    ap.add_argument("--no-export", action="store_true", help="evaluate only")
    args = ap.parse_args(argv)
    if args.n < SEPARATION_JETS * SEPARATION_REPEATS:
        ap.error(f"--n must be >= {SEPARATION_JETS * SEPARATION_REPEATS} (the g-vs-t checks use disjoint samples)")
    args.work.mkdir(parents=True, exist_ok=True)
    types = [t.strip() for t in args.types.split(",") if t.strip()]
    rows: dict[str, dict[str, Any]] = {}
    for jet_type in types:
        gen = args.work / f"gen_{jet_type}.h5"
        if not gen.exists():
            t0 = time.perf_counter()
            sf.generate_file(args.run, output=gen, n=args.n, types=jet_type, seed=args.seed, progress=None)
            ms = (time.perf_counter() - t0) / args.n * 1e3
            print(f"{jet_type}: generated {args.n} jets in {ms:.3f} ms/jet", flush=True)
        report = args.work / f"report_{jet_type}"
        if (report / "metrics.json").exists():
            metrics = json.loads((report / "metrics.json").read_text())
        else:
            metrics = sf.evaluate(f"{args.test}:{jet_type}", gen, output=report, seed=args.seed)
        rows[jet_type] = type_row(metrics, args.factor)
        print(f"{jet_type}: all within {args.factor:g}x: {rows[jet_type]['all_within']}", flush=True)
    table = markdown_table(rows, args.factor)
    print(table)
    checks = {
        "reference": physics_checks({t: f"{args.test}:{t}" for t in types}, args.seed),
        "model": physics_checks({t: args.work / f"gen_{t}.h5" for t in types}, args.seed),
    }
    print(json.dumps(checks, indent=1))
    fidelity = {
        "protocol": f"per type: {args.n} generated jets (seed {args.seed}) against one random half of the type's "
        "independent Pythia8 test jets; truth = the two halves (showerforge evaluate, jetnet's conventions)",
        "target_factor": args.factor,
        "ratio_to_truth": {t: ", ".join(f"{k} {row[k]['ratio']:.2f}" for k in METRICS) for t, row in rows.items()},
        "per_type": rows,
        "physics_checks": checks,
    }
    (args.work / "fidelity.json").write_text(json.dumps(fidelity, indent=2))
    (args.work / "table.md").write_text(table + "\n")
    if args.no_export:
        return
    ckpt = read_checkpoint(args.run)
    hist = ckpt["history"]
    condition = (
        json.loads(ckpt["preprocessing"])["conditioning"]["kind"]
        if isinstance(ckpt["preprocessing"], str)
        else ckpt["preprocessing"]["conditioning"]["kind"]
    )
    test = read_jets(args.test)
    train_attrs = read_jets(args.train).attrs
    settings = test.attrs.get("settings", {})
    settings = json.loads(settings) if isinstance(settings, str) else dict(settings)
    first = (settings.get("merged_from") or [{}])[0].get("settings", {})
    card = {
        "summary": "JetNet-style jets (anti-kt R = 0.8, 800-1600 GeV pT, |eta| < 2.5, 30 highest-pT particles) "
        f"of five types (g, q, t, w, z), one model conditioned on {CONDITION_WORDS[condition]}",
        "jet_types": types,
        "units": "particles: eta_rel, phi_rel (rad), pt_rel = pT / jet pT; jets: pT, mass in GeV",
        "reference": {
            "generator": f"Pythia8 {first.get('pythia_version', '?')} + FastJet {first.get('fastjet_version', '?')}",
            "processes": {t: s["settings"].get("processes") for t, s in _first_per_type(settings).items()},
            "mpi": first.get("mpi"),
            "radius": first.get("radius"),
            "pt_window_gev": [first.get("config", {}).get("pt_min_gev"), first.get("config", {}).get("pt_max_gev")],
            "train_seed": train_attrs.get("campaign_seed"),
            "test_seed": test.attrs.get("campaign_seed"),
            "n_train_jets": int(ckpt["provenance"].get("n_jets", 0)) or None,
            "n_test_jets_per_type": int(json.loads(str(test.attrs.get("n_per_type", "0")))),
        },
        "training": {
            "data": Path(str(ckpt["provenance"].get("path", args.train))).name,
            "epochs": int(ckpt["epoch"]),
            "minutes": round(sum(h["seconds"] for h in hist) / 60, 1),
            "device": args.device,
            "val_loss": hist[-1]["val_loss"],
        },
        "fidelity": fidelity,
        "note": args.note,
    }
    path = export_pretrained(args.run, PRETRAINED_DIR / args.name, card)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB) and its card.json")


if __name__ == "__main__":
    main()
