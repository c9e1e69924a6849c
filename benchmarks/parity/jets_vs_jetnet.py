"""showerforge's jet metrics against jetnet's, on the same arrays and the same bootstrap draws.

1. Samples: two independent Pythia8 + FastJet samples of ``--n`` jets of ``--type`` (30
   particles, MPI off, seeds 1 and 2) made with :func:`showerforge.simulate.jets.simulate_jets`,
   and a distorted copy of the second (every eta_rel and phi_rel times 1.1: wider jets). Saved
   as float64 ``.npy`` (``eta_rel, phi_rel, pt_rel, mask``) in ``--workdir`` and reused there.
2. jetnet: this same file, run by ``--jetnet-python`` (a separate environment with ``jetnet``;
   showerforge is not needed there), computes ``w1m``, ``w1p``, ``w1efp``,
   ``get_fpd_kpd_jet_features``, ``fpd`` and ``kpd`` of ``jetnet.evaluation`` on the same files.
   jetnet's W1 functions draw from a module-level unseeded ``numpy.random.default_rng()``
   (``jetnet.evaluation.gen_metrics.rng``); it is replaced by ``default_rng(--seed)`` before each
   call, which is what showerforge's functions use for ``seed=--seed``. jetnet's ``fpd`` seeds
   ``default_rng(seed)`` itself (same draws as showerforge). jetnet's ``kpd`` reseeds each batch
   i with ``default_rng(seed + 1000 i)``; showerforge's ``kpd`` draws all batches from one
   generator, so it is run once per batch with that generator (``num_batches=1``) and the median
   and half 16-84 % range are taken over the batches ("same draws"), and also once as is
   ("own draws").
3. showerforge: the same metrics in this process; then a markdown table (metric, jetnet,
   showerforge, relative difference, agreement within jetnet's quoted uncertainty or 1 %), the
   element-wise comparison of all 36 EFPs of every jet, and the conventions side by side (EFPs
   normalised to sum pT = 1, FPD with ``extrapolation="lsq"``). Everything is also written to
   ``WORKDIR/results.json``.

jetnet's functions are given ``[eta, phi, pt]`` only: its ``w1m`` reads a 4th column as the
particle *mass* and its EFPs ignore the mask (padding is all zero in these files); ``w1p`` gets
the mask column as ``mask1`` / ``mask2``.

``--known-answers`` instead prints jetnet's numbers on the small fixed input of
``tests/test_jet_metrics.py`` (:func:`fixed_jets`), as Python literals for that test.

Example (the scratch environment as described in ``docs/benchmarks.md``)::

    python benchmarks/parity/jets_vs_jetnet.py --n 10000 --jetnet-python /work/scratch/jetnet-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

__all__ = ["PAIRS", "fixed_jets", "jetnet_side", "main", "showerforge_side"]

PAIRS = {"independent": ("real", "other"), "distorted": ("real", "wide")}
"""Compared pairs: (reference sample, candidate sample) by file stem."""


def fixed_jets(n: int, n_particles: int, phase: float, widen: float = 1.0) -> np.ndarray:
    """Deterministic JetNet-like particle clouds (no random numbers): ``(n, n_particles, 4)``.

    Multiplicities 3..n_particles, smooth pseudo-random angles, falling pT_rel whose sum is not 1
    (0.8-1.0), padding all zero. ``tests/test_jet_metrics.py`` holds an identical copy; its
    known answers were computed by jetnet on these arrays.
    """
    i = np.arange(n, dtype=np.float64)[:, None]
    k = np.arange(n_particles, dtype=np.float64)[None, :]
    mult = 3 + (np.arange(n)[:, None] * 7 + round(10 * phase)) % (n_particles - 2)
    real = np.arange(n_particles)[None, :] < mult
    pf = np.zeros((n, n_particles, 4))
    pf[..., 0] = widen * 0.25 * np.sin(1.3 * i + 2.1 * k + phase) * (0.5 + 0.1 * k)
    pf[..., 1] = widen * 0.25 * np.cos(0.7 * i + 1.7 * k + 2 * phase) * (0.5 + 0.08 * k)
    w = np.exp(-0.35 * k) * (1.0 + 0.5 * np.sin(0.9 * i + k + phase) ** 2) * real
    pf[..., 2] = w / w.sum(1, keepdims=True) * (0.9 + 0.1 * np.cos(1.1 * i + phase))
    pf[..., 3] = real
    pf[~real] = 0.0
    return pf


# --------------------------------------------------------------------------- jetnet side


def jetnet_side(workdir: Path) -> None:
    """Run jetnet's metrics on ``workdir``'s arrays (``config.json``); write ``jetnet.json``.

    Runs in the jetnet environment: imports jetnet, never showerforge.
    """
    import warnings

    warnings.filterwarnings("ignore")
    import energyflow
    import jetnet
    from jetnet.evaluation import gen_metrics as gm

    cfg = json.loads((workdir / "config.json").read_text())
    jets = {name: np.load(workdir / f"{name}.npy") for name in cfg["samples"]}
    t0 = time.perf_counter()
    feats = {name: gm.get_fpd_kpd_jet_features(a[..., :3], efp_jobs=cfg["efp_jobs"]) for name, a in jets.items()}
    for name, f in feats.items():
        np.save(workdir / f"jetnet_efps_{name}.npy", f)

    def edges(*spec: tuple[str, int]) -> list[list[list[int]]]:
        return [[[int(a), int(b)] for a, b in g] for g in energyflow.EFPSet(*spec).graphs()]

    out: dict[str, Any] = {
        "versions": {"jetnet": jetnet.__version__, "energyflow": energyflow.__version__, "numpy": np.__version__},
        "efp_graphs": edges(("d<=", 4)),
        "w1efp_graphs": edges(("n==", 4), ("d==", 4), ("p==", 1)),  # jetnet's w1efp default
        "pairs": {},
    }
    for pair, (a, b) in cfg["pairs"].items():
        out["pairs"][pair] = _jetnet_pair(gm, jets[a], jets[b], feats[a], feats[b], cfg)
    out["seconds"] = time.perf_counter() - t0
    (workdir / "jetnet.json").write_text(json.dumps(out, indent=1))


def _jetnet_pair(gm: Any, x: np.ndarray, y: np.ndarray, fx: np.ndarray, fy: np.ndarray, cfg: dict) -> dict:
    """jetnet's five metrics on one pair, W1 draws seeded through the module-level generator."""
    seed, w1 = cfg["seed"], {"num_eval_samples": cfg["w1_samples"], "num_batches": cfg["w1_batches"]}
    res: dict[str, Any] = {}
    gm.rng = np.random.default_rng(seed)
    res["w1m"] = [float(v) for v in gm.w1m(x[..., :3], y[..., :3], **w1)]
    gm.rng = np.random.default_rng(seed)
    means, stds = gm.w1p(x[..., :3], y[..., :3], mask1=x[..., 3], mask2=y[..., 3], **w1)
    res["w1p"] = {"means": means.tolist(), "stds": stds.tolist()}
    gm.rng = np.random.default_rng(seed)
    means, stds = gm.w1efp(x[..., :3], y[..., :3], efp_jobs=cfg["efp_jobs"], **w1)
    res["w1efp"] = {"means": means.tolist(), "stds": stds.tolist()}
    fpd = gm.fpd(fx, fy, cfg["fpd_min"], cfg["fpd_max"], cfg["fpd_batches"], cfg["fpd_points"], seed=seed)
    res["fpd"] = [float(v) for v in fpd]
    res["kpd"] = [float(v) for v in gm.kpd(fx, fy, cfg["kpd_batches"], cfg["kpd_size"], seed=seed)]
    return res


# --------------------------------------------------------------------------- showerforge side


def _kpd_jetnet_draws(fx: np.ndarray, fy: np.ndarray, cfg: dict) -> list[float]:
    """showerforge's KPD on jetnet's draws: batch i from ``default_rng(seed + 1000 i)``."""
    from showerforge.evaluation.jets import metrics as jm

    vals = [
        jm.kpd(fx, fy, np.random.default_rng(cfg["seed"] + 1000 * i), num_batches=1, batch_size=cfg["kpd_size"]).value
        for i in range(cfg["kpd_batches"])
    ]
    lo, hi = np.percentile(vals, [16.275, 83.725])
    return [float(np.median(vals)), float((hi - lo) / 2)]


def showerforge_side(workdir: Path, cfg: dict) -> dict[str, Any]:
    """showerforge's metrics on the same arrays and draws, and its 36 EFPs of every jet (``"efps"``)."""
    import warnings

    from showerforge.evaluation.jets import metrics as jm

    warnings.filterwarnings("ignore", message=".*smaller than the recommended.*")  # as jetnet's, silenced there
    jets = {name: np.load(workdir / f"{name}.npy") for name in cfg["samples"]}
    feats = {name: jm.fpd_kpd_features(a) for name, a in jets.items()}
    normed = {name: jm.fpd_kpd_features(a, normed=True) for name, a in jets.items()}
    seed, w1 = cfg["seed"], {"num_eval_samples": cfg["w1_samples"], "num_batches": cfg["w1_batches"]}
    fpd_kw = {
        "min_samples": cfg["fpd_min"],
        "max_samples": cfg["fpd_max"],
        "num_batches": cfg["fpd_batches"],
        "num_points": cfg["fpd_points"],
    }
    kpd_kw = {"num_batches": cfg["kpd_batches"], "batch_size": cfg["kpd_size"]}
    out: dict[str, Any] = {"efps": dict(feats), "pairs": {}}
    for pair, (a, b) in cfg["pairs"].items():
        x, y, fx, fy = jets[a], jets[b], feats[a], feats[b]
        w1p, w1efp = jm.w1p(x, y, seed, **w1), jm.w1efp(x, y, seed, **w1)
        out["pairs"][pair] = {
            "w1m": list(jm.w1m(x, y, seed, **w1)),
            "w1p": [list(c) for c in w1p.per_component],
            "w1efp": list(w1efp.mean),
            "w1efp_per": [list(c) for c in w1efp.per_component],
            "fpd": list(jm.fpd(fx, fy, seed, **fpd_kw)),
            "fpd_lsq": list(jm.fpd(fx, fy, seed, extrapolation="lsq", **fpd_kw)),
            "kpd": _kpd_jetnet_draws(fx, fy, cfg),
            "kpd_own": list(jm.kpd(fx, fy, seed, **kpd_kw)),
            "w1efp_normed": list(jm.w1efp(x, y, seed, normed=True, **w1).mean),
            "fpd_normed": list(jm.fpd(normed[a], normed[b], seed, **fpd_kw)),
            "kpd_normed": _kpd_jetnet_draws(normed[a], normed[b], cfg),
        }
    return out


# --------------------------------------------------------------------------- comparison


def _efp_comparison(workdir: Path, ours: dict[str, np.ndarray], cfg: dict) -> tuple[float, list[int]]:
    """Max relative difference of all 36 EFPs of every jet; our column of each energyflow column."""
    worst, order = 0.0, []
    for name in cfg["samples"]:
        theirs, mine = np.load(workdir / f"jetnet_efps_{name}.npy"), ours[name]
        scale = np.abs(theirs) + 1e-300
        if not order:  # match columns by value (energyflow's graph order differs from ours)
            order = [
                int(np.argmin([np.max(np.abs(mine[:, j] - theirs[:, k]) / scale[:, k]) for j in range(36)]))
                for k in range(36)
            ]
            assert sorted(order) == list(range(36)), "EFP columns do not match one to one"
        worst = max(worst, float(np.max(np.abs(mine[:, order] - theirs) / scale)))
    return worst, order


def _w1efp_per_efp(jn: dict[str, Any], sf: dict[str, Any], order: list[int]) -> float:
    """Max relative difference of the per-EFP W1 values, graphs matched by structure."""
    from showerforge.evaluation.jets import metrics as jm

    names = [g.name for g in jm.efp_graphs(4)]
    ours = [g.name for g in jm._efp_selection("n=4,d=4,connected")]
    cols = [ours.index(names[order[k]]) for k in _w1efp_columns(jn)]
    return max(
        abs(sf["pairs"][p]["w1efp_per"][c][0] / v - 1.0)
        for p in PAIRS
        for c, v in zip(cols, jn["pairs"][p]["w1efp"]["means"], strict=True)
    )


def _row(metric: str, pair: str, jn: tuple[float, float], sf: tuple[float, float], same: bool) -> tuple[str, bool]:
    """One markdown row. Agreement on the same draws: |difference| <= max(jetnet's error, 1 % of
    jetnet's value); on different draws (independent estimates): <= the errors in quadrature."""
    diff = sf[0] - jn[0]
    rel = diff / abs(jn[0]) if jn[0] else float("inf") if diff else 0.0
    ok = abs(diff) <= (max(jn[1], 0.01 * abs(jn[0])) if same else float(np.hypot(jn[1], sf[1])))
    return (
        f"| {metric} | {pair} | {jn[0]:.6g} ± {jn[1]:.2g} | {sf[0]:.6g} ± {sf[1]:.2g} | {rel:+.1e} | "
        f"{'yes' if ok else 'NO'} |",
        ok,
    )


def parity_table(jn: dict[str, Any], sf: dict[str, Any]) -> tuple[str, bool]:
    """Markdown table jetnet vs showerforge; True when every row agrees."""
    lines = [
        "| metric | pair | jetnet | showerforge | rel. diff | agrees |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    all_ok = True
    for pair in PAIRS:
        j, s = jn["pairs"][pair], sf["pairs"][pair]
        rows = [("W1M", j["w1m"], s["w1m"])]
        for k, feat in enumerate(("eta_rel", "phi_rel", "pt_rel")):
            rows.append((f"W1P {feat}", (j["w1p"]["means"][k], j["w1p"]["stds"][k]), s["w1p"][k]))
        rows.append(("W1EFP (mean of 5)", (np.mean(j["w1efp"]["means"]), np.mean(j["w1efp"]["stds"])), s["w1efp"]))
        rows += [
            ("FPD", j["fpd"], s["fpd"]),
            ("KPD (same draws)", j["kpd"], s["kpd"]),
            ("KPD (own draws)", j["kpd"], s["kpd_own"]),
        ]
        for metric, jv, sv in rows:
            line, ok = _row(metric, pair, tuple(jv), tuple(sv), same="own draws" not in metric)
            lines.append(line)
            all_ok &= ok
    return "\n".join(lines), all_ok


def convention_table(jn: dict[str, Any], sf: dict[str, Any]) -> str:
    """jetnet beside showerforge's non-default conventions (normed EFPs, exact least squares)."""
    lines = [
        '| metric | pair | jetnet | showerforge `normed=True` | ratio | showerforge `extrapolation="lsq"` | lsq − jetnet |',
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for pair in PAIRS:
        j, s = jn["pairs"][pair], sf["pairs"][pair]
        w1 = float(np.mean(j["w1efp"]["means"]))
        lines.append(
            f"| W1EFP | {pair} | {w1:.4g} | {s['w1efp_normed'][0]:.4g} | {s['w1efp_normed'][0] / w1:.2f} | | |"
        )
        lines.append(
            f"| FPD | {pair} | {j['fpd'][0]:.4g} ± {j['fpd'][1]:.2g} | {s['fpd_normed'][0]:.4g} ± {s['fpd_normed'][1]:.2g} | "
            f"{s['fpd_normed'][0] / j['fpd'][0]:.2f} | {s['fpd_lsq'][0]:.4g} ± {s['fpd_lsq'][1]:.2g} | {s['fpd_lsq'][0] - j['fpd'][0]:+.2g} |"
        )
        lines.append(
            f"| KPD | {pair} | {j['kpd'][0]:.3g} ± {j['kpd'][1]:.2g} | {s['kpd_normed'][0]:.3g} ± {s['kpd_normed'][1]:.2g} | "
            f"{s['kpd_normed'][0] / j['kpd'][0]:.2f} | | |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- driver


def _samples(workdir: Path, n: int, jet_type: str) -> dict[str, float]:
    """Pythia8 samples as ``.npy`` (reused when present); returns seconds spent per sample."""
    from showerforge.simulate.jets import JetConfig, simulate_jets

    times = {}
    for name, seed in (("real", 1), ("other", 2)):
        path = workdir / f"{name}.npy"
        if not path.exists():
            t0 = time.perf_counter()
            batch = simulate_jets(JetConfig(jet_type, mpi=False), n, seed=seed)
            np.save(path, batch.particle_features.astype(np.float64))
            times[name] = time.perf_counter() - t0
    wide = np.load(workdir / "other.npy")
    wide[..., :2] *= 1.1
    np.save(workdir / "wide.npy", wide)
    return times


def _run_jetnet(python: str, workdir: Path) -> dict[str, Any]:
    """This file in jetnet mode in the other environment."""
    subprocess.run([python, str(Path(__file__).resolve()), "--jetnet-side", str(workdir)], check=True)
    return json.loads((workdir / "jetnet.json").read_text())


def known_answers(python: str, workdir: Path) -> None:
    """Print jetnet's answers on the fixed small input of the tests as literals."""
    from showerforge.evaluation.jets import metrics as jm

    np.save(workdir / "a.npy", fixed_jets(200, 10, 0.0))
    np.save(workdir / "b.npy", fixed_jets(200, 10, 0.5, widen=1.2))
    cfg = {
        "samples": ["a", "b"],
        "pairs": {"ab": ["a", "b"]},
        "seed": 0,
        "efp_jobs": 1,
        "w1_samples": 200,
        "w1_batches": 3,
        **{"fpd_min": 50, "fpd_max": 200, "fpd_batches": 5, "fpd_points": 4, "kpd_batches": 4, "kpd_size": 50},
    }
    (workdir / "config.json").write_text(json.dumps(cfg))
    jn = _run_jetnet(python, workdir)
    efps_a = np.load(workdir / "jetnet_efps_a.npy")
    _, order = _efp_comparison(workdir, {n: jm.fpd_kpd_features(np.load(workdir / f"{n}.npy")) for n in "ab"}, cfg)
    names = [g.name for g in jm.efp_graphs(4)]
    print(f"# jetnet {jn['versions']}")
    print("JETNET_EFPS = {  # energyflow values of jets 0-2 of fixed_jets(200, 10, 0.0)")
    for k in np.argsort(order):
        print(f"    {names[order[k]]!r}: ({', '.join(repr(float(v)) for v in efps_a[:3, k])}),")
    print("}")
    print(f"JETNET_AB = {json.dumps(jn['pairs']['ab'])}")
    print(f"JETNET_W1EFP_NAMES = {[names[order[k]] for k in _w1efp_columns(jn)]}  # order of JETNET_AB['w1efp']")


def _w1efp_columns(jn: dict[str, Any]) -> list[int]:
    """Index in energyflow's ``d<=4`` list of each graph of jetnet's ``w1efp`` set."""
    return [jn["efp_graphs"].index(g) for g in jn["w1efp_graphs"]]


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jetnet-side", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--known-answers", action="store_true", help="print jetnet's answers for the tests")
    ap.add_argument("--jetnet-python", default=os.environ.get("JETNET_PYTHON", "/work/scratch/jetnet-venv/bin/python"))
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "showerforge_jets_vs_jetnet")
    ap.add_argument("--n", type=int, default=10_000, help="jets per Pythia8 sample")
    ap.add_argument("--type", default="t", help="jet type (g, q, t, w, z)")
    ap.add_argument("--seed", type=int, default=42, help="bootstrap seed (jetnet's default for fpd/kpd)")
    ap.add_argument("--efp-jobs", type=int, default=1, help="energyflow worker processes")
    args = ap.parse_args(argv)
    if args.jetnet_side:
        jetnet_side(args.jetnet_side)
        return 0
    workdir = args.workdir / (f"{args.type}_{args.n}" if not args.known_answers else "known_answers")
    workdir.mkdir(parents=True, exist_ok=True)
    if args.known_answers:
        known_answers(args.jetnet_python, workdir)
        return 0
    cfg = {
        "samples": ["real", "other", "wide"],
        "pairs": PAIRS,
        "seed": args.seed,
        "efp_jobs": args.efp_jobs,
        "w1_samples": args.n // 2,
        "w1_batches": 5,
        **{"fpd_min": args.n // 5, "fpd_max": args.n // 2, "fpd_batches": 20, "fpd_points": 10},
        **{"kpd_batches": 10, "kpd_size": min(5_000, args.n // 5)},
    }
    (workdir / "config.json").write_text(json.dumps(cfg))
    sim_s = _samples(workdir, args.n, args.type)
    t0 = time.perf_counter()
    jn = _run_jetnet(args.jetnet_python, workdir)
    t1 = time.perf_counter()
    sf = showerforge_side(workdir, cfg)
    t2 = time.perf_counter()
    worst, order = _efp_comparison(workdir, sf.pop("efps"), cfg)
    per_efp = _w1efp_per_efp(jn, sf, order)
    table, all_ok = parity_table(jn, sf)
    print(f"jetnet {jn['versions']}; {args.n} {args.type} jets per sample; settings {json.dumps(cfg)}")
    print(f"Pythia8 {sim_s} s; jetnet {t1 - t0:.0f} s; showerforge {t2 - t1:.0f} s")
    print(f"\nall 36 EFPs of every jet: max relative difference energyflow vs showerforge = {worst:.1e}")
    print(f"W1 of each of the 5 W1EFP graphs: max relative difference = {per_efp:.1e}\n")
    print(table + "\n\n" + convention_table(jn, sf))
    (workdir / "results.json").write_text(
        json.dumps(
            {"config": cfg, "jetnet": jn, "showerforge": sf, "efp_max_rel": worst, "w1efp_per_efp_max_rel": per_efp},
            indent=1,
        )
    )
    print(f"\n{'every metric agrees' if all_ok else 'SOME METRICS DISAGREE'}; results: {workdir / 'results.json'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
