"""The whole job of ``showerforge optimise``: the loop, then verification and baselines on request.

Verification re-simulates the start and the final design (and each baseline's best) with fresh
seeds (:mod:`verify`); the comparison (``OUT/comparison.md``, ``OUT/comparison.json``) gives, per
method, the Geant4 showers it spent and the verified loss and resolution of its design.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.optimisation.baselines import BASELINES, best_design, run_baseline
from showerforge.optimisation.config import load_config
from showerforge.optimisation.design import Design, DesignSpace
from showerforge.optimisation.loop import OptimiseResult, run_loop
from showerforge.optimisation.verify import resolution_table, verify_designs

__all__ = ["RunResult", "optimise_and_verify", "parse_verify_energies"]


@dataclass
class RunResult(OptimiseResult):
    """:class:`OptimiseResult` plus the verification and the baselines' best trials (when asked)."""

    verification: dict[str, Any] | None = None
    baselines: dict[str, Any] = field(default_factory=dict)


def parse_verify_energies(text: str) -> list[float]:
    """``2,5,10,20GeV`` -> MeV values (a list of energies with a unit)."""
    from showerforge.simulate.energies import parse_energy

    spec = parse_energy(text)
    if spec.spectrum not in ("fixed", "list"):
        raise UserError(f"--verify-energies {text!r}: expected a list of energies such as 2,5,10,20GeV")
    return [float(v) for v in spec.values_mev]


def optimise_and_verify(
    config: str | Path,
    output: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    iterations: int | None = None,
    verify: bool = False,
    verify_energies: str = "2,5,10,20GeV",
    verify_n: int = 300,
    baselines: Sequence[str] = (),
    progress: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> RunResult:
    """The loop (:func:`showerforge.optimisation.loop.run_loop`), then verification and baselines.

    Everything is checked before any Geant4: the config, the verification energies, the baselines.
    """
    say = on_status or (lambda m: None)
    cfg = load_config(config, workers=workers, iterations=iterations)
    energies = parse_verify_energies(verify_energies)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise UserError(f"--baselines: unknown baseline {unknown[0]!r}; expected some of {', '.join(BASELINES)}")
    if "tpe" in baselines:
        import optuna  # noqa: F401  (fail now, not after the loop, when it is missing)
    out = Path(output)
    res = run_loop(cfg, out, scheduler=scheduler, progress=progress, say=say)
    space = DesignSpace(cfg)
    result = RunResult(res.output, res.records, res.start, res.final)
    designs: dict[str, Design] = {"start": res.start, "surrogate": res.final}

    def check() -> None:  # verified designs are cached: each call simulates only the new ones
        result.verification = verify_designs(
            cfg, space, designs, out / "verification", energies_mev=energies, n_per_energy=verify_n,
            n_calibration=2 * verify_n, scheduler=scheduler, progress=progress, say=say,
        )  # fmt: skip
        _comparison(out, cfg.showers_per_iteration * len(res.records), result.baselines, result.verification)
        from showerforge.optimisation.report import write_report

        write_report(out, cfg, space, json.loads((out / "state.json").read_text()))

    if verify:
        check()
    for b in baselines:
        result.baselines[b] = run_baseline(
            b, cfg, space, out / "baselines" / b, scheduler=scheduler, progress=progress, say=say
        )
        designs[f"{b}-best"] = best_design(space, result.baselines[b])
        if verify:
            check()
    return result


def _comparison(out: Path, budget: int, best: dict[str, Any], doc: dict[str, Any]) -> None:
    rows = []
    for name, r in doc["designs"].items():
        method = {"start": "start (random)", "surrogate": "surrogate-guided (this loop)"}.get(name, name)
        spent = 0 if name == "start" else budget
        measured = best.get(name.removesuffix("-best"), {}).get("objective")
        rows.append({"method": method, "geant4_showers": spent, "measured_objective": measured, **r})
    data = {"budget_showers": budget, "rows": rows, "verification": doc}
    with atomic_output(out / "comparison.json") as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    energies = doc["energies_mev"]
    text = [
        f"Geant4 budget of each optimiser: {budget} showers (+ verification: {doc['n_calibration']} spectrum and "
        f"{doc['n_per_energy']} per energy showers per design, fresh seeds).",
        "",
        resolution_table(doc),
        "",
        "Penalty (quadratic, over the constraints) of each verified design: "
        + ", ".join(f"{r['method']}: length {r['length_mm']:.0f} mm, cost {r['cost']:.0f} CU" for r in rows),
        "",
        f"energies: {', '.join(f'{e / 1000:g} GeV' for e in energies)}",
    ]
    with atomic_output(out / "comparison.md") as tmp:
        tmp.write_text("\n".join(text) + "\n")
