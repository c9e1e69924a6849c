"""Refine a fast surrogate towards Geant4 with flow matching, and measure AUC before and after.

The source is the shipped one-step ds2 surrogate (``ds2-electron-1step``) sampled at the
incident energies of a Geant4 training file; the target is that Geant4 file. The refiner (``fm``
on the chosen inputs) is then applied to a fresh surrogate sample at the energies of an
independent Geant4 test file, and ``showerforge evaluate --quick`` compares surrogate and refined
surrogate with that test file (high- and low-level classifier AUC, with the Geant4-vs-Geant4
floor at the same sample sizes).

    python benchmarks/refine_surrogate.py --train ds2_e_train30k.h5 --test ds2_e_test.h5 \
        --work /work/data/refine/surrogate --inputs layers --epochs 60

Every step is skipped when its output exists (re-running resumes). Results: WORK/summary.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SF = [sys.executable, "-m", "showerforge"]


def run(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("a") as fh:
        fh.write("$ " + " ".join(map(str, cmd)) + "\n")
        fh.flush()
        subprocess.run(list(map(str, cmd)), check=True, stdout=fh, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def aucs(metrics: dict) -> dict:
    """Classifier AUCs (value, error) of a report, candidate and floor."""
    out = {}
    for block, tag in (("candidate_vs_reference", ""), ("reference_vs_reference", "_floor")):
        clf = metrics.get(block, {}).get("classifier", {}) or {}
        for name in ("high_level", "low_level", "verdict"):
            auc = (clf.get(name) or {}).get("auc")
            if auc:
                out[f"{name}_auc{tag}"] = [auc["value"], auc["error"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="Geant4 training file (target of the refiner)")
    ap.add_argument("--test", required=True, help="independent Geant4 test file (evaluation)")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--model", default="ds2-electron-1step")
    ap.add_argument("--inputs", default="layers")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", type=Path, default=None, help="draw every WORK/summary_*.json into this PNG and stop")
    args = ap.parse_args()
    if args.plot:
        plot(args.work, args.plot)
        return
    w = args.work
    w.mkdir(parents=True, exist_ok=True)
    log = w / "log.txt"
    times: dict[str, float] = {}
    src_train, src_test = w / "surrogate_train.h5", w / "surrogate_test.h5"
    if not src_train.exists():
        times["generate_train_s"] = run(
            SF + ["generate", "--model", args.model, "--energies-from", args.train, "--seed", 11, "-o", src_train], log
        )
    if not src_test.exists():
        times["generate_test_s"] = run(
            SF + ["generate", "--model", args.model, "--energies-from", args.test, "--seed", 12, "-o", src_test], log
        )
    ref = w / f"refiner_fm_{args.inputs}"
    if not (ref / "refiner.pt").exists():
        times["fit_s"] = run(
            SF + ["refine", "fit", "--source", src_train, "--target", args.train, "--method", "fm",
                  "--inputs", args.inputs, "--epochs", args.epochs, "--threads", args.threads, "-o", ref],
            log,
        )  # fmt: skip
    refined = w / f"surrogate_test_refined_{args.inputs}.h5"
    if not refined.exists():
        times["apply_s"] = run(
            SF + ["refine", "apply", "--refiner", ref, "--input", src_test, "--threads", args.threads, "-o", refined],
            log,
        )
    results = {}
    for name, cand in (("surrogate", src_test), (f"refined_{args.inputs}", refined)):
        rep = w / f"report_{name}"
        if not (rep / "metrics.json").exists():
            run(
                SF + ["evaluate", "--reference", args.test, "--candidate", cand, "--quick", "--no-plots", "-o", rep],
                log,
            )
        results[name] = json.loads((rep / "metrics.json").read_text())
    summary = {"inputs": args.inputs, "epochs": args.epochs, "model": args.model, "times": times}
    for name, m in results.items():
        summary[name] = aucs(m)
    (w / f"summary_{args.inputs}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2)[:3000])


def plot(work: Path, path: Path) -> None:
    """AUC (high-level, low-level, verdict) of the surrogate and of each refined surrogate, with the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = [json.loads(p.read_text()) for p in sorted(work.glob("summary_*.json"))]
    if not summaries:
        raise SystemExit(f"no summaries in {work}")
    rows = [("surrogate", summaries[0]["surrogate"])]
    rows += [(f"fm on {s['inputs']}", s[f"refined_{s['inputs']}"]) for s in summaries]
    metrics = (("high_level_auc", "high-level"), ("low_level_auc", "low-level"), ("verdict_auc", "verdict"))
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.8 / len(rows)
    for i, (label, r) in enumerate(rows):
        x = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(x, [r[m][0] - 0.5 for m, _ in metrics], width, bottom=0.5, yerr=[r[m][1] for m, _ in metrics],
               label=label, capsize=3)  # fmt: skip
    for j, (m, _) in enumerate(metrics):
        floor = rows[0][1].get(m + "_floor")
        if floor:
            ax.hlines(floor[0], j - 0.45, j + 0.45, colors="k", linestyles="--", label="floor" if j == 0 else None)
    ax.set_xticks(range(len(metrics)), [name for _, name in metrics])
    ax.set_ylabel("classifier AUC vs Geant4")
    ax.set_ylim(0.45, max(0.8, max(r[m][0] for _, r in rows for m, _ in metrics) + 0.05))
    ax.set_title("ds2-electron-1step vs Geant4 (quick protocol, 5000 vs 5000 test showers)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
