"""Where the time of a 1-step shower student goes on one CPU thread, before and after the float32 inverse.

For ``--model`` (default ``ds2-electron-1step``) at each ``--batches`` size (default 1 and 100) the
script times, in one process, every part one call at a time in turn (so that a change of machine
load hits all alike; the medians are reported):

* the torch path, :func:`showerforge.generate.sample_array`, and its parts: the noise draw, the
  network (``model.sample_from_noise``: energy stage, shape stage, one step each), the inverse
  preprocessing (float64 *before*, float32 *after*) and the rest (Python, slicing, condition;
  *before* also ``model.eval()`` on every call, a walk over every module);
* the onnxruntime path, :class:`showerforge.deploy.OnnxShowerSampler`: the graph run
  (``session.run``) and the rest (noise draw, feeds, Python). *Before* is the graph as it was
  exported previously: inverse preprocessing in float64, the two stages' features interleaved and
  split again inside the graph, ``torch.cumprod`` as ``Squeeze``/``Unsqueeze`` chains; *after* is
  the current export;

then onnxruntime's own profile of both graphs (kernel time by operator type, the share spent in
float64 kernels, kernels run per call), and how far the *after* showers are from the *before* ones
on the same noise (per voxel ``|a - b| / max(b, delta)`` outside layers where a voxel at the
threshold flips, and per shower ``sum |a - b| / sum b``). Prints markdown with date, machine, load
(``os.getloadavg``) and command.

Example::

    OMP_NUM_THREADS=1 python benchmarks/bench_student_profile.py --batches 1 100
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

from bench_geant4 import _cpu_model  # noqa: E402

import showerforge.deploy.graph as graph  # noqa: E402
from showerforge.deploy import OnnxShowerSampler  # noqa: E402
from showerforge.generate import sample_array  # noqa: E402
from showerforge.kinds import load  # noqa: E402

__all__ = ["previous_export", "main"]

VARIANTS = ("before", "after")


def _stacked_cumprod(x: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The previous export's cumprod: ``unbind`` / ``stack`` (a Squeeze and an Unsqueeze per element)."""
    if dtype is not None:
        x = x.to(dtype)
    parts = x.unbind(dim)
    out = [parts[0]]
    for p in parts[1:]:
        out.append(out[-1] * p)
    return torch.stack(out, dim)


def _chained_layer_energies(self: graph.InversePreprocessing, x_e: torch.Tensor, inc: torch.Tensor) -> torch.Tensor:
    """The previous export's layer energies: the stick-breaking product as a chain of products."""
    y = torch.minimum(torch.maximum(x_e * self.e_std + self.e_mean, self.y_min), self.y_max)
    e_tot = torch.clamp(torch.exp(y[:, -1]) - self.frac_eps, min=0.0) * inc
    stick = torch.clamp((self._sigmoid(y[:, :-1]) - self.alpha) / (1.0 - 2.0 * self.alpha), 0.0, 1.0)
    ones = torch.ones_like(y[:, :1])
    left = _stacked_cumprod(torch.cat([ones, 1.0 - stick], dim=1), 1)
    e_layer = torch.cat([stick, ones], dim=1) * left * e_tot[:, None]
    return torch.where(e_layer < self.delta, torch.zeros_like(e_layer), e_layer)


@contextlib.contextmanager
def previous_export() -> Iterator[None]:
    """Shower graphs built inside are exported as before: float64 inverse, interleaved features, padding
    gathers, cumprods as chains of products with a Squeeze/Unsqueeze per element."""
    init, cumprod = graph.ShowerGraph.__init__, graph.unrolled_cumprod
    energies = graph.InversePreprocessing.layer_energies

    def old_init(self: graph.ShowerGraph, surrogate: Any, *, steps: int, solver: str) -> None:
        init(self, surrogate, steps=steps, solver=solver)
        self.inverse = graph.InversePreprocessing(surrogate.preprocessing, dtype=torch.float64)
        self.inverse.regular = False  # the padding gathered and scattered back
        self.by_parts = False

    graph.ShowerGraph.__init__ = old_init  # type: ignore[method-assign]
    graph.InversePreprocessing.layer_energies = _chained_layer_energies  # type: ignore[method-assign]
    graph.unrolled_cumprod = _stacked_cumprod
    try:
        yield
    finally:
        graph.ShowerGraph.__init__ = init  # type: ignore[method-assign]
        graph.InversePreprocessing.layer_energies = energies  # type: ignore[method-assign]
        graph.unrolled_cumprod = cumprod


def _energies(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1e3 * np.exp(rng.uniform(0.0, np.log(100.0), n))


def _interleaved(fns: dict[str, Callable[[], Any]], calls: int) -> dict[str, float]:
    """Median seconds per call of each function, called in turn one call each, ``calls`` times over
    (a change of machine load hits every function alike)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(calls):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _torch_sample(sur: Any, inc: np.ndarray, batch: int, dtype: type, variant: str) -> np.ndarray:
    """``sample_array``; *before* it also set every module to eval mode on every call, as it did."""
    if variant == "before":
        sur.model.eval()
    return sample_array(sur, inc, seed=1, batch_size=batch, inverse_dtype=dtype)


def _parts(sur: Any, ort: dict[str, OnnxShowerSampler], batch: int, calls: int) -> dict[str, float]:
    """Seconds per call of every timed part, keys ``"<part> <variant>"``."""
    pre, model = sur.preprocessing, sur.model
    inc = _energies(batch, 11)
    cond = torch.from_numpy(pre.condition(inc))
    gen = torch.Generator().manual_seed(0)
    noise = model.draw_noise(batch, generator=gen, like=cond)
    flat = torch.cat([t.reshape(batch, -1) for t in noise], dim=1).numpy()
    with torch.no_grad():
        x = model.sample_from_noise(noise, cond).numpy()
    dtypes = {"before": np.float64, "after": np.float32}
    fns: dict[str, Callable[[], Any]] = {
        "noise": lambda: model.draw_noise(batch, generator=gen, like=cond),
        "network": lambda: model.sample_from_noise(noise, cond),
    }
    for v in VARIANTS:
        fns[f"inverse {v}"] = lambda d=dtypes[v]: pre.inverse(inc, x, dtype=d)
        fns[f"torch {v}"] = lambda d=dtypes[v], v=v: _torch_sample(sur, inc, batch, d, v)
        fns[f"run {v}"] = lambda s=ort[v]: s.run(flat, inc)
        fns[f"ort {v}"] = lambda s=ort[v]: s.sample(inc, seed=1, batch_size=batch)
    return _interleaved(fns, calls)


def _op_profile(sampler: OnnxShowerSampler, batch: int, calls: int) -> dict[str, Any]:
    """onnxruntime's profile of ``calls`` runs: kernel microseconds by op type and in float64, kernels per run."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(sampler.model_bytes, opts, providers=["CPUExecutionProvider"])
        inc = _energies(batch, 5)
        noise = np.random.default_rng(5).standard_normal((batch, sess.get_inputs()[0].shape[1])).astype(np.float32)
        feeds = {"noise": noise, "incident_energy": inc.astype(np.float32)[:, None]}
        for _ in range(calls):
            sess.run(None, feeds)
        with open(sess.end_profiling()) as f:
            events = [e for e in json.load(f) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_op: collections.Counter[str] = collections.Counter()
    f64 = 0
    for e in events:
        by_op[e["args"]["op_name"]] += e["dur"]
        if "double" in json.dumps(e["args"].get("output_type_shape", "")) or "double" in e["args"].get(
            "output_type", ""
        ):
            f64 += e["dur"]
    total = sum(by_op.values())
    return {"total_ms": total / calls / 1e3, "by_op": by_op, "f64": f64 / max(total, 1), "kernels": len(events) / calls}


def _difference(a: np.ndarray, b: np.ndarray, delta: float, layer_of: np.ndarray) -> tuple[float, float, int]:
    """(max per-voxel relative difference outside flipped layers, max per-shower L1, flips) of a against b."""
    flip = (a > 0) != (b > 0)
    flipped = np.zeros((a.shape[0], int(layer_of.max()) + 1), bool)
    rows, cols = np.nonzero(flip)
    flipped[rows, layer_of[cols]] = True
    clean = ~flipped[:, layer_of]
    rel = np.abs(a - b) / np.maximum(b, delta)
    l1 = np.abs(a - b).sum(1) / np.maximum(b.sum(1), delta)
    return float(rel[clean].max(initial=0.0)), float(l1.max()), int(flip.sum())


def _ms(seconds: float, batch: int) -> str:
    return f"{seconds / batch * 1e3:.3f}"


def _print_parts(parts: dict[int, dict[str, float]]) -> None:
    batches = sorted(parts)
    head = " | ".join(f"batch {b} before | batch {b} after" for b in batches)
    print(f"| path | part (ms per shower) | {head} |")
    print("|---|---|" + "---:|---:|" * len(batches))

    def row(path: str, label: str, get: Callable[[dict[str, float], str], float]) -> None:
        cells = " | ".join(f"{_ms(get(parts[b], 'before'), b)} | {_ms(get(parts[b], 'after'), b)}" for b in batches)
        print(f"| {path} | {label} | {cells} |")

    row("torch", "noise draw", lambda p, v: p["noise"])
    row("torch", "network (energy + shape stage, 1 step each)", lambda p, v: p["network"])
    row("torch", "inverse preprocessing (float64 / float32)", lambda p, v: p[f"inverse {v}"])
    row(
        "torch",
        "rest (Python, condition, slicing)",
        lambda p, v: p[f"torch {v}"] - p["noise"] - p["network"] - p[f"inverse {v}"],
    )
    row("torch", "**total** (`sample_array`)", lambda p, v: p[f"torch {v}"])
    row("onnxruntime", "graph run (`session.run`)", lambda p, v: p[f"run {v}"])
    row("onnxruntime", "rest (noise draw, feeds, Python)", lambda p, v: p[f"ort {v}"] - p[f"run {v}"])
    row("onnxruntime", "**total** (`OnnxShowerSampler.sample`)", lambda p, v: p[f"ort {v}"])


def _print_ops(ops: dict[tuple[int, str], dict[str, Any]], top: int) -> None:
    keys = sorted(ops)
    names: collections.Counter[str] = collections.Counter()
    for prof in ops.values():
        for op, us in prof["by_op"].items():
            names[op] += us / sum(prof["by_op"].values())
    print("| onnxruntime kernel time | " + " | ".join(f"batch {b} {v}" for b, v in keys) + " |")
    print("|---|" + "---:|" * len(keys))
    print("| ms per call (profiled) | " + " | ".join(f"{ops[k]['total_ms']:.2f}" for k in keys) + " |")
    print("| kernels per call | " + " | ".join(f"{ops[k]['kernels']:.0f}" for k in keys) + " |")
    print("| in float64 kernels | " + " | ".join(f"{100 * ops[k]['f64']:.0f} %" for k in keys) + " |")
    for op, _ in names.most_common(top):
        cells = " | ".join(f"{100 * ops[k]['by_op'][op] / sum(ops[k]['by_op'].values()):.0f} %" for k in keys)
        print(f"| {op} | {cells} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ds2-electron-1step", help="shower model: run directory or shipped name")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 100])
    ap.add_argument(
        "--showers", type=int, default=1000, help="about this many showers per timed part (at least 10 calls)"
    )
    ap.add_argument("--top", type=int, default=8, help="operator types listed in the onnxruntime profile")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import onnxruntime

    load_start = os.getloadavg()
    command = "python benchmarks/bench_student_profile.py " + " ".join(argv if argv is not None else sys.argv[1:])
    sur = load(args.model)
    with previous_export():
        before = OnnxShowerSampler(sur, threads=1)
    ort = {"before": before, "after": OnnxShowerSampler(sur, threads=1)}
    parts, ops = {}, {}
    for batch in args.batches:
        calls = max(10, args.showers // batch)
        parts[batch] = _parts(sur, ort, batch, calls)
        for v in VARIANTS:
            ops[(batch, v)] = _op_profile(ort[v], batch, min(calls, 50))  # the profiler keeps ~1M events
    inc = _energies(100, 3)
    delta, layer_of = float(sur.preprocessing.threshold_mev or 1e-30), sur.geometry.voxel_layer()
    t64 = sample_array(sur, inc, seed=3, batch_size=100, inverse_dtype=np.float64)
    diffs = {
        "torch, float32 vs float64 inverse": _difference(
            sample_array(sur, inc, seed=3, batch_size=100), t64, delta, layer_of
        ),
        "onnxruntime after vs before": _difference(
            ort["after"].sample(inc, seed=3, batch_size=100),
            ort["before"].sample(inc, seed=3, batch_size=100),
            delta,
            layer_of,
        ),
        "onnxruntime after vs torch float64": _difference(
            ort["after"].sample(inc, seed=3, batch_size=100), t64, delta, layer_of
        ),
    }
    load_end = os.getloadavg()
    print(f"- date: {datetime.date.today()}; command: `OMP_NUM_THREADS=1 {command.strip()}`")
    print(
        f"- machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.system()}; one thread; torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}, numpy {np.__version__}; "
        f"load average (1, 5, 15 min) {', '.join(f'{x:.1f}' for x in load_start)} at the start, "
        f"{', '.join(f'{x:.1f}' for x in load_end)} at the end"
    )
    print(f"- model: {args.model}; energies log-uniform 1-100 GeV; medians of single calls, all parts in turn")
    print()
    _print_parts(parts)
    print()
    _print_ops(ops, args.top)
    print()
    print("| on the same noise, 100 showers | max per-voxel relative | max per-shower L1 | flipped voxels |")
    print("|---|---:|---:|---:|")
    for label, (voxel, l1, flips) in diffs.items():
        print(f"| {label} | {voxel:.1e} | {l1:.1e} | {flips} |")


if __name__ == "__main__":
    main()
