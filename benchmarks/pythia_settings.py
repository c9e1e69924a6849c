"""Pythia8 settings as validation candidates: each change validated against the previous version.

Generates g and t jets (800-1600 GeV, R = 0.8, 30 particles) with a baseline Pythia8
configuration twice (two seeds: reference and a same-settings candidate, i.e. the floor) and with
one setting changed at a time (MPI off, the ATLAS A14 tune, a higher PhaseSpace:pTHatMin),
recording the CPU seconds per jet of every campaign. Each candidate is then validated against the
baseline reference with ``showerforge validate run`` (one suite per jet type, written into
``--out``; the history in ``--out/history.db``) and a markdown table is printed.

    python benchmarks/pythia_settings.py --out /data/pycfg --n 2500 [--simulate-only]

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

from _validation import validated

# (label, extra command-line options of `showerforge simulate jets`)
CONFIGS = [
    ("baseline", []),
    ("baseline-seed2", []),
    ("mpi-off", ["--no-mpi"]),
    ("tune-a14", ["--pythia", "Tune:pp = 21"]),
    ("pthatmin-720", ["--pythia", "PhaseSpace:pTHatMin = 720"]),
]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def simulate(out: Path, n: int, seed: int, types: str) -> dict:
    cpu_file = out / "cpu.json"
    cpu = json.loads(cpu_file.read_text()) if cpu_file.is_file() else {}
    for k, (label, extra) in enumerate(CONFIGS):
        target = out / f"{label}.h5"
        if target.is_file() and label in cpu:
            continue
        cmd = [
            sys.executable, "-m", "showerforge", "simulate", "jets", "--type", types, "--n", str(n),
            "--seed", str(seed + k), "--workers", "1", *extra, "-o", str(target),
        ]  # fmt: skip
        c0, w0 = _children_cpu(), time.perf_counter()
        subprocess.run(cmd, check=True)
        n_jets = n * len(types.split(","))
        cpu[label] = {
            "options": extra,
            "n_jets": n_jets,
            "cpu_s": _children_cpu() - c0,
            "wall_s": time.perf_counter() - w0,
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        cpu_file.write_text(json.dumps(cpu, indent=1))
        print(f"{label}: {1e3 * cpu[label]['cpu_s'] / n_jets:.1f} CPU ms/jet", flush=True)
    return cpu


SUITE = """name = "pythia-{jet_type}"
gates = [
    "w1m_ratio <= 3",
    'chi2_ndf("jet_pt") <= 4',
    'chi2_ndf("jet_mass") <= 4',
    'chi2_ndf("multiplicity") <= 4',
    'chi2_ndf("tau21") <= 4',
    'chi2_ndf("tau32") <= 4',
]

[reference]
file = "{reference}:{jet_type}"

[analyses]
use = ["jet_kinematics", "jet_substructure", "jet_particles"]

[metrics]
quick = true
"""

COLUMNS = ["jet_pt", "jet_mass", "multiplicity", "tau21", "tau32", "pt_rel"]


def validate(out: Path, cpu: dict, types: str) -> str:
    rows = [
        "| type | settings | CPU ms/jet | CPU vs baseline | W1M / floor | "
        + " | ".join(f"chi2/ndf {c}" for c in COLUMNS)
        + " | gates |",
        "|---" * (5 + len(COLUMNS)) + "|",
    ]
    base_ms = 1e3 * cpu["baseline"]["cpu_s"] / cpu["baseline"]["n_jets"]
    for jet_type in types.split(","):
        suite = out / f"suite_{jet_type}.toml"
        suite.write_text(SUITE.format(jet_type=jet_type, reference=out / "baseline.h5"))
        for label, _ in CONFIGS[1:]:
            target = out / "validation" / jet_type / label
            res = validated(suite, out / f"{label}.h5", label, out / "history.db", target)
            ms = 1e3 * cpu[label]["cpu_s"] / cpu[label]["n_jets"]
            chi = [res["histograms"][c]["chi2_ndf"] for c in COLUMNS]
            failed = [g["expr"] for g in res["gates"] if not g["passed"]]
            rows.append(
                f"| {jet_type} | {label} | {ms:.1f} | {ms / base_ms:.2f} | {res['metrics']['w1m_ratio']['value']:.2f} | "
                + " | ".join("-" if c is None else f"{c:.2f}" for c in chi)
                + f" | {'pass' if not failed else 'FAIL: ' + '; '.join(failed)} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=2500, help="jets per type")
    ap.add_argument("--types", default="g,t")
    ap.add_argument("--seed", type=int, default=41)
    ap.add_argument("--simulate-only", action="store_true")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    simulate(args.out, args.n, args.seed, args.types)
    if args.simulate_only:
        return 0
    cpu = json.loads((args.out / "cpu.json").read_text())
    print(validate(args.out, cpu, args.types))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
