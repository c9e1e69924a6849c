"""Geant4 configuration choices as validation candidates: CPU time saved against fidelity lost.

Simulates the same incident-energy spectrum with several Geant4 configurations (production cut,
EM physics constructor), one core each, and records the CPU seconds per shower of every campaign
(the shard subprocesses' user + system time). Then each configuration is validated against the
baseline reference with ``showerforge validate run`` (the suite ``benchmarks/suites/ds2_geant4.toml``)
and one markdown table is printed: CPU time relative to the baseline, classifier AUCs, chi2/ndf
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
