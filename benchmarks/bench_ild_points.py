"""Geant4 photons in the ILD-like ECal as point clouds: cost, points, file size and physics checks.

    python benchmarks/bench_ild_points.py [--n 200,100,60,40] [--energies 10,30,50,90] [--json out.json]

One process, one Geant4 state (ild-ecal, G4EmStandardPhysics, 0.7 mm cut), photons at fixed
energies shot at the centre of the middle cell. Per energy: CPU seconds per shower
(``time.process_time``), charged-particle steps in the sensor cells (the deposits before
clustering), points (non-empty 1.018 mm sub-cells), cells above 0.5 MIP, bytes per shower in a
point file, the visible energy's mean and resolution, and the energy-weighted depth (centre of
gravity, mm). Printed as a Markdown table for ``docs/benchmarks.md``; the linearity, the
resolution fit ``sigma/E = a/sqrt(E/GeV) (+) b`` and the slope of the depth against ln E follow,
for the visible energy and for the *calibrated* energy, where each section's cells are weighted by
its absorber thickness relative to the first section (1 for the 2.1 mm W layers, 2 for the
4.2 mm ones: the usual ILD ECal calibration, which makes the response independent of depth).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--energies", default="10,30,50,90", help="photon energies in GeV")
    ap.add_argument("--n", default="200,100,60,40", help="showers per energy")
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from showerforge.simulate.g4data import ensure_geant4_env

    ensure_geant4_env()
    from scipy.optimize import curve_fit

    from showerforge.data.points import PointClouds, fine_hits_to_points, points_to_cells, write_points
    from showerforge.geometry import PRESETS
    from showerforge.simulate.calo_g4 import simulate_showers

    geo = PRESETS["ild-ecal"].with_sampling_fraction(1.0)
    energies = [float(e) for e in args.energies.split(",")]
    counts = [int(n) for n in args.n.split(",")]
    z_layer = geo.sensor_z_mm()
    per_section = np.asarray([sec.absorber_mm / geo.stack[0].absorber_mm for sec in geo.stack])
    weight = per_section[geo.physical_section()]
    simulate_showers(geo, "gamma", np.asarray([1000.0]), seed=args.seed)  # build tables outside the timing
    rows = []
    for k, (e_gev, n) in enumerate(zip(energies, counts)):
        t0 = time.process_time()
        b = simulate_showers(geo, "gamma", np.full(n, e_gev * 1e3), seed=args.seed + k + 1)
        cpu = (time.process_time() - t0) / n
        h = b.hits
        pts = fine_hits_to_points(geo, h["layer"], h["row"], h["col"], h["mev"])
        clouds = PointClouds(pts, h["offsets"], b.incident_mev, geo)
        cells = points_to_cells(clouds, threshold_mip=0.5)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "p.h5"
            write_points(path, clouds)
            size = path.stat().st_size / n
        vis = clouds.visible_mev()
        w = weight[cells.layer] * cells.energy_mev
        e_cal = np.bincount(cells.event, weights=w, minlength=n)
        depth = np.bincount(cells.event, weights=w * z_layer[cells.layer], minlength=n) / e_cal
        rows.append(
            {
                "energy_gev": e_gev,
                "n": n,
                "cpu_s_per_shower": cpu,
                "steps": float(b.sensor_steps.mean()),
                "points": float(clouds.num_points.mean()),
                "points_max": int(clouds.num_points.max()),
                "cells": float(np.bincount(cells.event, minlength=n).mean()),
                "bytes_per_shower": size,
                "vis_mev": float(vis.mean()),
                "vis_over_e": float(vis.mean() / (e_gev * 1e3)),
                "vis_resolution": float(vis.std(ddof=1) / vis.mean()),
                "cal_over_e": float(e_cal.mean() / (e_gev * 1e3)),
                "resolution": float(e_cal.std(ddof=1) / e_cal.mean()),
                "resolution_err": float(e_cal.std(ddof=1) / e_cal.mean() / np.sqrt(2 * (n - 1))),
                "depth_mm": float(depth.mean()),
                "depth_err": float(depth.std(ddof=1) / np.sqrt(n)),
            }
        )
        print(f"{e_gev:g} GeV done ({cpu:.2f} CPU s per shower)", flush=True)

    e = np.asarray([r["energy_gev"] for r in rows])
    res = np.asarray([r["resolution"] for r in rows])
    res_err = np.asarray([r["resolution_err"] for r in rows])

    def model(x, a, b):
        return np.sqrt(a**2 / x + b**2)

    (a, b_), cov = curve_fit(model, e, res, p0=(0.16, 0.01), sigma=res_err, absolute_sigma=True, bounds=(0, 1))
    slope, intercept = np.polyfit(np.log(e), [r["depth_mm"] for r in rows], 1)
    lin = np.asarray([r["cal_over_e"] for r in rows])
    lin_vis = np.asarray([r["vis_over_e"] for r in rows])
    info = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "load": os.getloadavg()[0],
        "rows": rows,
        "resolution_fit": {
            "a": abs(a),
            "a_err": float(np.sqrt(cov[0, 0])),
            "b": abs(b_),
            "b_err": float(np.sqrt(cov[1, 1])),
        },
        "linearity_max_dev": float(np.max(np.abs(lin / lin.mean() - 1))),
        "linearity_max_dev_visible": float(np.max(np.abs(lin_vis / lin_vis.mean() - 1))),
        "depth_slope_mm_per_lnE": float(slope),
    }
    print(
        "\n| E (GeV) | showers | CPU s/shower | steps in sensors | points (max) | cells > 0.5 MIP | kB/shower "
        "| E_vis (MeV) | E_vis/E | sigma/E_vis | E_cal/E | sigma/E_cal | depth (mm) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['energy_gev']:g} | {r['n']} | {r['cpu_s_per_shower']:.3f} | {r['steps']:.0f} | {r['points']:.0f} ({r['points_max']}) "
            f"| {r['cells']:.0f} | {r['bytes_per_shower'] / 1e3:.1f} | {r['vis_mev']:.0f} | {r['vis_over_e']:.4f} "
            f"| {100 * r['vis_resolution']:.2f} % | {r['cal_over_e']:.4f} "
            f"| {100 * r['resolution']:.2f} ± {100 * r['resolution_err']:.2f} % | {r['depth_mm']:.2f} ± {r['depth_err']:.2f} |"
        )
    fit = info["resolution_fit"]
    print(
        f"\nresolution fit: sigma/E = ({100 * fit['a']:.1f} ± {100 * fit['a_err']:.1f}) %/sqrt(E/GeV) (+) "
        f"({100 * fit['b']:.1f} ± {100 * fit['b_err']:.1f}) %"
    )
    print(
        f"linearity: E_cal/E within {100 * info['linearity_max_dev']:.2f} % of its mean over {e.min():g}-{e.max():g} GeV "
        f"(E_vis/E: {100 * info['linearity_max_dev_visible']:.2f} %)"
    )
    print(f"depth: {slope:.2f} mm per unit of ln E")
    print(f"machine {info['machine']}, {info['date']}, load {info['load']:.1f}")
    if args.json:
        args.json.write_text(json.dumps(info, indent=1))
    os._exit(0)  # Geant4 may crash at interpreter teardown


if __name__ == "__main__":
    main()
