"""Training throughput: showers/s and achieved GFLOP/s of one optimizer step, on this machine.

Times the real training step of :func:`showerforge.training` (AdamW, loss, backward, gradient
clipping, EMA update) on preprocessed-shape random features of a preset geometry, for registered
voxel models with their default or overridden hyperparameters. FLOPs of one step are counted with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products; elementwise work is not counted,
so GFLOP/s is a lower bound). The machine's load average is printed beside the figures: a shared
machine gives lower numbers.

Example::

    python benchmarks/bench_train_throughput.py --geometry ds2 --threads 2 \\
        --model cfm-voxel cfm-factorised --batch 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from showerforge.geometry import get_geometry
from showerforge.models import MODELS
from showerforge.training.fit import ema_model

__all__ = ["step_throughput", "main"]


def step_throughput(
    model_name: str,
    geometry: str,
    batch: int,
    *,
    overrides: dict[str, Any] | None = None,
    steps: int = 20,
    warmup: int = 3,
) -> dict[str, Any]:
    """Showers/s, GFLOP/s and parameters of the training step of one model (CPU)."""
    geo = get_geometry(geometry)
    sizes = [1 + layer.n_voxels for layer in geo.readout if layer.n_voxels]
    torch.manual_seed(0)
    model = MODELS[model_name].build(token_sizes=sizes, n_cond=1, **(overrides or {}))
    ema = ema_model(model, 0.999)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x, c = torch.randn(batch, sum(sizes), generator=gen), torch.randn(batch, 1, generator=gen)

    def one() -> None:
        loss = model.loss(x, c, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update_parameters(model)

    for _ in range(warmup):
        one()
    with FlopCounterMode(display=False) as fc:
        one()
    flops = fc.get_total_flops()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    dt = (time.perf_counter() - t0) / steps
    return {
        "model": model_name,
        "overrides": overrides or {},
        "geometry": geometry,
        "batch": batch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "showers_per_s": batch / dt,
        "gflop_per_step": flops / 1e9,
        "gflop_per_s": flops / dt / 1e9,
        "ms_per_step": 1e3 * dt,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geometry", default="ds2")
    ap.add_argument("--model", nargs="+", default=["cfm-voxel", "cfm-factorised"])
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL:KEY=VALUE",
        help="hyperparameter override for one model, e.g. cfm-factorised:d_model=128",
    )
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    over: dict[str, dict[str, Any]] = {}
    for item in args.set:
        name, kv = item.split(":", 1)
        key, value = kv.split("=", 1)
        over.setdefault(name, {})[key] = json.loads(value)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, load average before: {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    print("| model | overrides | parameters | batch | ms/step | showers/s | GFLOP/step | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.model:
        r = step_throughput(name, args.geometry, args.batch, overrides=over.get(name), steps=args.steps)
        print(
            f"| {name} | {json.dumps(r['overrides']) if r['overrides'] else 'defaults'} | "
            f"{r['parameters'] / 1e6:.2f} M | {r['batch']} | {r['ms_per_step']:.1f} | {r['showers_per_s']:.0f} | "
            f"{r['gflop_per_step']:.2f} | {r['gflop_per_s']:.1f} |",
            flush=True,
        )
    print(f"# load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
