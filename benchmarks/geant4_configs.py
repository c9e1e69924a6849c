"""Geant4 configuration choices as validation candidates: CPU time saved against fidelity lost.

Simulates the same incident-energy spectrum with several Geant4 configurations (production cut,
EM physics constructor), one core each, and records the CPU seconds per shower of every campaign
(the shard subprocesses' user + system time). Then each configuration is validated against the
baseline reference with ``showerforge validate run`` (the suite is written into ``--out``, the
history is ``--out/history.db``) and one markdown table is printed: CPU time relative to the baseline, classifier AUCs, chi2/ndf
and gates. Every campaign keeps the baseline's sampling fraction (``--sampling-fraction``): a
change of the visible energy is physics that the validation must see, not a recalibration.

    python benchmarks/geant4_configs.py --out /data/g4cfg --n 2000 \\
        --reference ds2_e_test.h5 [--simulate-only | --validate-only]

Re-running resumes: finished campaigns are reused (their CPU time is kept in ``cpu.json``).

The campaigns' CPU times depend on the load of the machine while each ran; ``--timing N`` measures
the CPU-time ratios in one controlled run instead: every configuration simulates the same N
incident energies in its own process, in interleaved rounds (baseline, cut-1mm, ..., baseline,
...), initialisation excluded, and the table quotes the median ratio to the baseline of the same
round (``timing.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _validation import validated

# (label, physics, production cut in mm)
CONFIGS = [
    ("baseline-seed2", "standard", 0.7),
    ("cut-1mm", "standard", 1.0),
    ("cut-2mm", "standard", 2.0),
    ("cut-5mm", "standard", 5.0),
    ("option1", "option1", 0.7),
    ("option3", "option3", 0.7),
]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def simulate(out: Path, n: int, seed: int, sampling_fraction: float, geometry: str, energy: str) -> dict:
    cpu_file = out / "cpu.json"
    cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
    for k, (label, physics, cut) in enumerate(CONFIGS):
        target = out / f"{label}.h5"
        if target.is_file() and label in cpu:
            continue
        cmd = [
            sys.executable, "-m", "showerforge", "simulate", "calo", "--geometry", geometry,
            "--energy", energy, "--spectrum", "log-uniform", "--n", str(n), "--seed", str(seed + k),
            "--workers", "1", "--physics", physics, "--cut", str(cut),
            "--sampling-fraction", repr(sampling_fraction), "-o", str(target),
        ]  # fmt: skip
        c0, w0 = _children_cpu(), time.perf_counter()
        subprocess.run(cmd, check=True)
        cpu[label] = {
            "physics": physics,
            "cut_mm": cut,
            "n": n,
            "cpu_s": _children_cpu() - c0,
            "wall_s": time.perf_counter() - w0,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        cpu_file.write_text(json.dumps(cpu, indent=1))
        print(f"{label}: {cpu[label]['cpu_s'] / n:.3f} CPU s/shower", flush=True)
    return cpu


SUITE = """name = "geant4-configs"
gates = [
    "auc_high <= 0.60",
    'chi2_ndf("etot_over_einc") <= 4',
    'chi2_ndf("longitudinal_profile") <= 4',
    'chi2_ndf("radial_profile") <= 4',
]

[reference]
file = "{reference}"

[analyses]
use = ["calo_energy", "calo_profiles"]

[metrics]
quick = true
classifiers = ["high_level", "low_level"]
"""

COLUMNS = ["etot_over_einc", "longitudinal_profile", "radial_profile"]


def validate(out: Path, cpu: dict, reference: Path) -> str:
    suite = out / "suite.toml"
    suite.write_text(SUITE.format(reference=reference.resolve()))
    rows = [
        "| configuration | CPU s/shower | CPU vs baseline | AUC high | AUC low | "
        + " | ".join(f"chi2/ndf {c}" for c in COLUMNS)
        + " | chi2/ndf mean (all) | gates |",
        "|---" * (7 + len(COLUMNS)) + "|",
    ]
    base = cpu["baseline-seed2"]["cpu_s"] / cpu["baseline-seed2"]["n"]
    timed = json.loads((out / "timing.json").read_text()) if (out / "timing.json").is_file() else None
    for label, _, _ in CONFIGS:
        target = out / "validation" / label
        res = validated(suite, out / f"{label}.h5", label, out / "history.db", target)
        m = res["metrics"]
        s = cpu[label]["cpu_s"] / cpu[label]["n"]
        ratio = s / base
        if timed is not None:  # the controlled measurement, when it was made
            key = "baseline" if label == "baseline-seed2" else label
            s, ratio = timed["s_per_shower_median"][key], timed["ratio_median"][key]
        chi = [res["histograms"][c]["chi2_ndf"] for c in COLUMNS]
        failed = [g["expr"] for g in res["gates"] if not g["passed"]]
        auc = [f"{m[k]['value']:.3f} ± {m[k]['error']:.3f}" for k in ("auc_high", "auc_low")]
        rows.append(
            f"| {label} | {s:.3f} | {ratio:.2f} | {auc[0]} | {auc[1]} | "
            + " | ".join("-" if c is None else f"{c:.2f}" for c in chi)
            + f" | {m['chi2_ndf_mean']['value']:.2f} | {'pass' if not failed else 'FAIL: ' + '; '.join(failed)} |"
        )
    floor = f"floor (reference halves): AUC high {m['auc_high']['floor']:.3f}, AUC low {m['auc_low']['floor']:.3f}"
    return "\n".join(rows) + "\n\n" + floor


_TIMER = """
import json, sys, time, warnings
import numpy as np
from showerforge.geometry import get_geometry
from showerforge.simulate.calo_g4 import simulate_showers
geometry, physics, cut, n, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
warnings.simplefilter("ignore")
geo = get_geometry(geometry)
simulate_showers(geo, "e-", np.array([1000.0]), seed, physics=physics, production_cut_mm=cut)  # initialisation
energies = 10 ** np.random.default_rng(seed).uniform(3, 5, n)  # MeV, log-uniform 1-100 GeV
c0 = time.process_time()
simulate_showers(geo, "e-", energies, seed + 1, physics=physics, production_cut_mm=cut)
print(json.dumps({"cpu_s": time.process_time() - c0}))
"""


def timing(out: Path, n: int, rounds: int, geometry: str, only: list[str] | None = None, name: str = "timing") -> dict:
    """CPU seconds per shower of every configuration (or ``only`` these), interleaved rounds,
    the same energies for every configuration of a round; written to ``out/<name>.json``."""
    result: dict = {"n": n, "rounds": rounds, "date": time.strftime("%Y-%m-%d %H:%M"), "per_round": []}
    configs = [("baseline", "standard", 0.7)] + [c for c in CONFIGS if c[0] != "baseline-seed2"]
    configs = [c for c in configs if only is None or c[0] in only or c[0] == "baseline"]
    for r in range(rounds):
        row = {}
        for label, physics, cut in configs:
            cmd = [sys.executable, "-c", _TIMER, geometry, physics, str(cut), str(n), str(100 + r)]
            res = subprocess.run(cmd, check=True, capture_output=True, text=True)
            row[label] = json.loads(res.stdout.strip().splitlines()[-1])["cpu_s"] / n
            print(f"round {r}: {label} {row[label]:.3f} CPU s/shower", flush=True)
        result["per_round"].append(row)
    labels = list(result["per_round"][0])
    result["ratio_median"] = {
        k: float(sorted(rr[k] / rr["baseline"] for rr in result["per_round"])[rounds // 2]) for k in labels
    }
    result["s_per_shower_median"] = {k: float(sorted(rr[k] for rr in result["per_round"])[rounds // 2]) for k in labels}
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--geometry", default="ds2")
    ap.add_argument("--energy", default="1:100GeV")
    ap.add_argument("--sampling-fraction", type=float, default=0.03196973047403725)
    ap.add_argument("--reference", type=Path, help="baseline reference file (standard physics, 0.7 mm)")
    ap.add_argument("--simulate-only", action="store_true")
    ap.add_argument("--timing", type=int, default=0, metavar="N", help="controlled CPU timing with N showers per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", help="time only these configurations (and the baseline)")
    ap.add_argument("--timing-name", default="timing", help="file stem of the timing result")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.timing:
        timing(args.out, args.timing, args.rounds, args.geometry, args.only, args.timing_name)
        return 0
    simulate(args.out, args.n, args.seed, args.sampling_fraction, args.geometry, args.energy)
    if args.simulate_only:
        return 0
    if args.reference is None:
        ap.error("--reference (the baseline sample, standard physics, 0.7 mm) is needed to validate")
    cpu = json.loads((args.out / "cpu.json").read_text())
    print(validate(args.out, cpu, args.reference))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
