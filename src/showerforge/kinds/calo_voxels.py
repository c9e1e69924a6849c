"""Calorimeter showers on a fixed voxel grid (CaloChallenge layout): the kind ``calo-voxels``.

Files hold ``incident_energies`` (N, 1) and ``showers`` (N, voxels) in MeV, voxels in (layer,
angle, radius) order; the readout geometry travels with the file. Events are drawn at incident
energies. The work is done by the modules named after this kind or its format in each layer
(``data.calo``, ``training.calo_voxels``, ``generate.calo_voxels``, ``evaluation.showers``,
``deploy``); this class only connects them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from showerforge.errors import UserError
from showerforge.kinds.base import DataKind, GenerationRequest, Status

__all__ = ["CaloVoxels"]


class CaloVoxels(DataKind):
    """Voxelised calorimeter showers (CaloChallenge datasets 1-3, showerforge's Geant4 output)."""

    name: ClassVar[str] = "calo-voxels"
    aliases: ClassVar[tuple[str, ...]] = ("calo-voxel", "calo", "showers")
    noun: ClassVar[str] = "showers"
    description: ClassVar[str] = "a shower file (keys 'showers', 'incident_energies')"
    default_model: ClassVar[str | None] = "cfm-voxel"
    simulate_keys: ClassVar[frozenset[str]] = frozenset(
        {"geometry", "particle", "energy", "spectrum", "n", "seed", "physics", "cut_mm"}
    )
    floor_section: ClassVar[str] = "reference_vs_reference"
    default_analyses: ClassVar[tuple[str, ...]] = ("calo_energy", "calo_shapes", "calo_profiles")

    # ------------------------------------------------------------------ files
    def matches(self, keys: Collection[str]) -> bool:
        return "showers" in keys and "incident_energies" in keys

    def count(self, spec: str | Path) -> int:
        from showerforge.data.calo import CaloFile

        with CaloFile.open(self.split_spec(spec)[0]) as f:
            return len(f)

    def inspect(self, spec: str | Path, *, geometry: Any = None) -> tuple[dict[str, Any], str]:
        from showerforge.inspect import format_inspection, inspect_file

        desc = inspect_file(self.split_spec(spec)[0], geometry)
        return desc, format_inspection(desc)

    def read_events(self, spec: str | Path, max_events: int | None = None) -> Any:
        from showerforge.evaluation.showers.sample import ShowerSample

        return ShowerSample.read(self.split_spec(spec)[0], max_events)

    # ------------------------------------------------------------------ training and runs
    def train(self, data: str | Path, output: str | Path, *, model: str | None, **settings: Any) -> Any:
        from showerforge.training.calo_voxels import train_model

        self.refuse_options(settings, ("condition",), "showers are conditioned on the incident energy")
        return train_model(data, model or str(self.default_model), output, **settings)

    def load(self, checkpoint: Path, device: Any = "cpu") -> Any:
        from showerforge.generate.calo_voxels import load_model

        return load_model(checkpoint, device)

    # ------------------------------------------------------------------ generation
    def draws(self, request: GenerationRequest, *, model: str) -> np.ndarray:
        """Incident energies in MeV: from ``energies_mev``, ``energies_from`` or ``energy`` with ``n``."""
        if request.types is not None:
            raise UserError(
                f"{model} is a shower model: it is sampled at incident energies; "
                f"use --energy with --n or --energies-from instead of {request.spelled('types')}"
            )
        given = request.given()
        if len(given) > 1:
            raise UserError(f"give one of {', '.join(request.spelled(g) for g in given)}, not several")
        if request.energies_mev is not None:
            return np.asarray(request.energies_mev, dtype=np.float64).reshape(-1)
        if request.energies_from is not None:
            from showerforge.generate.calo_voxels import energies_from

            return request.first_n(energies_from(request.energies_from))
        if request.energy is not None and request.n is not None:
            from showerforge.simulate.energies import parse_energy

            return parse_energy(request.energy).sample(int(request.n), np.random.default_rng(request.seed))
        raise UserError(
            f"{model} is a shower model: give {request.spelled('energies_from')} FILE, "
            f"or {request.spelled('energy')} with {request.spelled('n')}"
        )

    def generate(self, model: str | Path, draws: Any, output: str | Path, **options: Any) -> Path:
        from showerforge.generate.calo_voxels import generate_showers

        if options.get("backend") == "onnxruntime":
            import showerforge.deploy  # noqa: F401  (registers the onnxruntime sampler)
        return generate_showers(model, np.asarray(draws, dtype=np.float64), output, **options)

    def draws_like(self, reference: str | Path, n: int) -> np.ndarray:
        from showerforge.generate.calo_voxels import energies_from

        inc = energies_from(self.split_spec(reference)[0])
        return np.tile(inc, int(math.ceil(n / len(inc))))[:n]

    # ------------------------------------------------------------------ evaluation, export
    def evaluate(self, reference: str | Path, candidate: str | Path, output: Path, **options: Any) -> dict[str, Any]:
        from showerforge.evaluation.showers.report import evaluate_files

        self.refuse_options(options, ("efp_normed",))
        opts = {k: v for k, v in options.items() if v is not None and k not in ("efp_normed", "repeats")}
        if "max_samples" in opts:
            opts["max_showers"] = opts.pop("max_samples")
        if options.get("repeats") is not None:
            from dataclasses import replace

            from showerforge.evaluation.showers.classifier import ClassifierConfig

            cfg = opts.get("classifier_config") or (
                ClassifierConfig.quick() if opts.get("quick") else ClassifierConfig()
            )
            opts["classifier_config"] = replace(cfg, repeats=int(options["repeats"]))
        return evaluate_files(reference, candidate, output, **opts)

    def summary(self, metrics: dict[str, Any]) -> str:
        from showerforge.evaluation.showers.summary import format_summary

        return format_summary(metrics)

    def overlay_plots(
        self, reference: str | Path, candidates: list[str], names: list[str], out: Path, **options: Any
    ) -> list[dict[str, str]]:
        from showerforge.evaluation.leaderboard import shower_overlays

        return shower_overlays(reference, candidates, names, out, options)

    def headline_metrics(self) -> list[tuple[str, str, float]]:
        return [
            ("verdict AUC", "classifier.verdict.auc", 1.0),
            ("high-level AUC", "classifier.high_level.auc", 1.0),
            ("low-level AUC", "classifier.low_level.auc", 1.0),
            ("FPD x 1e3", "distances.fpd", 1e3),
            ("KPD x 1e3", "distances.kpd", 1e3),
            ("S mean", "separation_power_mean.all", 1.0),
            ("chi2/ndf mean", "chi2_ndf_mean.all", 1.0),
        ]

    # ------------------------------------------------------------------ validation and references
    def simulate(self, output: str | Path, settings: Mapping[str, Any], on_status: Status | None = None) -> Path:
        from showerforge.simulate.campaign import simulate_shower_file

        return simulate_shower_file(output=output, on_status=on_status, **dict(settings))

    def check_candidate(self, spec: str, reference: str) -> str:
        from showerforge.data.calo import require_clean

        path = self.split_spec(spec)[0]
        _same_readout(spec, _geometry_of(path), _geometry_of(self.split_spec(reference)[0]))
        require_clean(path, role="a candidate")
        return spec

    def check_model(self, spec: str, checkpoint: Mapping[str, Any], reference: str) -> None:
        geo = checkpoint.get("geometry")
        if not geo:
            return
        from showerforge.geometry import Geometry

        geometry = Geometry.from_dict(geo) if isinstance(geo, dict) else Geometry.from_json(str(geo))
        _same_readout(spec, geometry, _geometry_of(self.split_spec(reference)[0]))


def _geometry_of(path: Path) -> Any:
    from showerforge.data.calo import CaloFile

    with CaloFile.open(path) as f:
        return f.geometry


def _same_readout(spec: str, candidate: Any, reference: Any) -> None:
    if not candidate.same_readout(reference):
        raise UserError(
            f"--candidate {spec}: readout {candidate.name} ({candidate.n_voxels} voxels), the suite's reference has "
            f"{reference.name} ({reference.n_voxels} voxels); validate against a reference of the same readout"
        )
