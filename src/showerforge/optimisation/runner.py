"""The whole job of ``showerforge optimise``: the loop, then verification and baselines on request.

Verification re-simulates the start and the final design (and each baseline's best) with fresh
seeds (:mod:`verify`); the comparison (``OUT/comparison.md``, ``OUT/comparison.json``) gives, per
verified design, the Geant4 showers its method spent and its verified loss and resolution, and, per
method, the mean and spread of those over the method's seeds (``baseline_seeds`` runs of each
baseline; the loop is one run).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.optimisation.baselines import BASELINES, best_design, run_baseline, run_name
from showerforge.optimisation.config import load_config
from showerforge.optimisation.design import Design, DesignSpace
from showerforge.optimisation.loop import OptimiseResult, run_loop
from showerforge.optimisation.verify import resolution_table, verify_designs

__all__ = [
    "RunResult",
    "optimise_and_verify",
    "parse_verify_energies",
    "method_of",
    "summarise_methods",
    "methods_table",
]


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
    baseline_seeds: int | None = None,
    progress: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> RunResult:
    """The loop (:func:`showerforge.optimisation.loop.run_loop`), then verification and baselines.

    Each baseline runs ``baseline_seeds`` times (default: the config's ``[simulation]
    baseline_seeds``), seed by seed: ``random``, ``tpe``, then ``random-s1``, ``tpe-s1``, ...
    Everything is checked before any Geant4: the config, the verification energies, the baselines.
    """
    say = on_status or (lambda m: None)
    cfg = load_config(config, workers=workers, iterations=iterations, baseline_seeds=baseline_seeds)
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
    for repeat in range(cfg.baseline_seeds if baselines else 0):
        for kind in baselines:
            name = run_name(kind, repeat)
            result.baselines[name] = run_baseline(
                kind, cfg, space, out / "baselines" / name, repeat=repeat, scheduler=scheduler, progress=progress,
                say=say,
            )  # fmt: skip
            designs[f"{name}-best"] = best_design(space, result.baselines[name])
            if verify:
                check()
    return result


_LABELS = {"start": "start (random)", "surrogate": "surrogate-guided (this loop)"}


def method_of(name: str) -> str:
    """The method of a verified design: ``random-s2-best`` -> ``random``; ``start``, ``surrogate`` as they are."""
    base = name.removesuffix("-best")
    kind, _, repeat = base.rpartition("-s")
    return kind if kind in BASELINES and repeat.isdigit() else base


def summarise_methods(doc: dict[str, Any], budget: int) -> list[dict[str, Any]]:
    """Per method, over its verified designs (one per seed): the mean and spread of the loss and of sigma/E.

    ``spread`` is the standard deviation over the seeds (``None`` for a single seed); ``error`` the
    verification's statistical error for a single seed, else ``spread / sqrt(seeds)``.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, r in doc["designs"].items():
        groups.setdefault(method_of(name), []).append(r)
    out = []
    for method, rs in groups.items():
        loss = _stats([r["loss"] for r in rs], rs[0]["loss_error"])
        res = [
            {
                "energy_mev": e,
                **_stats([r["resolution"][i]["resolution"] for r in rs], rs[0]["resolution"][i]["resolution_error"]),
            }
            for i, e in enumerate(doc["energies_mev"])
        ]
        spent = 0 if method == "start" else budget
        out.append(
            {
                "method": _LABELS.get(method, method),
                "seeds": len(rs),
                "geant4_showers_each": spent,
                "loss": loss,
                "resolution": res,
            }
        )
    return out


def _stats(values: list[float], single_error: float) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 1:
        return {
            "mean": float(v[0]),
            "spread": None,
            "error": float(single_error),
            "min": float(v[0]),
            "max": float(v[0]),
        }
    sd = float(v.std(ddof=1))
    return {
        "mean": float(v.mean()),
        "spread": sd,
        "error": sd / np.sqrt(len(v)),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def methods_table(methods: list[dict[str, Any]], energies_mev: list[float]) -> str:
    """Markdown: one row per method, ``mean ± spread over seeds`` (or ``± the error`` for one seed)."""
    head = "| method | seeds | Geant4 showers each | loss | " + " | ".join(
        f"σ/E at {e / 1000:g} GeV" for e in energies_mev
    )
    lines = [head + " |", "|" + "---|" * (4 + len(energies_mev))]
    for m in methods:
        cells = [_cell(m["loss"], 5)] + [_cell(r, 4) for r in m["resolution"]]
        lines.append(f"| {m['method']} | {m['seeds']} | {m['geant4_showers_each']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(s: dict[str, Any], digits: int) -> str:
    if s["spread"] is None:
        return f"{s['mean']:.{digits}f} ± {s['error']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['spread']:.{digits}f} sd ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def _comparison(out: Path, budget: int, best: dict[str, Any], doc: dict[str, Any]) -> None:
    rows = []
    for name, r in doc["designs"].items():
        method = _LABELS.get(name, name)
        spent = 0 if name == "start" else budget
        measured = best.get(name.removesuffix("-best"), {}).get("objective")
        rows.append({"method": method, "geant4_showers": spent, "measured_objective": measured, **r})
    methods = summarise_methods(doc, budget)
    data = {"budget_showers": budget, "rows": rows, "methods": methods, "verification": doc}
    with atomic_output(out / "comparison.json") as tmp:
        tmp.write_text(json.dumps(data, indent=1))
    energies = doc["energies_mev"]
    text = [
        f"Geant4 budget of each optimiser: {budget} showers (+ verification: {doc['n_calibration']} spectrum and "
        f"{doc['n_per_energy']} per energy showers per design, fresh seeds).",
        "",
        resolution_table(doc),
        "",
        "Per method, over its seeds (each baseline's best design of each seed, verified): mean ± standard "
        "deviation over the seeds (min–max); a method of one seed: its value ± the verification's error.",
        "",
        methods_table(methods, energies),
        "",
        "Penalty (quadratic, over the constraints) of each verified design: "
        + ", ".join(f"{r['method']}: length {r['length_mm']:.0f} mm, cost {r['cost']:.0f} CU" for r in rows),
        "",
        f"energies: {', '.join(f'{e / 1000:g} GeV' for e in energies)}",
    ]
    with atomic_output(out / "comparison.md") as tmp:
        tmp.write_text("\n".join(text) + "\n")
