"""The embedded default job: simulate (Geant4) -> train -> generate -> evaluate, on ``mini``.

Small enough for 2 CPU cores in well under 20 minutes; every step is the real one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoConfig", "run_demo"]


@dataclass
class DemoConfig:
    """Sizes of the demo (defaults tuned for 2 CPU cores)."""

    geometry: str = "mini"
    particle: str = "e-"
    energy: str = "1:10GeV"
    n_train: int = 3000
    n_test: int = 1000
    seed: int = 7
    workers: int = 2
    epochs: int = 300
    max_train_minutes: float = 5.0
    model: str = "cfm-voxel"


def run_demo(out: Path, cfg: DemoConfig | None = None, say: Callable[[str], None] = print) -> Path:
    """Run the whole chain into ``out``; returns the path of the report's ``index.html``.

    Re-running resumes: finished simulations and training epochs are kept.
    """
    cfg = cfg or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from showerforge.geometry import get_geometry
    from showerforge.simulate.campaign import CaloCampaign, run_campaign
    from showerforge.simulate.energies import parse_energy

    t0 = time.time()
    geo = get_geometry(cfg.geometry)
    files = {}
    timings = {}
    for split, n, seed in (("train", cfg.n_train, cfg.seed), ("test", cfg.n_test, cfg.seed + 1000)):
        path = out / f"{cfg.particle}_{split}.h5"
        files[split] = path
        if path.exists():
            say(f"[1/4] {path} exists, kept")
            continue
        say(f"[1/4] Geant4: {n} {cfg.particle} showers ({split}), {cfg.energy} log-uniform, geometry {geo.name}")
        t = time.time()
        run_campaign(CaloCampaign(geo, cfg.particle, parse_energy(cfg.energy), n, seed, path, shard_size=250),
                     workers=cfg.workers, on_status=say)
        timings[f"geant4_{split}_s"] = time.time() - t
    from showerforge.train import train_model

    run_dir = out / "run"
    say(f"[2/4] training {cfg.model} on {files['train']} (≤ {cfg.max_train_minutes:g} min)")
    t = time.time()
    train_model(files["train"], cfg.model, run_dir, epochs=cfg.epochs, seed=cfg.seed,
                max_minutes=cfg.max_train_minutes)
    timings["train_s"] = time.time() - t
    from showerforge.generate import energies_from, generate_showers

    gen = out / "generated.h5"
    say(f"[3/4] generating {cfg.n_test} showers with the energies of {files['test']}")
    t = time.time()
    generate_showers(run_dir, energies_from(files["test"]), gen, seed=cfg.seed)
    timings["generate_s"] = time.time() - t
    from showerforge.evaluate import evaluate_files

    say("[4/4] evaluating generated vs Geant4 (quick classifier protocol)")
    report = out / "report"
    evaluate_files(files["test"], gen, report, quick=True, seed=cfg.seed)
    say(f"done in {(time.time() - t0) / 60:.1f} min")
    return report / "index.html"
