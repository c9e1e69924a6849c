"""Power of the shower classifier tests: AUC against the size of a known distortion.

Reference and candidate are two independent Geant4 samples of the same ds2 electrons (the candidate
from a second file, so the 0 % point is the null); the candidate is then given a depth-dependent
miscalibration: voxel energies in layer ``l`` (of ``L``) are scaled by ``1 - k l / (L - 1)``, with
``k`` chosen so that the mean E_tot/E_inc drops by the stated fraction. For each sample size and
distortion, three tests run on the high-level features: the verdict classifier
(:meth:`ClassifierConfig.verdict`), the quick classifier and the CaloChallenge protocol (one run;
1,000 showers only unless ``--full-at-10k``).

Usage::

    python benchmarks/power_curve.py --reference REF.h5 --candidate OTHER_G4.h5 \\
        --sizes 1000,10000 --distortions 0,0.02,0.05,0.1,0.14 -o power.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from showerforge.data.calo import CaloFile
from showerforge.evaluation.showers.classifier import (
    ClassifierConfig,
    classifier_test,
    high_level_inputs,
    verdict_inputs,
)
from showerforge.evaluation.showers.features import compute_features, default_threshold_mev


def _read(path: str, n: int) -> tuple[np.ndarray, np.ndarray, object]:
    with CaloFile.open(path) as f:
        inc, sh = f.read(0, min(n, len(f)))
        return inc.astype(np.float64), sh, f.geometry


def _distort(showers: np.ndarray, n_layers: int, drop: float) -> np.ndarray:
    """Depth-dependent miscalibration lowering the mean E_tot by ``drop`` (fraction)."""
    per_layer = showers.reshape(len(showers), n_layers, -1)
    e_layer = per_layer.sum(axis=2, dtype=np.float64)
    depth = np.arange(n_layers) / (n_layers - 1)
    k = drop / np.mean((e_layer * depth).sum(1) / np.maximum(e_layer.sum(1), 1e-9))
    return (per_layer * (1.0 - k * depth)[None, :, None]).reshape(showers.shape).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--candidate", required=True, help="an independent Geant4 file of the same configuration")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--distortions", default="0,0.02,0.05,0.1,0.14")
    ap.add_argument("--full-at-10k", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    drops = [float(d) for d in args.distortions.split(",")]
    n_max = max(sizes)
    inc_r, sh_r, geo = _read(args.reference, n_max)
    inc_c, sh_c, _ = _read(args.candidate, n_max)
    thr = default_threshold_mev(geo)
    feat_r = compute_features(inc_r, sh_r, geo, threshold_mev=thr)
    out: list[dict[str, object]] = []
    path = Path(args.output)
    for drop in drops:
        feat_c = compute_features(inc_c, _distort(sh_c, geo.n_layers, drop), geo, threshold_mev=thr)
        shift = float(np.mean(feat_c["etot_over_einc"]) / np.mean(feat_r["etot_over_einc"]) - 1.0)
        for n in sizes:
            fr = {k: v[:n] for k, v in feat_r.items()}
            fc = {k: v[:n] for k, v in feat_c.items()}
            tests = {
                "verdict": (verdict_inputs, ClassifierConfig.verdict()),
                "quick_high": (high_level_inputs, ClassifierConfig.quick()),
            }
            if n <= 1000 or args.full_at_10k:
                tests["challenge_high"] = (high_level_inputs, ClassifierConfig(repeats=1))
            for name, (inputs, cfg) in tests.items():
                t0 = time.perf_counter()
                res = classifier_test(inputs(fr, geo), inputs(fc, geo), config=cfg, seed=args.seed)
                row = {
                    "distortion": drop,
                    "etot_shift": shift,
                    "n_per_class": n,
                    "test": name,
                    "auc": res.auc.value,
                    "auc_error": res.auc.error,
                    "seconds": time.perf_counter() - t0,
                }
                out.append(row)
                print(json.dumps(row), flush=True)
                path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
