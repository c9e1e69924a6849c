"""Dimensionality study: how well do flow-matching and normalizing-flow morphing correct a
mis-modelled simulation as the number of corrected inputs grows?

"MC" and "data" are two Geant4 samples of photons in the CMS-inspired ``pbwo4`` calorimeter,
differing as real ones do (see docs/refinement.md): the "data" sample uses another EM physics
option and production cut, and its readout has a 2 % higher energy scale, a 1 % per-channel
intercalibration spread and 15 % more electronic noise than the MC's readout model:

    MC:    Geant4 standard EM, cut 0.7 mm; noise 12 MeV per channel, zero suppression at 2 sigma
    data:  Geant4 option1 EM, cut 1.0 mm; scale 1.02, intercalibration 1 %, noise 14 MeV, 2 sigma

For each input set (7 shower shapes -> 10 layer energies -> 250 voxels) and method (fm, flow)
a refiner is fitted on the first ``--n-fit`` events of each sample and applied to the remaining
MC events; a classifier (``ClassifierConfig.verdict``: standardised inputs, early stopping)
then separates held-out data from MC before and after refinement, on the corrected inputs and
on the shower shapes computed from them. The floor is data vs data at the same sample sizes.

    python benchmarks/refine_dims.py --mc pbwo4_mc_g4.h5 --data pbwo4_data_g4.h5 \
        --work /work/data/refine/dims --plot docs/img/refine_dims.png

Steps whose outputs exist are skipped (re-running resumes). Results: WORK/results.json and a
Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MC_READOUT = {"scale": 1.0, "intercalibration": 0.0, "noise_mev": 12.0, "zero_suppression_sigma": 2.0}
DATA_READOUT = {"scale": 1.02, "intercalibration": 0.01, "noise_mev": 14.0, "zero_suppression_sigma": 2.0}
INPUTS = ("shapes", "layers", "voxels")
METHODS = ("fm", "flow")


def prepare(args: argparse.Namespace) -> dict[str, Path]:
    """Apply the readout models and split into fit / test files."""
    from showerforge.data.calo import open_showers, write_showers
    from showerforge.refine import detector_response

    out = {}
    for name, path, readout, seed in (("mc", args.mc, MC_READOUT, 21), ("data", args.data, DATA_READOUT, 22)):
        with open_showers(path) as f:
            inc, sh = f.read()
            geo = f.geometry
        inc = np.asarray(inc, np.float64).reshape(-1)
        rec = detector_response(sh, seed=seed, calibration_seed=99, **readout)
        n_fit = args.n_fit
        for part, rows in (("fit", slice(0, n_fit)), ("test", slice(n_fit, None))):
            p = args.work / f"{name}_{part}.h5"
            if not p.exists():
                write_showers(p, inc[rows], rec[rows], geo, {"readout_model": json.dumps(readout), "source": str(path)})
            out[f"{name}_{part}"] = p
    return out


def block(path: Path, inputs: str, refined: dict | None = None) -> np.ndarray:
    """Classifier inputs: [log E_inc, the block]; layers and voxels as [E / E_inc, E_i / E] (the
    same information, in a form where the precisely measured total is one input)."""
    from showerforge.refine import load_events
    from showerforge.refine.inputs import block_values

    ev = load_events(path)
    values = block_values(ev, inputs)
    if refined is not None and "refined_inputs" in refined and inputs == "shapes":
        values = refined["refined_inputs"]
    if inputs != "shapes":
        total = np.clip(values, 0, None).sum(axis=1)
        values = np.column_stack([total / ev.incident_mev, values / np.where(total > 0, total, 1.0)[:, None]])
    return np.column_stack([np.log(ev.incident_mev), values])


def auc(a: np.ndarray, b: np.ndarray, seed: int) -> list[float]:
    from showerforge.evaluation.showers.classifier import ClassifierConfig, classifier_test

    r = classifier_test(b, a, config=ClassifierConfig.verdict(), seed=seed)
    return [round(r.auc.value, 4), round(r.auc.error, 4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mc", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--n-fit", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--only", default=None, help="comma-separated input sets to run (default: all)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)
    from showerforge.refine import apply_refiner, fit_refiner, load_events
    from showerforge.refine.inputs import shower_shapes

    files = prepare(args)
    res_path = args.work / "results.json"
    results = json.loads(res_path.read_text()) if res_path.exists() else {}

    def save(key: str) -> None:  # merge: several processes may run different input sets (--only)
        on_disk = json.loads(res_path.read_text()) if res_path.exists() else {}
        on_disk[key] = results[key]
        tmp = res_path.with_suffix(".part")
        tmp.write_text(json.dumps(on_disk, indent=2))
        tmp.replace(res_path)

    n_test = len(load_events(files["data_test"]))
    data_fit_sub = args.work / "data_fit_sub.h5"
    if not data_fit_sub.exists():
        from showerforge.data.calo import open_showers, write_showers

        with open_showers(files["data_fit"]) as f:
            inc, sh = f.read()
            geo = f.geometry
        write_showers(data_fit_sub, inc[:n_test], sh[:n_test], geo)
    data_test_shapes = block(files["data_test"], "shapes")
    for inputs in args.only.split(",") if args.only else INPUTS:
        row = results.setdefault(inputs, {})
        tgt = block(files["data_test"], inputs)
        if "before" not in row:
            row["before"] = auc(block(files["mc_test"], inputs), tgt, 1)
            row["floor"] = auc(block(data_fit_sub, inputs), tgt, 1)
            row["n_inputs"] = int(tgt.shape[1] - (1 if inputs == "shapes" else 2))
            save(inputs)
        for method in METHODS:
            if method in row:
                continue
            ref = args.work / f"refiner_{method}_{inputs}"
            t0 = time.perf_counter()
            fit_refiner(files["mc_fit"], files["data_fit"], ref, method=method, inputs=inputs, epochs=args.epochs, seed=0,
                        say=print)  # fmt: skip
            fit_s = time.perf_counter() - t0
            out = args.work / f"mc_test_{method}_{inputs}.h5"
            t0 = time.perf_counter()
            refined = apply_refiner(ref, files["mc_test"], out)
            apply_s = time.perf_counter() - t0
            entry = {
                "auc": auc(block(out, inputs, refined), tgt, 2),
                "fit_s": round(fit_s, 1),
                "apply_s": round(apply_s, 2),
            }
            if inputs != "shapes":  # the shower shapes of the refined showers
                ev = load_events(out)
                shapes = np.column_stack(
                    [np.log(ev.incident_mev), shower_shapes(ev.incident_mev, ev.showers, ev.geometry)]
                )
                entry["auc_shapes"] = auc(shapes, data_test_shapes, 2)
            row[method] = entry
            save(inputs)
            print(inputs, method, entry, flush=True)
    if "shapes_before" not in results:
        results["shapes_before"] = auc(block(files["mc_test"], "shapes"), data_test_shapes, 1)
        save("shapes_before")
    results = json.loads(res_path.read_text())
    table(results, n_test, args)
    if args.plot:
        plot(results, args.plot, n_test)


def _fmt(m: list[float] | None) -> str:
    return "—" if not m else f"{m[0]:.3f} ± {m[1]:.3f}"


def table(results: dict, n_test: int, args: argparse.Namespace) -> None:
    print(f"\nAUC data vs MC ({n_test} vs {n_test} held-out photons; refiners fitted on {args.n_fit} + {args.n_fit})\n")
    print(
        "| corrected inputs | number | before | fm | flow | floor (data vs data) | shapes after fm | shapes after flow |"
    )
    print("|---|---:|---|---|---|---|---|---|")
    for inputs in INPUTS:
        r = results.get(inputs)
        if not r:
            continue
        print(
            f"| {inputs} | {r.get('n_inputs', '')} | {_fmt(r.get('before'))} | {_fmt(r.get('fm', {}).get('auc'))} | "
            f"{_fmt(r.get('flow', {}).get('auc'))} | {_fmt(r.get('floor'))} | "
            f"{_fmt(r.get('fm', {}).get('auc_shapes'))} | {_fmt(r.get('flow', {}).get('auc_shapes'))} |"
        )
    print(f"\nshower shapes before refinement: {_fmt(results.get('shapes_before'))}")


def plot(results: dict, path: Path, n_test: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(k, results[k]) for k in INPUTS if k in results and "before" in results[k]]
    x = np.array([r["n_inputs"] for _, r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    floor = np.array([r["floor"] for _, r in rows])
    ax.fill_between(x, floor[:, 0] - floor[:, 1], floor[:, 0] + floor[:, 1], color="0.85", label="floor (data vs data)")
    for key, label, style in (("before", "before", "k-o"), ("fm", "fm", "C0-s"), ("flow", "flow", "C3-^")):
        vals = [r.get(key) if key == "before" else r.get(key, {}).get("auc") for _, r in rows]
        ok = [i for i, v in enumerate(vals) if v]
        if ok:
            v = np.array([vals[i] for i in ok])
            ax.errorbar(x[ok], v[:, 0], yerr=v[:, 1], fmt=style, label=label, capsize=3)
    for xi, (name, _) in zip(x, rows):
        ax.annotate(name, (xi, 0.5), textcoords="offset points", xytext=(0, -14), ha="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("number of corrected inputs")
    ax.set_ylabel("classifier AUC, data vs MC")
    ax.set_title(f"pbwo4 photons 10-100 GeV, {n_test} vs {n_test} held out", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
