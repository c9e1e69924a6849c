"""Reference-simulator speed: Pythia8 + FastJet jets per second per core.

Runs :func:`showerforge.simulate.jets.simulate_jets` in this (single-threaded) process for
gluon and top jets with MPI on and off and prints a markdown table. ``jets/s`` includes Pythia
initialisation (wall clock); ``jets/CPU-s`` divides by this process's CPU time (robust when
other jobs share the machine; the process is single-threaded, so this is jets/s per core);
``Pythia share`` is the fraction of CPU time spent in ``Pythia.nextBatch`` (event generation +
hadronisation), the rest being FastJet clustering, matching and feature building.

Usage::

    python benchmarks/bench_pythia.py            # 500 jets per configuration
    python benchmarks/bench_pythia.py --n-jets 200 --types g t
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

from showerforge.simulate import jets as sj  # noqa: E402

__all__ = ["bench_one", "main"]


def bench_one(jet_type: str, mpi: bool, n_jets: int, seed: int = 1) -> dict[str, float]:
    """Time one configuration.

    Args:
        jet_type: One of :data:`~showerforge.simulate.jets.JET_TYPES`.
        mpi: Multiparton interactions on/off.
        n_jets: Jets to generate.
        seed: Pythia seed.

    Returns:
        Timings (s), counts and rates (jets/s).
    """
    config = sj.JetConfig(jet_type, mpi=mpi)
    t0 = time.perf_counter()
    sj._make_pythia(sj._pythia_settings(config, seed))
    t_init = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    batch = sj.simulate_jets(config, n_jets, seed=seed)
    t_total, cpu_total = time.perf_counter() - t0, time.process_time() - c0
    n_events = int(batch.settings["n_events"])

    pythia = sj._make_pythia(sj._pythia_settings(config, seed + 1))
    c0 = time.process_time()
    done = 0
    while done < n_events:  # generation alone, same number of events
        done += len(pythia.nextBatch(min(400, n_events - done)))
    cpu_gen = time.process_time() - c0
    return {
        "n_jets": len(batch),
        "n_events": n_events,
        "t_init": t_init,
        "t_total": t_total,
        "cpu_total": cpu_total,
        "rate": len(batch) / t_total,
        "cpu_rate": len(batch) / max(cpu_total, 1e-9),
        "pythia_share": min(cpu_gen / max(cpu_total, 1e-9), 1.0),
    }


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark grid and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-jets", type=int, default=500)
    parser.add_argument("--types", nargs="+", default=["g", "t"], choices=sj.JET_TYPES)
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.processor() or platform.machine()}, 1 process = 1 core, "
        f"pT 800-1600 GeV, |eta| < 2.5, anti-kT R = 0.8, n = 30\n"
    )
    print("| jet | MPI | jets | events | init s | wall s | CPU s | jets/s | jets/CPU-s | Pythia share |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for jet_type in args.types:
        for mpi in (True, False):
            r = bench_one(jet_type, mpi, args.n_jets)
            print(
                f"| {jet_type} | {'on' if mpi else 'off'} | {r['n_jets']} | {r['n_events']} | "
                f"{r['t_init']:.2f} | {r['t_total']:.2f} | {r['cpu_total']:.2f} | "
                f"{r['rate']:.0f} | {r['cpu_rate']:.0f} | {r['pythia_share']:.0%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
