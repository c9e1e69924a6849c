"""Surrogate vs Geant4 in one run on one machine: seconds per shower and the ratio.

Geant4 (one process, one core, sequential run manager) simulates ``--n-geant4`` showers at each
energy in a fresh subprocess; then a ``cfm-voxel`` surrogate (trained run via ``--run``, or freshly
initialised: timing does not depend on the weights) samples showers at batch 1, 100 and 10,000 on
the CPU with the same number of threads (1 by default, so both use one core). Prints a markdown
table for ``docs/benchmarks.md``.

Example::

    python benchmarks/bench_speedup.py --geometry ds2 --energies 10 --n-geant4 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import textwrap

import torch

sys.path.insert(0, os.path.dirname(__file__))

from bench_surrogate import fresh_surrogate, time_per_shower  # noqa: E402

from showerforge.kinds import load as load_model  # noqa: E402

_G4 = textwrap.dedent("""
    import json, os, sys, time, resource
    from showerforge.simulate.g4data import ensure_geant4_env
    ensure_geant4_env()
    import numpy as np
    from showerforge.geometry import get_geometry
    from showerforge.simulate.calo_g4 import simulate_showers
    geo, e_gev, n = get_geometry(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    simulate_showers(geo, "e-", np.full(2, e_gev * 1e3), 99)  # initialisation + warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    simulate_showers(geo, "e-", np.full(n, e_gev * 1e3), 1)
    print(json.dumps({"wall": (time.perf_counter() - t0) / n, "cpu": (time.process_time() - c0) / n}))
    sys.stdout.flush()
    os._exit(0)
""")


def geant4_seconds(geometry: str, energy_gev: float, n: int) -> dict[str, float]:
    """Geant4 wall and CPU seconds per e- shower, measured in a fresh process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _G4, geometry, str(energy_gev), str(n)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geometry", default="ds2")
    ap.add_argument("--energies", type=float, nargs="+", default=[10.0], help="GeV")
    ap.add_argument("--n-geant4", type=int, default=20)
    ap.add_argument(
        "--run", default=None, help="trained run directory or shipped model name (default: fresh cfm-voxel)"
    )
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 100, 10_000])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sur = load_model(args.run) if args.run else fresh_surrogate(args.geometry, "cpu")
    print(
        f"- date: {datetime.date.today()}; command: `python benchmarks/bench_speedup.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`"
    )
    print(
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch threads "
        f"{args.threads}; Geant4 one process (one core); surrogate {'trained ' + args.run if args.run else 'fresh cfm-voxel'}"
        f" ({sur.model.default_sampler})"
    )
    print()
    print("| geometry | E (GeV) | Geant4 s/shower (wall) | batch | surrogate ms/shower | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for e in args.energies:
        g4 = geant4_seconds(args.geometry, e, args.n_geant4)
        for b in args.batch:
            s = time_per_shower(sur, b, repeats=3, min_showers=max(20, b), steps=None, solver=None)
            print(
                f"| {args.geometry} | {e:g} | {g4['wall']:.3f} | {b} | {1e3 * s:.2f} | {g4['wall'] / s:.0f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
