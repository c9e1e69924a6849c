"""Geant4 pions in the ILD-like ECal + HCal: cost, points, e/pi and the ECal/HCal energy sharing.

    python benchmarks/bench_pions.py [--energies 10,30,50,90] [--n 40] [--n-electrons 12]
                                     [--physics FTFP_BERT] [--json out.json]

One process, one Geant4 state (``ild-ecal-hcal``, a hadronic reference list, 0.7 mm cut; on
approximate hadronic data when the Geant4 data sets are not installed). pi+ and, for e/pi,
electrons of the same energies, shot at the centre of the front face, in the same geometry with
the same physics list. Per energy: CPU seconds per shower (``time.process_time``), points per
shower (non-empty sub-cells: 1.018 mm in the ECal, 10 mm in the HCal), the visible energy
(energy in the sensors, MeV) of pions and electrons and their ratio pi/e (and e/pi), the
fraction of the pions' visible and deposited energy (sensors + absorbers) in the ECal and HCal,
and the deposited fraction of the beam energy. Printed as a Markdown table.

The visible energy adds the ECal's silicon and the HCal's scintillator without weights (their
sampling fractions differ), so pi/e here is a property of this detector's raw signal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


def _ratio(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """mean(a) / mean(b) and its error (independent samples)."""
    r = float(a.mean() / b.mean())
    rel = np.hypot(a.std(ddof=1) / a.mean() / np.sqrt(len(a)), b.std(ddof=1) / b.mean() / np.sqrt(len(b)))
    return r, float(r * rel)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _run(geo: Any, particle: str, e_gev: float, n: int, seed: int, physics: str) -> tuple[Any, float]:
    from showerforge.simulate.calo_g4 import simulate_showers

    t0 = time.process_time()
    batch = simulate_showers(geo, particle, np.full(n, e_gev * 1e3), seed=seed, physics=physics)
    return batch, (time.process_time() - t0) / n


def _row(e_gev: float, pions: Any, cpu_pi: float, electrons: Any, cpu_e: float) -> dict[str, Any]:
    sec = pions.section_mev  # (N, sections, (cells, outside, absorber)); ECal = sections 0 and 1
    vis_ecal = sec[:, :2, :2].sum(axis=(1, 2))
    vis_hcal = sec[:, 2, :2].sum(axis=1)
    dep_ecal = sec[:, :2].sum(axis=(1, 2))
    dep_hcal = sec[:, 2].sum(axis=1)
    vis_pi = vis_ecal + vis_hcal
    vis_e = electrons.section_mev[:, :, :2].sum(axis=(1, 2))
    pi_e, pi_e_err = _ratio(vis_pi, vis_e)
    points = np.diff(pions.hits["offsets"])
    return {
        "energy_gev": e_gev,
        "n_pions": len(pions),
        "n_electrons": len(electrons),
        "cpu_s_per_pion": cpu_pi,
        "cpu_s_per_electron": cpu_e,
        "points": float(points.mean()),
        "points_max": int(points.max()),
        "vis_pi_mev": float(vis_pi.mean()),
        "vis_e_mev": float(vis_e.mean()),
        "pi_over_e": pi_e,
        "pi_over_e_err": pi_e_err,
        "e_over_pi": 1.0 / pi_e,
        "e_over_pi_err": pi_e_err / pi_e**2,
        "resolution_pi": float(vis_pi.std(ddof=1) / vis_pi.mean()),
        "ecal_visible_share": float(vis_ecal.sum() / vis_pi.sum()),
        "ecal_deposited_share": float(dep_ecal.sum() / (dep_ecal + dep_hcal).sum()),
        "deposited_over_e": float((dep_ecal + dep_hcal).mean() / (e_gev * 1e3)),
    }


def _print(info: dict[str, Any]) -> None:
    print(
        "\n| E (GeV) | pi+ / e- | CPU s per pi+ | CPU s per e- | points per pi+ (max) | E_vis pi+ (MeV) "
        "| E_vis e- (MeV) | pi/e | e/pi | sigma/E_vis pi+ | ECal share vis / dep | E_dep/E pi+ |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in info["rows"]:
        print(
            f"| {r['energy_gev']:g} | {r['n_pions']} / {r['n_electrons']} | {r['cpu_s_per_pion']:.3f} "
            f"| {r['cpu_s_per_electron']:.3f} | {r['points']:.0f} ({r['points_max']}) | {r['vis_pi_mev']:.0f} "
            f"| {r['vis_e_mev']:.0f} | {r['pi_over_e']:.3f} ± {r['pi_over_e_err']:.3f} "
            f"| {r['e_over_pi']:.3f} ± {r['e_over_pi_err']:.3f} | {100 * r['resolution_pi']:.1f} % "
            f"| {r['ecal_visible_share']:.3f} / {r['ecal_deposited_share']:.3f} | {r['deposited_over_e']:.3f} |"
        )
    print(
        f"\n{info['physics_list']} on {info['hadronic_data']} hadronic data, {info['physics_data']} EM data; "
        f"machine {info['machine']}, {info['date']}, load {info['load'][0]:.2f} {info['load'][1]:.2f} "
        f"{info['load'][2]:.2f} (1/5/15 min); command: {info['command']}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--energies", default="10,30,50,90", help="beam energies in GeV")
    ap.add_argument("--n", type=int, default=40, help="pions per energy")
    ap.add_argument("--n-electrons", type=int, default=12, help="electrons per energy (for e/pi)")
    ap.add_argument("--physics", default="FTFP_BERT", choices=["FTFP_BERT", "QGSP_BERT"])
    ap.add_argument("--seed", type=int, default=321)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from showerforge.simulate.g4data import ensure_geant4_env

    data = ensure_geant4_env(hadronic=True)
    from showerforge.geometry import PRESETS

    geo = PRESETS["ild-ecal-hcal"]
    warm, _ = _run(geo, "pi+", 1.0, 1, args.seed, args.physics)  # builds the tables outside the timing
    rows = []
    for k, e_gev in enumerate(float(e) for e in args.energies.split(",")):
        pions, cpu_pi = _run(geo, "pi+", e_gev, args.n, args.seed + 2 * k + 1, args.physics)
        electrons, cpu_e = _run(geo, "e-", e_gev, args.n_electrons, args.seed + 2 * k + 2, args.physics)
        rows.append(_row(e_gev, pions, cpu_pi, electrons, cpu_e))
        print(f"{e_gev:g} GeV done ({cpu_pi:.2f} CPU s per pion, {cpu_e:.2f} per electron)", flush=True)
    info = {
        "machine": f"{platform.machine()}, {_cpu_name()}, {os.cpu_count()} cores",
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "load": list(os.getloadavg()),
        "command": shlex.join([os.path.basename(sys.executable), *sys.argv]),
        "physics_list": warm.provenance["physics_list"],
        "hadronic_data": data.get("hadronic_data", "?"),
        "physics_data": data.get("physics_data", "?"),
        "rows": rows,
    }
    _print(info)
    if args.json:
        args.json.write_text(json.dumps(info, indent=1))
    sys.stdout.flush()
    os._exit(0)  # Geant4 may crash at interpreter teardown


if __name__ == "__main__":
    main()
