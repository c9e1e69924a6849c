"""The embedded default job: simulate (Geant4) -> train -> generate -> evaluate, on ``mini``;
then the shipped ``ds2-electron`` surrogate beside a small fresh Geant4 ds2 sample.

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
    shipped: str = "ds2-electron"
    shipped_n: int = 500
    shipped_energy: str = "1:100GeV"


def run_demo(out: Path, cfg: DemoConfig | None = None, say: Callable[[str], None] = print) -> Path:
    """Run the whole chain into ``out``; returns the path of the report's ``index.html``.

    Re-running resumes: finished simulations and training epochs are kept.
    """
    cfg = cfg or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from showerforge.data.calo import open_showers
    from showerforge.geometry import get_geometry
    from showerforge.simulate.campaign import CaloCampaign, run_campaign
    from showerforge.simulate.energies import parse_energy

    t0 = time.time()
    geo = get_geometry(cfg.geometry)
    files = {}
    timings = {}
    sampling_fraction = None  # the test file uses the training file's, so both share one calibration
    for split, n, seed in (("train", cfg.n_train, cfg.seed), ("test", cfg.n_test, cfg.seed + 1000)):
        path = out / f"{cfg.particle}_{split}.h5"
        files[split] = path
        if path.exists():
            say(f"[1/5] {path} exists, kept")
        else:
            say(f"[1/5] Geant4: {n} {cfg.particle} showers ({split}), {cfg.energy} log-uniform, geometry {geo.name}")
            t = time.time()
            run_campaign(
                CaloCampaign(
                    geo,
                    cfg.particle,
                    parse_energy(cfg.energy),
                    n,
                    seed,
                    path,
                    shard_size=250,
                    sampling_fraction=sampling_fraction,
                ),
                workers=cfg.workers,
                on_status=say,
            )
            timings[f"geant4_{split}_s"] = time.time() - t
        if sampling_fraction is None:
            with open_showers(path) as f:
                sampling_fraction = f.geometry.sampling_fraction
    from showerforge.training import train_model

    run_dir = out / "run"
    say(f"[2/5] training {cfg.model} on {files['train']} (≤ {cfg.max_train_minutes:g} min)")
    t = time.time()
    train_model(files["train"], cfg.model, run_dir, epochs=cfg.epochs, seed=cfg.seed, max_minutes=cfg.max_train_minutes)
    timings["train_s"] = time.time() - t
    from showerforge.generate import energies_from, generate_showers

    gen = out / "generated.h5"
    say(f"[3/5] generating {cfg.n_test} showers with the energies of {files['test']}")
    t = time.time()
    generate_showers(run_dir, energies_from(files["test"]), gen, seed=cfg.seed)
    timings["generate_s"] = time.time() - t
    from showerforge.evaluation import evaluate_files

    say("[4/5] evaluating generated vs Geant4 (quick classifier protocol)")
    report = out / "report"
    metrics = evaluate_files(files["test"], gen, report, quick=True, seed=cfg.seed)
    say(_summary(metrics, timings, cfg.n_test, workers=cfg.workers))
    _shipped_demo(out, cfg, say)
    say(f"done in {(time.time() - t0) / 60:.1f} min")
    return report / "index.html"


def _shipped_demo(out: Path, cfg: DemoConfig, say: Callable[[str], None]) -> None:
    """ds2 showers of the shipped surrogate beside a small fresh Geant4 ds2 sample of the same energies."""
    from showerforge.evaluation import evaluate_files
    from showerforge.generate import energies_from, generate_showers
    from showerforge.geometry import get_geometry
    from showerforge.runs.shipped import shipped_models
    from showerforge.simulate.campaign import CaloCampaign, run_campaign
    from showerforge.simulate.energies import parse_energy

    card = shipped_models().get(cfg.shipped)
    if card is None:
        say(f"[5/5] the shipped model {cfg.shipped} is not installed: skipped")
        return
    ref, gen = out / "ds2_geant4.h5", out / "ds2_shipped.h5"
    timings: dict[str, float] = {}
    sf = card.get("reference", {}).get("sampling_fraction")
    if ref.exists():
        say(f"[5/5] {ref} exists, kept")
    else:
        say(
            f"[5/5] Geant4: {cfg.shipped_n} {cfg.particle} showers in ds2, {cfg.shipped_energy} log-uniform "
            f"(calibrated with the shipped model's sampling fraction)"
        )
        t = time.time()
        run_campaign(
            CaloCampaign(
                get_geometry("ds2"),
                cfg.particle,
                parse_energy(cfg.shipped_energy),
                cfg.shipped_n,
                cfg.seed + 2000,
                ref,
                shard_size=50,
                sampling_fraction=sf,
            ),
            workers=cfg.workers,
            on_status=say,
        )
        timings["geant4_test_s"] = time.time() - t
    say(f"      generating the same energies with the shipped {cfg.shipped} (no training)")
    t = time.time()
    generate_showers(cfg.shipped, energies_from(ref), gen, seed=cfg.seed)
    timings["generate_s"] = time.time() - t
    metrics = evaluate_files(ref, gen, out / "report_ds2", quick=True, seed=cfg.seed)
    say(f"ds2 ({cfg.shipped_n} showers each; small samples: see docs/benchmarks.md for 10k):")
    say(_summary(metrics, timings, cfg.shipped_n, workers=cfg.workers))
    say(f"ds2 report: {out / 'report_ds2' / 'index.html'}")


def _summary(metrics: dict, timings: dict[str, float], n_test: int, workers: int) -> str:
    """Two numbers side by side: how indistinguishable (classifier AUC) and how much faster."""
    lines = []
    cand, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    for kind in ("high_level", "low_level"):
        c = (cand.get("classifier", {}).get(kind) or {}).get("auc") or {}
        f = (floor.get("classifier", {}).get(kind) or {}).get("auc") or {}
        if c.get("value") is not None:
            lines.append(
                f"classifier AUC ({kind.replace('_', '-')}): {c['value']:.3f} ± {c['error']:.3f}"
                f"   (Geant4 vs Geant4: {f.get('value', float('nan')):.3f})"
            )
    if "geant4_test_s" in timings and "generate_s" in timings:
        g4 = timings["geant4_test_s"] * workers / n_test  # core-seconds per shower
        sur = timings["generate_s"] / n_test
        lines.append(
            f"speed: Geant4 {1e3 * g4:.1f} ms/shower per core, surrogate {1e3 * sur:.2f} ms/shower "
            f"(whole generate step, CPU): {g4 / sur:.0f}x faster"
        )
    return "\n".join(lines)
