"""Geant4 reference speed: seconds per shower for the calorimeter engine.

Runs ``showerforge.simulate.calo_g4.simulate_showers`` in this process (one Geant4 state, one
core, sequential run manager) for a few energies and prints a markdown table with the machine
and the peak memory. Initialisation (geometry, physics tables) is timed separately.

    python benchmarks/bench_geant4.py                       # ds2 e- at 1, 10, 100 GeV (20/10/3)
    python benchmarks/bench_geant4.py --energies 1 10 --n 50 20 --geometry mini --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import warnings

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--geometry", default="ds2")
    ap.add_argument("--particle", default="e-")
    ap.add_argument("--energies", type=float, nargs="+", default=[1.0, 10.0, 100.0], help="GeV")
    ap.add_argument("--n", type=int, nargs="+", default=[20, 10, 3], help="showers per energy")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--physics", default="standard")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if len(args.n) != len(args.energies):
        ap.error("--n needs one count per energy")

    from showerforge.geometry import get_geometry
    from showerforge.simulate.calo_g4 import measure_sampling_fraction, simulate_showers

    geo = get_geometry(args.geometry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "approximate data" warning is reported in the table
        t0 = time.perf_counter()
        warm = simulate_showers(geo, args.particle, np.array([100.0]), args.seed, physics=args.physics)
        init_s = time.perf_counter() - t0
    prov = warm.provenance
    rows = []
    for e_gev, n in zip(args.energies, args.n):
        w0, c0 = time.perf_counter(), time.process_time()
        b = simulate_showers(geo, args.particle, np.full(n, 1000.0 * e_gev), args.seed + 1, physics=args.physics)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        sf, _ = measure_sampling_fraction(b)
        rows.append(
            {
                "energy_gev": e_gev,
                "n": n,
                "wall_s": wall,
                "cpu_s": cpu,
                "s_per_shower": wall / n,
                "cpu_s_per_shower": cpu / n,
                "sampling_fraction": sf,
            }
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    print(f"### Geant4 reference speed ({geo.name}, {args.particle}, {prov['physics_list']})\n")
    print(
        f"- machine: {_cpu_model()}, {os.cpu_count()} logical cores (1 used), {platform.system()} {platform.release()}"
    )
    print(
        f"- Geant4 {prov['geant4_version']} via geant4-pybind {prov['geant4_pybind']}, Python "
        f"{platform.python_version()}, sequential run manager, production cut {prov['production_cut_mm']} mm"
    )
    data = prov["physics_data"]
    if data == "approximate":
        data = "approximate tables built by showerforge (the real G4EMLOW data set is not installed)"
    print(f"- low-energy EM data: {data}")
    print(f"- initialisation (geometry + physics tables): {init_s:.1f} s; peak RSS {peak_mib:.0f} MiB\n")
    print("| energy | showers | wall s/shower | CPU s/shower | showers/s | visible/deposited |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['energy_gev']:g} GeV | {r['n']} | {r['s_per_shower']:.3f} | {r['cpu_s_per_shower']:.3f} | "
            f"{1.0 / r['s_per_shower']:.1f} | {100 * r['sampling_fraction']:.2f} % |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "geometry": geo.name,
                    "particle": args.particle,
                    "init_s": init_s,
                    "peak_rss_mib": peak_mib,
                    "cpu": _cpu_model(),
                    "provenance": prov,
                    "rows": rows,
                },
                f,
                indent=2,
            )
    sys.stdout.flush()
    os._exit(0)  # Geant4 may crash at interpreter teardown; everything is printed


if __name__ == "__main__":
    main()
