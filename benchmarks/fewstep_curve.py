"""Fidelity against network evaluations: a shower model sampled with fewer ODE steps.

Generates one file per sampler (both stages of a ``cfm-factorised`` model at the same solver and
steps, i.e. ``energy_steps = steps``) with the incident energies of a reference file, for the
curve "fidelity vs network evaluations" beside distilled students (``showerforge distill``).
Evaluate the files together, e.g.::

    python benchmarks/fewstep_curve.py --model ds2-electron --energies-from ds2_e_test.h5 -o curve/
    showerforge evaluate --reference ds2_e_test.h5 --candidate curve/euler1.h5 --candidate curve/euler2.h5 \\
        --candidate curve/euler4.h5 --candidate curve/midpoint4.h5 --quick --seed 7 -o report_curve
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from showerforge.data.calo import write_showers
from showerforge.generate.calo_voxels import energies_from, sample_array
from showerforge.kinds import load

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ds2-electron", help="run directory or shipped name")
    ap.add_argument("--energies-from", type=Path, required=True, help="reference file (its incident energies)")
    ap.add_argument("--sampler", nargs="+", default=["euler1", "euler2", "euler4", "midpoint4"], help="SOLVERSTEPS")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--output", type=Path, required=True, help="folder for the generated files")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    inc = energies_from(args.energies_from)
    args.output.mkdir(parents=True, exist_ok=True)
    for name in args.sampler:
        solver, steps = name.rstrip("0123456789"), int(name[len(name.rstrip("0123456789")) :])
        out = args.output / f"{name}.h5"
        if out.exists():
            continue
        run = load(args.model)
        if "energy_steps" in run.model.config:
            run.model.config["energy_steps"] = steps  # the energy stage at the same sampler
        t0 = time.perf_counter()
        showers = sample_array(run, inc, seed=args.seed, steps=steps, solver=solver)
        attrs = {"generator": "showerforge", "model": run.name, "solver": solver, "steps": steps, "seed": args.seed}
        write_showers(out, inc, showers, run.geometry, attrs)
        print(f"{out}: {len(inc)} showers, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
