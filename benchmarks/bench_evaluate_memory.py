"""Peak memory (RSS) and wall time of ``evaluate_files`` on large CaloChallenge-format files.

Generates a reference and a candidate file of ``--n`` random showers on a preset readout
(default: dataset 2, 6,480 voxels, so 100,000 showers are 2.6 GB of float32 per file) in chunks,
so the generator itself stays small, then runs :func:`showerforge.evaluation.evaluate_files`
(quick classifier) in a child process and reports that process's peak RSS. The showers are
random, not physics: gamma-distributed voxel energies on a smooth mean profile, about 60 % of the
voxels empty, the candidate slightly wider than the reference.

Example::

    python benchmarks/bench_evaluate_memory.py --n 100000          # the 4 GB target
    python benchmarks/bench_evaluate_memory.py --n 20000 --no-plots
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from showerforge.data.calo import atomic_output
from showerforge.geometry import Geometry, get_geometry

__all__ = ["write_random_file", "measure", "main"]


def _profile(geo: Geometry, width: float) -> np.ndarray:
    """(n_voxels,) mean energy fraction per voxel: Gaussian in depth, exponential in r."""
    depth = np.exp(-(((np.arange(geo.n_layers) - 0.3 * geo.n_layers) / (0.25 * geo.n_layers)) ** 2))
    parts = []
    for layer_idx, layer in enumerate(geo.readout):
        if layer.n_voxels:
            e = np.asarray(layer.r_edges_mm)
            radial = np.exp(-0.5 * (e[1:] + e[:-1]) / (8.0 * width))
            parts.append(np.tile(radial, layer.n_alpha) * depth[layer_idx])
    prof = np.concatenate(parts)
    return prof / prof.sum()


def write_random_file(
    path: str | Path,
    geo: Geometry,
    n: int,
    *,
    seed: int,
    width: float = 1.0,
    chunk: int = 1000,
    compression: str | None = "gzip",
) -> Path:
    """Write ``n`` random showers (MeV) in chunks of ``chunk`` rows; memory ~ one chunk."""
    from showerforge import __version__

    rng = np.random.default_rng(seed)
    prof = _profile(geo, width).astype(np.float32)
    rows = max(1, min(n, 2**20 // geo.n_voxels))
    kw = {"compression": compression, "compression_opts": 1} if compression == "gzip" else {}
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        inc_ds = f.create_dataset("incident_energies", (n, 1), dtype="f4")
        sh_ds = f.create_dataset("showers", (n, geo.n_voxels), dtype="f4", chunks=(rows, geo.n_voxels), **kw)
        f.attrs["format"] = "calochallenge"
        f.attrs["geometry"] = geo.to_json()
        f.attrs["showerforge_version"] = __version__
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            inc = (10 ** rng.uniform(3.0, 6.0, m)).astype(np.float32)
            # gamma mean 1, 40 % of voxels kept, scaled by 1 / 0.4: E_tot / E_inc ~ 1
            x = rng.gamma(2.5, 0.4, (m, geo.n_voxels)).astype(np.float32) * prof * (inc / 0.4)[:, None]
            x[rng.random((m, geo.n_voxels), dtype=np.float32) < 0.6] = 0.0
            inc_ds[lo : lo + m, 0] = inc
            sh_ds[lo : lo + m] = x
    return Path(path)


def _child(args: argparse.Namespace) -> None:
    from showerforge.evaluation import evaluate_files

    t0 = time.perf_counter()
    m = evaluate_files(
        args.reference,
        args.candidate,
        args.report,
        quick=True,
        seed=0,
        chunk=args.chunk,
        plots=not args.no_plots,
        low_level_memory_mb=args.low_level_mb,
    )
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    comp = m["candidate_vs_reference"]
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_rss_mb": peak_kb / 1024.0,
                "auc_low": comp["classifier"]["low_level"]["auc"]["value"],
                "auc_high": comp["classifier"]["high_level"]["auc"]["value"],
                "low_level_per_class": m["settings"]["low_level_showers_per_class"],
            }
        )
    )


def measure(
    reference: Path, candidate: Path, report: Path, *, chunk: int | None, plots: bool, low_level_mb: float
) -> dict[str, float]:
    """Run the evaluation in a child process; its peak RSS (MB) and wall time (s)."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--reference",
        str(reference),
        "--candidate",
        str(candidate),
        "--report",
        str(report),
        "--low-level-mb",
        str(low_level_mb),
    ]
    if chunk:
        cmd += ["--chunk", str(chunk)]
    if not plots:
        cmd.append("--no-plots")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="showers per file")
    p.add_argument("--geometry", default="ds2", help="preset name, JSON or CaloChallenge XML")
    p.add_argument("--workdir", type=Path, default=None, help="where the files go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--chunk", type=int, default=None, help="showers per read (default: automatic)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--no-compression", action="store_true", help="write the files without gzip (fast for ds3 at 100k showers)"
    )
    p.add_argument("--low-level-mb", type=float, default=1024.0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--reference", help=argparse.SUPPRESS)
    p.add_argument("--candidate", help=argparse.SUPPRESS)
    p.add_argument("--report", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args)
        return
    geo = get_geometry(args.geometry)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sf-bench-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    ref, cand = work / "reference.h5", work / "candidate.h5"
    t0 = time.perf_counter()
    comp = None if args.no_compression else "gzip"
    write_random_file(ref, geo, args.n, seed=1, compression=comp)
    write_random_file(cand, geo, args.n, seed=2, width=1.1, compression=comp)
    gen_s = time.perf_counter() - t0
    res = measure(ref, cand, work / "report", chunk=args.chunk, plots=not args.no_plots, low_level_mb=args.low_level_mb)
    size_gb = args.n * geo.n_voxels * 4 / 1e9
    print(
        "| geometry | showers per file | float32 per file | peak RSS | evaluate wall | generate wall | "
        "low-level showers/class | AUC low / high |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {geo.name} | {args.n} | {size_gb:.2f} GB | {res['peak_rss_mb'] / 1024:.2f} GB | {res['wall_s']:.0f} s | "
        f"{gen_s:.0f} s | {res['low_level_per_class']} | {res['auc_low']:.3f} / {res['auc_high']:.3f} |"
    )
    print(f"cpus: {len(os.sched_getaffinity(0))}")
    if not args.keep:
        for f in (ref, cand):
            f.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
