"""Surrogate sampling speed: ms per shower at batch 1, 100, 10,000 on CPU (and CUDA when present).

Measures :func:`showerforge.generate.sample_array` end to end (noise, ODE solve, inverse
preprocessing to MeV) for trained runs (``--run DIR``) and/or freshly initialised ``cfm-voxel``
models on preset geometries (``--geometry ds2 mini``; timing does not depend on the weights).
Prints a markdown table; the speed-up column divides ``--reference-s`` (seconds per shower of the
reference simulator, measured elsewhere on the same machine) by the surrogate's time.

Example::

    python benchmarks/bench_surrogate.py --geometry ds2 mini --batch 1 100 10000 --reference-s 0.22
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from showerforge.data.preprocess import ShowerPreprocessor
from showerforge.generate import sample_array
from showerforge.generate.calo_voxels import Surrogate
from showerforge.geometry import get_geometry
from showerforge.kinds import load as load_model
from showerforge.models import MODELS, get_solver

__all__ = ["fresh_surrogate", "time_per_shower", "main"]


def fresh_surrogate(geometry: str, device: str, seed: int = 0, model: str = "cfm-voxel") -> Surrogate:
    """An untrained ``model`` with default hyperparameters and preprocessing fitted on random showers."""
    geo = get_geometry(geometry)
    rng = np.random.default_rng(seed)
    inc = np.exp(rng.uniform(np.log(1e3), np.log(1e5), 256))
    sh = rng.exponential(1.0, (256, geo.n_voxels)) * (rng.random((256, geo.n_voxels)) < 0.3)
    pre = ShowerPreprocessor.from_geometry(geo).fit([(inc, sh)])
    torch.manual_seed(seed)
    net = MODELS[model].build(token_sizes=pre.token_sizes, n_cond=pre.n_cond)
    with torch.no_grad():  # random (not zero-initialised) weights, as after training
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    net.to(device).eval()
    return Surrogate(net, pre, geo, net.config, Path("<fresh>"), "", 0)


def time_per_shower(
    sur: Surrogate, batch: int, *, repeats: int, min_showers: int, steps: int | None, solver: str | None
) -> float:
    """Median seconds per shower of ``sample_array`` over ``repeats`` timed runs."""
    dev = sur.device
    n = max(batch, min_showers)
    inc = np.exp(np.random.default_rng(1).uniform(np.log(1e3), np.log(1e5), n))
    sample_array(sur, inc[: min(batch, 64)], batch_size=batch, steps=steps, solver=solver)  # warm-up
    times = []
    for r in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        sample_array(sur, inc, batch_size=batch, seed=r, steps=steps, solver=solver)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", nargs="*", default=[], help="trained run directories or shipped model names")
    ap.add_argument("--geometry", nargs="*", default=["ds2", "mini"], help="fresh models on these presets")
    ap.add_argument("--model", nargs="*", default=["cfm-voxel"], help="registered voxel models to time fresh")
    ap.add_argument("--batch", nargs="*", type=int, default=[1, 100, 10_000])
    ap.add_argument("--device", nargs="*", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all available)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-showers", type=int, default=20, help="showers per timed run at small batch")
    ap.add_argument("--steps", type=int, default=None, help="ODE steps (default: the model's)")
    ap.add_argument("--solver", default=None, help="euler, midpoint, rk4 (default: the model's)")
    ap.add_argument("--reference-s", type=float, default=0.22, help="reference simulator s/shower")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
        f"reference {args.reference_s * 1e3:.0f} ms/shower\n"
    )
    print("| model | geometry | device | sampler (NFE) | batch | ms/shower | showers/s | speed-up |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for dev in devices:
        surrogates = [(f"{load_model(r, dev).name} ({Path(r).name})", load_model(r, dev)) for r in args.run]
        surrogates += [(f"{m} (fresh)", fresh_surrogate(g, dev, model=m)) for g in args.geometry for m in args.model]
        for label, sur in surrogates:
            default = sur.model.default_sampler
            solver = get_solver(args.solver or default["solver"])
            steps = args.steps or default["steps"]
            for batch in args.batch:
                s = time_per_shower(
                    sur, batch, repeats=args.repeats, min_showers=args.min_showers, steps=steps, solver=solver.name
                )
                print(
                    f"| {label} | {sur.geometry.name} | {dev} | {solver.name} x {steps} "
                    f"({steps * solver.nfe_per_step}) | {batch} | {s * 1e3:.3f} | {1 / s:,.0f} | "
                    f"{args.reference_s / s:,.0f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
