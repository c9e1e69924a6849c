"""Point-cloud surrogates against Geant4 on one core: seconds per ILD photon shower, in one run.

    python benchmarks/bench_points_surrogate.py --model ild-photon --model ild-photon-1step \\
        [--energies 10,30,50,90] [--geant4 40,20,12,8] [--batch 1,100] [--json out.json]

One process, one thread (``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1``). Geant4: photons at
each fixed energy in ``ild-ecal`` as ``showerforge simulate calo --points`` makes them (CPU seconds
per shower, ``time.process_time``, tables built before the timing). Each model: the whole sampler
(shower flow, point flow, inverse preprocessing, calibrations) at batch 1 (20 showers one by one)
and at batch 100 (one call of 100 showers), wall seconds per shower, and the mean number of points
per shower it made. The spectrum row is the mean over a uniform 10-90 GeV draw (the reference's
spectrum) for the surrogates and the mean of the per-energy Geant4 costs weighted by the same
draw (linear interpolation). Ratios are taken within this run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def geant4_costs(energies: list[float], counts: list[int], seed: int) -> list[float]:
    """CPU seconds per photon shower in ild-ecal at each energy (GeV)."""
    from showerforge.simulate.g4data import ensure_geant4_env

    ensure_geant4_env()
    from showerforge.geometry import PRESETS
    from showerforge.simulate.calo_g4 import simulate_showers

    geo = PRESETS["ild-ecal"].with_sampling_fraction(1.0)
    simulate_showers(geo, "gamma", np.asarray([1000.0]), seed=seed)  # tables outside the timing
    out = []
    for k, (e, n) in enumerate(zip(energies, counts)):
        t0 = time.process_time()
        simulate_showers(geo, "gamma", np.full(n, e * 1e3), seed=seed + k + 1)
        out.append((time.process_time() - t0) / n)
    return out


def model_costs(name: str, energies_gev: np.ndarray, batch: int, seed: int) -> tuple[float, float]:
    """(wall seconds per shower, mean points per shower) of a point model sampling ``energies_gev``."""
    import showerforge as sf

    model = sf.load(name)
    model.sample(np.asarray([50e3]), seed=seed)  # warm-up
    e = np.asarray(energies_gev, np.float64) * 1e3
    t0 = time.perf_counter()
    points = 0
    for lo in range(0, len(e), batch):
        clouds = model.sample(e[lo : lo + batch], seed=seed + lo, batch_size=batch)
        points += int(clouds.num_points.sum())
    return (time.perf_counter() - t0) / len(e), points / len(e)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, help="shipped name or run directory (repeatable)")
    ap.add_argument("--energies", default="10,30,50,90", help="photon energies in GeV")
    ap.add_argument("--geant4", default="40,20,12,8", help="Geant4 showers per energy")
    ap.add_argument("--batch", default="1,100")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    energies = [float(v) for v in args.energies.split(",")]
    g4 = geant4_costs(energies, [int(v) for v in args.geant4.split(",")], args.seed)
    spectrum = np.random.default_rng(args.seed).uniform(10.0, 90.0, 100)
    g4_spectrum = float(np.interp(spectrum, energies, g4).mean())
    rows: list[dict[str, Any]] = [
        {"sampler": "Geant4 (ild-ecal, points)", "batch": "-", **{f"{e:g} GeV": g for e, g in zip(energies, g4)}}
    ]
    rows[0]["10-90 GeV"] = g4_spectrum
    for name in args.model:
        for batch in (int(b) for b in args.batch.split(",")):
            row: dict[str, Any] = {"sampler": name, "batch": batch}
            n = 20 if batch == 1 else batch
            for e in energies:
                row[f"{e:g} GeV"], row[f"points {e:g} GeV"] = model_costs(name, np.full(n, e), batch, args.seed)
            row["10-90 GeV"], row["points 10-90 GeV"] = model_costs(name, spectrum[: max(n, 20)], batch, args.seed)
            row["speed-up 10-90 GeV"] = g4_spectrum / row["10-90 GeV"]
            rows.append(row)
    cols = [f"{e:g} GeV" for e in energies] + ["10-90 GeV"]
    print(
        f"machine {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"
    )
    print(f"date {datetime.now(timezone.utc).isoformat(timespec='minutes')}, one thread")
    print("| sampler | batch | " + " | ".join(f"ms/shower {c}" for c in cols) + " | speed-up vs Geant4 (10-90 GeV) |")
    print("|---|---|" + "---|" * (len(cols) + 1))
    for r in rows:
        cells = " | ".join(f"{1e3 * r[c]:.1f}" for c in cols)
        print(f"| {r['sampler']} | {r['batch']} | {cells} | {r.get('speed-up 10-90 GeV', 1.0):.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "load": os.getloadavg()[0]}, indent=1))


if __name__ == "__main__":
    main()
