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
    for label, _, _ in CONFIGS:
        target = out / "validation" / label
        if not (target / "result.json").is_file():
            cmd = [
                sys.executable, "-m", "showerforge", "validate", "run", "--suite", str(suite),
                "--candidate", str(out / f"{label}.h5"), "--label", label, "--store", str(out / "history.db"),
                "-o", str(target), "--replace",
            ]  # fmt: skip
            code = subprocess.run(cmd).returncode
            if code not in (0, 1):
                raise SystemExit(f"validate run failed for {label}, exit {code}")
        res = json.loads((target / "result.json").read_text())
        m = res["metrics"]
        s = cpu[label]["cpu_s"] / cpu[label]["n"]
        chi = [res["histograms"][c]["chi2_ndf"] for c in COLUMNS]
        failed = [g["expr"] for g in res["gates"] if not g["passed"]]
        auc = [f"{m[k]['value']:.3f} ± {m[k]['error']:.3f}" for k in ("auc_high", "auc_low")]
        rows.append(
            f"| {label} | {s:.3f} | {s / base:.2f} | {auc[0]} | {auc[1]} | "
            + " | ".join("-" if c is None else f"{c:.2f}" for c in chi)
            + f" | {m['chi2_ndf_mean']['value']:.2f} | {'pass' if not failed else 'FAIL: ' + '; '.join(failed)} |"
        )
    floor = f"floor (reference halves): AUC high {m['auc_high']['floor']:.3f}, AUC low {m['auc_low']['floor']:.3f}"
    return "\n".join(rows) + "\n\n" + floor


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
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
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
