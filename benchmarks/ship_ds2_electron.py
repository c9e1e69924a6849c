"""Package a trained ds2 electron run as the shipped model ``ds2-electron`` with its model card.

The recipe (each step resumable; figures in ``docs/benchmarks.md``)::

    showerforge simulate calo --geometry ds2 --particle e- --energy 1:100GeV --spectrum log-uniform \\
        --n 30000 --seed 1001 --shard-size 500 --sampling-fraction 0.03196973047403725 -o ds2_e_train.h5
    showerforge simulate calo --geometry ds2 --particle e- --energy 1:100GeV --spectrum log-uniform \\
        --n 10000 --seed 2002 --shard-size 500 --sampling-fraction 0.03196973047403725 -o ds2_e_test.h5
    showerforge train --data ds2_e_train.h5 --model cfm-factorised -o run_ds2 --threads 2 \\
        --epochs 110 --max-minutes 85
    showerforge generate --model run_ds2 --energies-from ds2_e_test.h5 --seed 1 -o ds2_gen.h5
    showerforge evaluate --reference ds2_e_test.h5 --candidate ds2_gen.h5 --quick -o report_gen
    showerforge evaluate --reference ds2_e_test.h5 --candidate ds2_train_10k.h5 --quick -o report_floor
    python benchmarks/ship_ds2_electron.py --run run_ds2 --train ds2_e_train.h5 --test ds2_e_test.h5 \\
        --metrics report_gen/metrics.json --floor report_floor/metrics.json

``--floor`` is Geant4 against independent Geant4 at the same sample size (the first 10k showers
of the training file, another seed, against the test file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.runs import read_checkpoint
from showerforge.runs.shipped import PRETRAINED_DIR, export_pretrained

__all__ = ["main", "auc_text"]


def auc_text(metrics: dict[str, Any], kind: str) -> str:
    """``value ± error`` of a classifier AUC in a metrics.json (candidate vs reference)."""
    a = metrics["candidate_vs_reference"]["classifier"][kind]["auc"]
    return f"{a['value']:.3f} ± {a['error']:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--train", type=Path, required=True, help="training file (for its provenance)")
    ap.add_argument("--test", type=Path, required=True, help="independent Geant4 test file")
    ap.add_argument("--metrics", type=Path, required=True, help="metrics.json: model vs the test file")
    ap.add_argument(
        "--floor",
        type=Path,
        default=None,
        help="metrics.json: Geant4 vs Geant4, same size (default: the floor inside --metrics)",
    )
    ap.add_argument(
        "--card-extra", type=Path, default=None, help="JSON merged into the card (e.g. a distillation entry)"
    )
    ap.add_argument("--name", default="ds2-electron")
    ap.add_argument("--note", default="")
    ap.add_argument("--device", default="CPU, 2 threads (2-core x86_64)", help="where it was trained, in words")
    args = ap.parse_args(argv)
    ckpt = read_checkpoint(args.run)
    with h5py.File(args.train) as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items() if k != "geometry"}
    m = json.loads(args.metrics.read_text())
    fl = json.loads(args.floor.read_text()) if args.floor else {"candidate_vs_reference": m["reference_vs_reference"]}
    with h5py.File(args.test) as f:  # mean E_tot / E_inc of the test showers, read in chunks
        inc = f["incident_energies"][:, 0].astype("f8")
        test_seed = int(f.attrs.get("seed", -1))
        etot = [f["showers"][lo : lo + 2000].sum(axis=1, dtype="f8") for lo in range(0, len(inc), 2000)]
    etot_mean = float((np.concatenate(etot) / inc).mean())
    hist = ckpt["history"]
    n_test = m["candidate_vs_reference"]["n_showers"]
    card = {
        "summary": "e- showers in ds2 (CaloChallenge dataset-2 layout, 45 x 16 x 9 = 6480 voxels), 1-100 GeV",
        "geometry": "ds2",
        "particle": "e-",
        "energy_range_gev": [1, 100],
        "units": "MeV",
        "reference": {
            "generator": f"Geant4 {attrs.get('geant4_version', '?')} via showerforge simulate calo",
            "physics_list": attrs.get("physics_list"),
            "physics_data": attrs.get("physics_data"),
            "production_cut_mm": attrs.get("production_cut_mm"),
            "seed": int(attrs.get("seed", -1)),
            "n_showers": int(attrs.get("n_showers", 0)),
            "spectrum": attrs.get("spectrum"),
            "sampling_fraction": float(attrs.get("sampling_fraction", 0.0)),
            "test_seed": test_seed,
            "n_test_showers": len(inc),
            "etot_over_einc_mean": round(etot_mean, 5),
        },
        "training": {
            "epochs": int(ckpt["epoch"]),
            "minutes": round(sum(h["seconds"] for h in hist) / 60, 1),
            "showers_per_s": round(sum(h.get("showers_per_s", 0) for h in hist) / max(1, len(hist))),
            "device": args.device,
            "val_loss": hist[-1]["val_loss"],
        },
        "fidelity": {
            "test": f"{n_test[0]} independent Geant4 showers (seed {test_seed}) vs {n_test[1]} generated",
            "protocol": "quick classifier (3 x 256, 15 epochs, 1 repeat)",
            "high_level_auc": auc_text(m, "high_level"),
            "low_level_auc": auc_text(m, "low_level"),
            "floor_high_level_auc": auc_text(fl, "high_level"),
            "floor_low_level_auc": auc_text(fl, "low_level"),
        },
        "note": args.note,
    }
    if args.card_extra is not None:
        card.update(json.loads(args.card_extra.read_text()))
    path = export_pretrained(args.run, PRETRAINED_DIR / args.name, card)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB) and its card.json")


if __name__ == "__main__":
    main()
