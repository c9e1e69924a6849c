"""Geant4-vs-Geant4 rows of every point-cloud metric at several sample sizes (the floor table).

    python benchmarks/points_floor.py --a ild_photons_test.h5 [--b ild_photons_train.h5] \
        --sizes 1000,5000,10000 --out floor/ [--markdown floor.md]

Two independent Geant4 samples A and B (different seeds); without ``--b`` the showers of A are
split into two disjoint halves (the first and the second half of the file), so the largest size
is half of A. For each size n, ``sf.evaluate`` compares the first n showers of B (as the
candidate) with the first n of A (as the reference): its ``candidate_vs_reference`` block is then
Geant4 against Geant4 at n vs n. Printed as a Markdown table (W1 x 100 per observable with its
bootstrap error, the mean, the classifier AUC).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True)
    ap.add_argument("--b", type=Path, default=None)
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    import showerforge as sf
    from showerforge.data.points import points_count, read_points, write_points

    sizes = [int(s) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = args.a, args.b
        if b is None:
            n = points_count(a)
            clouds = read_points(a)
            half = n // 2
            a, b = Path(tmp) / "a.h5", Path(tmp) / "b.h5"
            write_points(a, clouds.select(slice(0, half)))
            write_points(b, clouds.select(slice(half, 2 * half)))
            del clouds
        limit = min(points_count(a), points_count(b))
        rows = []
        for n in sizes:
            if n > limit:
                print(f"skipping {n}: the samples hold {limit} showers")
                continue
            m = sf.evaluate(a, b, output=args.out / f"n{n}", max_samples=n, seed=args.seed)
            block = m["candidate_vs_reference"]
            rows.append(
                {"n": n, "w1x100": block["w1x100"], "mean": block["w1x100_mean"], "auc": block["classifier"]["auc"]}
            )
            print(f"n = {n} done", flush=True)
    names = list(rows[0]["w1x100"]) if rows else []

    def fmt(m: dict | None) -> str:
        return "–" if not m or m.get("value") is None else f"{m['value']:.2f} ± {m['error']:.2f}"

    lines = [
        "| showers (n vs n) | " + " | ".join(names) + " | W1×100 mean | AUC |",
        "|---:|" + "---:|" * (len(names) + 2),
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | "
            + " | ".join(fmt(r["w1x100"][k]) for k in names)
            + f" | {fmt(r['mean'])} | {fmt(r['auc'])} |"
        )
    info = f"machine {platform.machine()}, {os.cpu_count()} cores, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}"
    text = "\n".join(lines) + "\n\n" + info + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    (args.out / "floor.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
