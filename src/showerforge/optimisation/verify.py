"""Verification: designs re-simulated with fresh seeds and compared on the energy resolution.

For each design, ``n_calibration`` showers of the beam spectrum and ``n_per_energy`` showers at
each verification energy are simulated with seeds that the loop never uses
(``SeedSequence([seed, 7000001, design, part])``). The reconstruction is fitted the same way as in
the loop (cross-fitted over all of a design's showers); at each energy the resolution is
``sigma / E`` with ``sigma`` the standard deviation of the reconstructed energies and its error
``(sigma / E) / sqrt(2 (n - 1))``; the mean per-event loss over the spectrum showers is given
with its standard error. Simulated showers are kept in ``FOLDER/<name>.h5``, so a rerun resumes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.io import atomic_output
from showerforge.optimisation.config import OptConfig
from showerforge.optimisation.design import Design, DesignSpace
from showerforge.optimisation.engines import EventBatch, provenance_summary, read_batch, simulate_designs, write_batch
from showerforge.optimisation.reco import load_reconstruction, per_event_loss

__all__ = ["verify_designs", "resolution_table"]

VERIFY_SALT = 7_000_001


def verify_designs(
    cfg: OptConfig,
    space: DesignSpace,
    designs: dict[str, Design],
    folder: Path,
    *,
    energies_mev: list[float],
    n_per_energy: int = 300,
    n_calibration: int = 600,
    scheduler: str | None = None,
    progress: bool = False,
    say: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """Resolution and loss of each named design with fresh Geant4 (module docstring); also written to
    ``FOLDER/verification.json``."""
    reco = load_reconstruction(cfg.reconstruction)
    results: dict[str, Any] = {}
    for j, (name, design) in enumerate(designs.items()):
        path = folder / f"{name}.h5"
        if not path.is_file():
            say(f"verifying {name}: {design.describe()}")
            _simulate(cfg, space, design, j, path, energies_mev, n_per_energy, n_calibration, scheduler, progress, say)
        batch, _, _ = read_batch(path)
        pred = reco(batch.layer_mev, batch.incident_mev, np.zeros(len(batch), dtype=np.int64), cfg.seed + j)
        results[name] = _summarise(space, design, batch, np.asarray(pred, dtype=np.float64), energies_mev)
    doc = {
        "energies_mev": list(energies_mev),
        "n_per_energy": n_per_energy,
        "n_calibration": n_calibration,
        "designs": results,
    }
    with atomic_output(folder / "verification.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1))
    return doc


def _simulate(
    cfg: OptConfig,
    space: DesignSpace,
    design: Design,
    j: int,
    path: Path,
    energies_mev: list[float],
    n_per_energy: int,
    n_calibration: int,
    scheduler: str | None,
    progress: bool,
    say: Callable[[str], None],
) -> None:
    ss = np.random.SeedSequence([cfg.seed, VERIFY_SALT, j])
    seeds = [int(s) >> 1 for s in ss.generate_state(len(energies_mev) + 2)]
    cal = cfg.energy.sample(n_calibration, np.random.default_rng(seeds[-1]))
    energies = [cal] + [np.full(n_per_energy, float(e)) for e in energies_mev]
    folder = path.with_suffix(".shards")
    batch = simulate_designs(
        cfg, space, [design] * len(energies), energies, seeds[: len(energies)], folder,
        scheduler=scheduler, progress=progress, say=say,
    )  # fmt: skip
    u = np.zeros((len(energies), space.n_cont))
    write_batch(path, batch, u, np.zeros((len(energies), len(space.sizes)), dtype=np.int64), [design] * len(energies))
    shutil.rmtree(folder, ignore_errors=True)


def _summarise(
    space: DesignSpace, design: Design, batch: EventBatch, pred: np.ndarray, energies_mev: list[float]
) -> dict[str, Any]:
    length, cost = space.design_length_cost(design)
    spectrum = batch.design_index == 0
    loss = per_event_loss(pred[spectrum], batch.incident_mev[spectrum])
    rows = []
    for i, e in enumerate(energies_mev, start=1):
        p = pred[batch.design_index == i]
        n = len(p)
        res = float(p.std(ddof=1) / e)
        rows.append(
            {
                "energy_mev": float(e),
                "n": n,
                "resolution": round(res, 5),
                "resolution_error": round(res / np.sqrt(2 * (n - 1)), 5),
                "response": round(float(p.mean() / e), 5),
            }
        )
    return {
        "design": design.to_dict(),
        "describe": design.describe(),
        "length_mm": round(length, 2),
        "cost": round(cost, 1),
        "loss": round(float(loss.mean()), 6),
        "loss_error": round(float(loss.std(ddof=1) / np.sqrt(len(loss))), 6),
        "resolution": rows,
        "provenance": provenance_summary(batch.provenance),
    }


def resolution_table(doc: dict[str, Any]) -> str:
    """A Markdown table: one row per design, sigma/E at each energy and the loss."""
    energies = doc["energies_mev"]
    head = "| design | length mm | cost CU | loss | " + " | ".join(f"σ/E at {e / 1000:g} GeV" for e in energies) + " |"
    lines = [head, "|" + "---|" * (4 + len(energies))]
    for name, r in doc["designs"].items():
        cells = [f"{x['resolution']:.4f} ± {x['resolution_error']:.4f}" for x in r["resolution"]]
        lines.append(
            f"| {name} | {r['length_mm']:.0f} | {r['cost']:.0f} | {r['loss']:.5f} ± {r['loss_error']:.5f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)
