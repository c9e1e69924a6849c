"""Package a trained ILD photon point-cloud run as the shipped model ``ild-photon`` with its model card.

The recipe (each step resumable; figures in ``docs/benchmarks.md``, section "Point-cloud
generator")::

    bash benchmarks/reference_campaigns.sh        # ild_photons_train.h5 (50k), ild_photons_test.h5 (10k)
    showerforge train --data ild_photons_train.h5 --model cfm-points -o run_ild --threads 1 --max-minutes 85
    showerforge generate --model run_ild --energies-from ild_photons_test.h5 --seed 1 -o ild_gen.h5
    showerforge evaluate --reference ild_photons_test.h5 --candidate ild_gen.h5 -o report_ild
    python benchmarks/ship_ild_photon.py --run run_ild --train ild_photons_train.h5 \\
        --test ild_photons_test.h5 --metrics report_ild/metrics.json
    showerforge distill --model run_ild --steps 1 --n-pairs 3000 -o run_ild_1step
    (generate and evaluate the student the same way)
    python benchmarks/ship_ild_photon.py --name ild-photon-1step --run run_ild_1step ...

The point evaluation compares the candidate with half of the reference file and puts the other
half beside it as the Geant4-vs-Geant4 floor at the same size.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.points import read_points
from showerforge.runs import read_checkpoint
from showerforge.runs.shipped import PRETRAINED_DIR, export_pretrained

__all__ = ["main", "fidelity", "calibrations"]


def _pm(entry: dict[str, Any]) -> str:
    return f"{entry['value']:.3g} ± {entry['error']:.2g}"


def fidelity(metrics: dict[str, Any]) -> dict[str, Any]:
    """W1 x 100 per observable and the classifier AUC, each beside its floor, from a points metrics.json."""
    cand, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    w1 = {k: {"model": _pm(v), "floor": _pm(floor["w1x100"][k])} for k, v in cand["w1x100"].items()}
    return {
        "test": f"{cand['n_showers'][0]} independent Geant4 showers vs {cand['n_showers'][1]} generated "
        f"(floor: {floor['n_showers'][0]} vs {floor['n_showers'][1]} Geant4)",
        "w1x100": w1,
        "w1x100_mean": {"model": _pm(cand["w1x100_mean"]), "floor": _pm(floor["w1x100_mean"])},
        "high_level_auc": {"model": _pm(cand["classifier"]["auc"]), "floor": _pm(floor["classifier"]["auc"])},
    }


def response(path: Path) -> dict[str, float]:
    """Mean and spread of E_vis / E_inc of a point file (visible energy in the sensors)."""
    clouds = read_points(path)
    ratio = np.bincount(clouds.event_index(), weights=clouds.points[:, 3], minlength=len(clouds)) / clouds.incident_mev
    return {"evis_over_einc_mean": round(float(ratio.mean()), 6), "evis_over_einc_std": round(float(ratio.std()), 6)}


def calibrations(state: Any) -> dict[str, Any]:
    """Which sampler calibrations the run carries (the preprocessing state), in a few words each."""
    pre = json.loads(state) if isinstance(state, str) else dict(state)
    out: dict[str, Any] = {}
    if pre.get("occupancy"):
        out["occupancy"] = f"points per layer, {pre['occupancy'].get('refinements', 0)} refinement rounds"
    if pre.get("radial"):
        edges = pre["radial"].get("energy_edges_mev", [])
        out["radial_energy"] = (
            f"{len(pre['radial']['edges_mm'])} radial bins x {len(edges) + 1} incident-energy bins "
            f"(edges {', '.join(f'{e / 1e3:.1f}' for e in edges)} GeV) per layer"
        )
    if pre.get("cog_scale") is not None:
        shift = pre.get("cog_shift") or [0.0, 0.0]
        out["centre_of_gravity"] = (
            f"x, y scaled by {pre['cog_scale'][0]:.3f}, {pre['cog_scale'][1]:.3f} and shifted by "
            f"{shift[0]:+.3f}, {shift[1]:+.3f} mm"
        )
    if pre.get("cells"):
        edges = pre["cells"].get("energy_edges_mev", [])
        target = pre.get("cells_target") or {}
        out["cell_energy"] = (
            f"each cell's energy mapped to the spectrum of {target.get('n_showers', '?')} training showers' cells, "
            f"{len(edges) + 1} incident-energy bins, fitted on {pre['cells'].get('n_showers', '?')} generated showers"
        )
    if pre.get("core"):
        out["core_split"] = "one point per layer on the axis carries the core energy drawn by the shower flow"
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--train", type=Path, required=True, help="training file (for its provenance)")
    ap.add_argument("--test", type=Path, required=True, help="independent Geant4 test file")
    ap.add_argument("--metrics", type=Path, required=True, help="metrics.json of showerforge evaluate")
    ap.add_argument("--name", default="ild-photon")
    ap.add_argument("--note", default="")
    ap.add_argument("--device", default="CPU, 1 thread (2-core x86_64, shared)")
    ap.add_argument(
        "--train-seed",
        type=int,
        default=None,
        help="seed of the training campaign (default: the file's seed attribute)",
    )
    args = ap.parse_args(argv)
    ckpt = read_checkpoint(args.run)
    train = read_points(args.train, max_events=1)
    test_attrs = read_points(args.test, max_events=1).attrs
    hist = ckpt["history"]
    # a file merged from a campaign's finished shards may lack the campaign's attributes: the test
    # file was made by the same script with the same physics settings
    attrs = {**test_attrs, **train.attrs}
    attrs["seed"] = args.train_seed if args.train_seed is not None else train.attrs.get("seed", -1)
    card = {
        "summary": "photon showers in ild-ecal (30 Si-W layers, 5.09 mm cells, 5 x 5 sub-cells) as point clouds, "
        "10-90 GeV",
        "geometry": "ild-ecal",
        "particle": "gamma",
        "energy_range_gev": [10, 90],
        "units": "x, y mm; layer index; energy MeV (visible, in the silicon)",
        "reference": {
            "generator": f"Geant4 {attrs.get('geant4_version', '?')} via showerforge simulate calo --points",
            "physics_list": attrs.get("physics_list"),
            "physics_data": attrs.get("physics_data"),
            "production_cut_mm": attrs.get("production_cut_mm"),
            "seed": int(attrs.get("seed", -1)),
            "n_showers": int(ckpt["provenance"].get("n_showers", 0)),
            "spectrum": attrs.get("spectrum"),
            "test_seed": int(test_attrs.get("seed", -1)),
            **response(args.test),
        },
        "training": {
            "data": ckpt["provenance"].get("path"),
            "epochs": int(ckpt["epoch"]),
            "minutes": round(sum(h["seconds"] for h in hist) / 60, 1),
            "device": args.device,
            "val_loss": hist[-1]["val_loss"],
        },
        "calibrations": calibrations(ckpt["preprocessing"]),
        "fidelity": fidelity(json.loads(args.metrics.read_text())),
        "note": args.note,
    }
    path = export_pretrained(args.run, PRETRAINED_DIR / args.name, card)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB) and its card.json")


if __name__ == "__main__":
    main()
