"""PyTorch vs onnxruntime: ms per shower at batch 1 / 100 / 10,000 on one CPU thread, and the speed-up over Geant4.

For each ``--model`` (a run directory or a shipped name; repeat the option to compare, e.g. a
teacher and its few-step student) the script times

* ``torch``: :func:`showerforge.generate.sample_array` (noise, ODE solve, numpy inverse preprocessing);
* ``onnxruntime``: :class:`showerforge.deploy.OnnxShowerSampler` (the same noise; the exported
  graph holds the solver and the inverse preprocessing), the export timed separately;

at each ``--batches`` size on incident energies drawn log-uniformly in 1-100 GeV, and Geant4
(``showerforge.simulate.calo_g4``, a fresh process, one core) on the same spectrum in the same
run. It also reports how far the two backends are apart on 100 showers of one seed (largest
per-voxel ``|ort - torch| / max(torch, delta)`` and largest per-shower ``sum |ort - torch| / sum torch``).
Prints a markdown table with date, machine and command.

Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_deploy.py --model ds2-electron --batches 1 100 --n-geant4 10
    python benchmarks/bench_deploy.py --model ds2-electron --model runs/ds2_1step --batches 1 100 10000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

from bench_geant4 import _cpu_model  # noqa: E402

from showerforge.deploy import OnnxShowerSampler  # noqa: E402
from showerforge.generate import sample_array  # noqa: E402
from showerforge.kinds import load  # noqa: E402
from showerforge.models import get_solver  # noqa: E402

__all__ = ["spectrum", "geant4_spectrum_seconds", "time_sampler", "main"]

_G4 = textwrap.dedent("""
    import json, os, sys, time, warnings
    from showerforge.simulate.g4data import ensure_geant4_env
    ensure_geant4_env()
    import numpy as np
    from showerforge.geometry import get_geometry
    from showerforge.simulate.calo_g4 import simulate_showers
    geo, particle, energies = get_geometry(sys.argv[1]), sys.argv[2], np.asarray(json.loads(sys.argv[3]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simulate_showers(geo, particle, np.full(2, 10e3), 99)  # initialisation + warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        simulate_showers(geo, particle, energies, 1)
    n = len(energies)
    print(json.dumps({"wall": (time.perf_counter() - t0) / n, "cpu": (time.process_time() - c0) / n}))
    sys.stdout.flush()
    os._exit(0)
""")


def spectrum(n: int, seed: int, lo_gev: float = 1.0, hi_gev: float = 100.0) -> np.ndarray:
    """``n`` incident energies in MeV, log-uniform in [lo_gev, hi_gev] GeV (seeded)."""
    rng = np.random.default_rng(seed)
    return 1e3 * np.exp(rng.uniform(np.log(lo_gev), np.log(hi_gev), n))


def geant4_spectrum_seconds(geometry: str, particle: str, energies_mev: np.ndarray) -> dict[str, float]:
    """Geant4 wall and CPU seconds per shower over the given energies, in a fresh one-thread process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _G4, geometry, particle, json.dumps(energies_mev.tolist())],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_sampler(sample: Callable[[np.ndarray, int, int], np.ndarray], batch: int, repeats: int, n: int) -> float:
    """Median seconds per shower of ``sample(energies, batch_size, seed)`` over ``repeats`` runs of ``n`` showers."""
    sample(spectrum(min(batch, 64), 99), batch, 99)  # warm-up
    times = []
    for r in range(repeats):
        inc = spectrum(n, r)
        t0 = time.perf_counter()
        sample(inc, batch, r)
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def _parity(sur: object, ort: OnnxShowerSampler) -> tuple[float, float]:
    inc = spectrum(100, 7)
    a = ort.sample(inc, seed=3, batch_size=100)
    b = sample_array(sur, inc, seed=3, batch_size=100)  # type: ignore[arg-type]
    delta = float(ort.surrogate.preprocessing.threshold_mev or 1e-30)
    voxel = float(np.max(np.abs(a - b) / np.maximum(b, delta)))
    shower = float(np.max(np.abs(a - b).sum(1) / np.maximum(b.sum(1), delta)))
    return voxel, shower


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=None, help="run directory or shipped name (repeatable)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 100, 10_000])
    ap.add_argument("--threads", type=int, default=1, help="CPU threads of both backends (Geant4: one core)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per point below batch 1000 (1 above)")
    ap.add_argument("--min-showers", type=int, default=20, help="showers per timed run at small batch")
    ap.add_argument("--n-geant4", type=int, default=20, help="Geant4 showers over the spectrum (0: skip)")
    ap.add_argument("--particle", default="e-")
    args = ap.parse_args(argv)
    models = args.model or ["ds2-electron"]
    torch.set_num_threads(args.threads)
    import onnxruntime

    command = "python benchmarks/bench_deploy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"- date: {datetime.date.today()}; command: `{command.strip()}`")
    print(
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()}; {args.threads} thread(s) per "
        f"backend; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; energies log-uniform 1-100 GeV"
    )
    rows, g4, geometry = [], None, ""
    for name in models:
        sur = load(name)
        geometry = geometry or sur.geometry.name
        default = sur.model.default_sampler
        solver = get_solver(default["solver"])
        t0 = time.perf_counter()
        ort = OnnxShowerSampler(sur, threads=args.threads)
        export_s = time.perf_counter() - t0
        voxel, shower = _parity(sur, ort)
        print(
            f"- {name}: {sur.name}, {solver.name} x {default['steps']}; export + session {export_s:.1f} s; "
            f"onnxruntime vs torch on 100 showers: per-voxel {voxel:.1e}, per-shower L1 {shower:.1e} (relative)"
        )
        samplers = {
            "torch": lambda e, b, s, sur=sur: sample_array(sur, e, batch_size=b, seed=s),
            "onnxruntime": lambda e, b, s, ort=ort: ort.sample(e, batch_size=b, seed=s),
        }
        for batch in args.batches:
            repeats = args.repeats if batch < 1000 else 1
            for backend, fn in samplers.items():
                sec = time_sampler(fn, batch, repeats, max(batch, args.min_showers))
                rows.append((name, f"{solver.name} x {default['steps']}", backend, batch, sec))
                print(f"  {name} {backend} batch {batch}: {sec * 1e3:.2f} ms/shower", file=sys.stderr, flush=True)
    if args.n_geant4:
        g4 = geant4_spectrum_seconds(geometry, args.particle, spectrum(args.n_geant4, 2026))
        print(
            f"- Geant4 ({geometry}, {args.particle}, {args.n_geant4} showers over 1-100 GeV, one core): "
            f"{g4['wall'] * 1e3:.1f} ms/shower wall, {g4['cpu'] * 1e3:.1f} ms CPU"
        )
    print()
    print("| model | sampler | backend | batch | ms/shower | speed-up vs Geant4 |")
    print("|---|---|---|---:|---:|---:|")
    for name, sampler, backend, batch, sec in rows:
        ratio = f"{g4['wall'] / sec:,.0f}×" if g4 else "—"
        print(f"| {name} | {sampler} | {backend} | {batch} | {sec * 1e3:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
