"""Jets as sets of particles (JetNet layout): the kind ``jet-set``.

Files hold ``particle_features`` (N, n, 4: eta_rel, phi_rel, pT_rel, mask) and ``jet_features``
(N, 4: pT in GeV, eta, mass in GeV, multiplicity), with a jet type per jet; ``FILE.h5:t`` selects
one type. Events are drawn per jet type. The work is done by the modules named after this kind or
its format in each layer (``data.jetnet``, ``training.jet_set``, ``generate.jet_set``,
``evaluation.jets``, ``deploy``); this class only connects them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from showerforge.errors import UserError
from showerforge.kinds.base import DataKind, GenerationRequest, Status

__all__ = ["JetSet", "JetDraws"]


class JetDraws(tuple[list[str], int]):
    """``(types, n per type)``: what a jet model generates."""

    @property
    def types(self) -> list[str]:
        return self[0]

    @property
    def n(self) -> int:
        return self[1]


class JetSet(DataKind):
    """Jets as particle sets (JetNet g, q, t, W, Z; showerforge's Pythia8 + FastJet output)."""

    name: ClassVar[str] = "jet-set"
    aliases: ClassVar[tuple[str, ...]] = ("jets",)
    noun: ClassVar[str] = "jets"
    description: ClassVar[str] = "a jet file (key 'particle_features')"
    default_model: ClassVar[str | None] = "cfm-set"
    simulate_keys: ClassVar[frozenset[str]] = frozenset({"types", "n", "seed", "particles", "pt_gev", "mpi", "pythia"})
    floor_section: ClassVar[str] = "truth_vs_truth"
    default_analyses: ClassVar[tuple[str, ...]] = ("jet_kinematics", "jet_substructure", "jet_particles", "jet_efps")

    # ------------------------------------------------------------------ files
    def matches(self, keys: Collection[str]) -> bool:
        return "particle_features" in keys

    def split_spec(self, spec: str | Path) -> tuple[Path, str | None]:
        from showerforge.data.jetnet import parse_spec

        return parse_spec(spec)

    def count(self, spec: str | Path) -> int:
        from showerforge.data.jetnet import read_jets

        return len(read_jets(spec))

    def inspect(self, spec: str | Path, *, geometry: Any = None) -> tuple[dict[str, Any], str]:
        from showerforge.inspect import format_jet_inspection, inspect_jet_file

        if geometry is not None:
            raise UserError(f"{spec}: --geometry / --binning describe shower files; this is a jet file")
        desc = inspect_jet_file(spec)
        return desc, format_jet_inspection(desc)

    def read_events(self, spec: str | Path, max_events: int | None = None) -> Any:
        from showerforge.evaluation.jets.sample import JetSample

        return JetSample.read(spec, max_events)

    # ------------------------------------------------------------------ training and runs
    def train(self, data: str | Path, output: str | Path, *, model: str | None, **settings: Any) -> Any:
        from showerforge.training.jet_set import train_jets

        return train_jets(data, output, model=model or str(self.default_model), **settings)

    def load(self, checkpoint: Path, device: Any = "cpu") -> Any:
        from showerforge.generate.jet_set import load_jet_model

        return load_jet_model(checkpoint, device)

    # ------------------------------------------------------------------ generation
    def draws(self, request: GenerationRequest, *, model: str) -> JetDraws:
        """Jet types and the number per type (``types`` with ``n``, default 1000)."""
        other = [g for g in request.given() if g != "types"]
        if other:
            raise UserError(
                f"{model} is a jet model: it is sampled per jet type; use {request.spelled('types')} and "
                f"{request.spelled('n')} instead of {', '.join(request.spelled(g) for g in other)}"
            )
        if request.types is None:
            raise UserError(
                f"{model} is a jet model: give {request.spelled('types')} (e.g. t or g,q) and {request.spelled('n')}"
            )
        types = [t.strip().lower() for t in str(request.types).split(",") if t.strip()]
        if not types:
            raise UserError(f"{request.spelled('types')} {request.types!r}: expected jet types such as t or g,q")
        return JetDraws((types, int(request.n or 1000)))

    def n_events(self, draws: Any) -> int:
        types, n = draws
        return len(types) * int(n)

    def generate(self, model: str | Path, draws: Any, output: str | Path, **options: Any) -> Path:
        from showerforge.generate.jet_set import generate_jets

        types, n = draws
        return generate_jets(model, types if len(types) > 1 else types[0], n, output, **options)

    def draws_like(self, reference: str | Path, n: int) -> JetDraws:
        from showerforge.data.jetnet import JET_TYPES, read_jets

        types = [JET_TYPES[int(t)] for t in np.unique(read_jets(str(reference)).jet_type)]
        return JetDraws((types, max(1, n // len(types))))

    # ------------------------------------------------------------------ evaluation, export
    def evaluate(self, reference: str | Path, candidate: str | Path, output: Path, **options: Any) -> dict[str, Any]:
        from showerforge.evaluation.jets.report import evaluate_jet_files

        self.refuse_options(options, ("floor_reference", "repeats", "nplm_toys", "geometry", "classifiers"))
        opts = {k: v for k, v in options.items() if v is not None and k != "progress"}
        if "max_samples" in opts:
            opts["max_jets"] = opts.pop("max_samples")
        return evaluate_jet_files(reference, candidate, output, **opts)

    def summary(self, metrics: dict[str, Any]) -> str:
        from showerforge.evaluation.jets.report import format_jet_summary

        return format_jet_summary(metrics)

    def headline_metrics(self) -> list[tuple[str, str, float]]:
        return [
            ("W1M", "W1M", 1.0),
            ("W1P", "W1P.mean", 1.0),
            ("W1EFP", "W1EFP", 1.0),
            ("FPD", "FPD", 1.0),
            ("KPD", "KPD", 1.0),
        ]

    # ------------------------------------------------------------------ validation and references
    def simulate(self, output: str | Path, settings: Mapping[str, Any], on_status: Status | None = None) -> Path:
        from showerforge.simulate.jet_campaign import simulate_jet_file

        opts = dict(settings)
        if "pt_gev" in opts:
            opts["pt_gev"] = tuple(opts["pt_gev"])
        return simulate_jet_file(output=output, on_status=on_status, **opts)

    def check_candidate(self, spec: str, reference: str) -> str:
        """The candidate spec with the reference's jet type; refuse another type or a file without it."""
        from showerforge.data.jetnet import JET_TYPES, read_jets

        path, jet_type = self.split_spec(spec)
        ref_type = self.split_spec(reference)[1]
        if ref_type is None:
            return spec
        if jet_type is not None and jet_type != ref_type:
            raise UserError(f"--candidate {spec}: jet type {jet_type}, the suite's reference holds {ref_type} jets")
        types = {JET_TYPES[int(t)] for t in np.unique(read_jets(str(path)).jet_type)}
        if ref_type not in types:
            raise UserError(
                f"--candidate {path}: has no {ref_type} jets (only {', '.join(sorted(types))}), as the reference"
            )
        return f"{path}:{ref_type}"
