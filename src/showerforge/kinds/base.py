"""The interface of a kind of data: what differs between voxel showers, jet sets, point clouds, ...

A kind is one class deriving from :class:`DataKind`, registered once with
:func:`showerforge.kinds.register_kind`. Everything that differs between kinds (recognising a
file, reading events, training, loading a checkpoint, what generation draws, evaluation, export
layouts, validation, simulation of a reference) is a method here; the layers above (``api``,
``cli``, ``validate``, ``refine``) ask the registry for the kind of a file or checkpoint and
call these methods instead of branching on the kind. A capability a kind does not have raises
a :class:`~showerforge.errors.UserError` naming the kind and the capability.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from showerforge.errors import UserError

__all__ = ["DataKind", "GenerationRequest", "Status"]

Status = Callable[[str], None]
"""Called with one-line status messages."""


_CLI_SPELLING = {
    "n": "--n",
    "energy": "--energy",
    "energies_from": "--energies-from",
    "types": "--type",
    "energies_mev": "energies",
}


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate, as the user asked for it (``showerforge generate`` options, ``sf.generate``).

    Each kind reads the fields it knows (:meth:`DataKind.draws`) and refuses the others in one
    line: showers are drawn at incident energies, jets per type.

    Attributes:
        n: number of events (with ``energy`` or ``types``; with ``energies_from``, the file's first ``n``).
        energy: incident energies as text with units, ``"10GeV"``, ``"1:100GeV"``.
        energies_mev: incident energies in MeV, one per event.
        energies_from: a file whose conditions (incident energies) are reused.
        types: jet types, ``"t"`` or ``"g,q"``.
        seed: seed of the draws (energies drawn from a range).
        options: the name of each option as the user spelled it (for messages), by field.
    """

    n: int | None = None
    energy: str | None = None
    energies_mev: Any = None
    energies_from: str | Path | None = None
    types: str | None = None
    seed: int = 0
    options: Mapping[str, str] = field(default_factory=dict)

    def given(self) -> list[str]:
        """Names of the fields that were given (``n`` excluded)."""
        names = ("energy", "energies_mev", "energies_from", "types")
        return [name for name in names if getattr(self, name) is not None]

    def first_n(self, energies: Any) -> Any:
        """The first ``n`` incident energies of a file (all when ``n`` is not given); more than the
        file holds is a one-line error."""
        if self.n is None:
            return energies
        if int(self.n) > len(energies):
            raise UserError(
                f"{self.energies_from}: holds {len(energies)} incident energies; "
                f"{self.spelled('n')} {self.n} asks for more (give at most {len(energies)}, or leave it out)"
            )
        return energies[: int(self.n)]

    def spelled(self, name: str) -> str:
        """How the user spelled an option: from ``options``, else the command line's spelling."""
        return self.options.get(name, _CLI_SPELLING.get(name, name))


class DataKind:
    """One kind of data. Subclasses set the class attributes and override the methods they support.

    Attributes:
        name: the kind's one name (``"calo-voxels"``), stored in checkpoints as ``data_kind``.
        aliases: earlier names still read from old files and checkpoints.
        noun: what one event is called, plural (``"showers"``), for progress and messages.
        description: what a file of this kind holds, for messages.
        default_model: registered model trained when none is named.
    """

    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    noun: ClassVar[str] = "events"
    description: ClassVar[str] = ""
    default_model: ClassVar[str | None] = None

    # ------------------------------------------------------------------ files
    def matches(self, keys: Collection[str]) -> bool:
        """Whether an HDF5 file with these top-level keys holds this kind."""
        return False

    def split_spec(self, spec: str | Path) -> tuple[Path, str | None]:
        """``(file, selector)`` of a file argument; kinds without selectors refuse ``FILE:SEL``."""
        text = str(spec)
        path = Path(text)
        if not path.exists() and ":" in text:
            head, _, sel = text.rpartition(":")
            if Path(head).exists():
                raise UserError(f"{spec}: ':{sel}' selects part of a file, but {head} holds {self.noun}")
        return path, None

    def count(self, spec: str | Path) -> int:
        """Number of events in a file."""
        raise self.unsupported("counting events")

    def inspect(self, spec: str | Path, *, geometry: Any = None) -> tuple[dict[str, Any], str]:
        """``(description, text)`` of a file for ``showerforge inspect``; ``description["ok"]``."""
        raise self.unsupported("inspect")

    def read_events(self, spec: str | Path, max_events: int | None = None) -> Any:
        """The events of a file as analyses see them (``len()`` gives the count)."""
        raise self.unsupported("reading events for analyses")

    # ------------------------------------------------------------------ training and runs
    def train(self, data: str | Path, output: str | Path, *, model: str | None, **settings: Any) -> Any:
        """Train ``model`` (default :attr:`default_model`) on ``data`` into the run folder ``output``."""
        raise self.unsupported("training")

    def load(self, checkpoint: Path, device: Any = "cpu") -> Any:
        """The surrogate of a checkpoint of this kind (``.sample(...)``)."""
        raise self.unsupported("loading a model")

    # ------------------------------------------------------------------ generation
    def draws(self, request: GenerationRequest, *, model: str) -> Any:
        """Check a generation request against this kind before any work; return what to draw."""
        raise self.unsupported("generation")

    def n_events(self, draws: Any) -> int:
        """How many events :meth:`generate` makes for ``draws``."""
        return len(draws)

    def generate(self, model: str | Path, draws: Any, output: str | Path, **options: Any) -> Path:
        """Sample ``model`` at ``draws`` (from :meth:`draws`) into the file ``output`` (atomically)."""
        raise self.unsupported("generation")

    def draws_like(self, reference: str | Path, n: int) -> Any:
        """Draws that reproduce the conditions of a reference file (its energies, its jet types)."""
        raise self.unsupported("generation at a reference's conditions")

    # ------------------------------------------------------------------ evaluation, export
    def evaluate(self, reference: str | Path, candidate: str | Path, output: Path, **options: Any) -> dict[str, Any]:
        """Compare ``candidate`` with ``reference``: metrics with uncertainties, report in ``output``.

        ``options`` are the user's (``seed``, ``quick``, ``plots``, ``max_samples``, ``progress``,
        and kind-specific ones); an option the kind does not take is refused in one line.
        """
        raise self.unsupported("evaluate")

    def summary(self, metrics: dict[str, Any]) -> str:
        """The plain-text summary of :meth:`evaluate`'s metrics (``showerforge evaluate`` prints it)."""
        return ""

    def overlay_plots(
        self, reference: str | Path, candidates: list[str], names: list[str], out: Path, **options: Any
    ) -> list[dict[str, str]]:
        """Plots of the reference and several candidates overlaid (leaderboards); none by default."""
        return []

    def headline_metrics(self) -> list[tuple[str, str, float]]:
        """``(label, dotted path in metrics.json, scale)`` of the numbers a leaderboard shows."""
        return []

    floor_section: ClassVar[str] = "reference_vs_reference"
    """The section of :meth:`evaluate`'s metrics that holds the floor (reference vs reference)."""

    def export(self, model: Any, output: str | Path, **options: Any) -> Any:
        """Export a loaded model as one ONNX graph in one of its ``export_layouts``."""
        from showerforge.deploy.export import export_onnx

        if not getattr(model, "export_layouts", ()):
            raise self.unsupported("ONNX export")
        return export_onnx(model, output, **options)

    # ------------------------------------------------------------------ validation and references
    def simulate(self, output: str | Path, settings: Mapping[str, Any], on_status: Status | None = None) -> Path:
        """Run the reference engine with a suite's ``[reference.simulate]`` settings."""
        raise self.unsupported("simulating a reference")

    simulate_keys: ClassVar[frozenset[str]] = frozenset()
    """Keys a suite's ``[reference.simulate]`` table may hold for this kind."""

    default_analyses: ClassVar[tuple[str, ...]] = ()
    """Built-in validation analyses run when a suite names none."""

    def check_candidate(self, spec: str, reference: str) -> str:
        """Refuse a candidate file that cannot be compared with the reference; return its spec."""
        return spec

    def check_model(self, spec: str, checkpoint: Mapping[str, Any], reference: str) -> None:
        """Refuse a model that cannot be compared with the reference (e.g. another readout)."""

    # ------------------------------------------------------------------ helpers
    def refuse_options(self, options: Mapping[str, Any], names: Collection[str], hint: str = "") -> None:
        """Refuse options (given and not ``None`` / ``False``) that apply to other kinds."""
        given = sorted(n for n in names if options.get(n) not in (None, False))
        if given:
            spelled = ", ".join("--" + n.replace("_", "-") for n in given)
            raise UserError(f"{spelled}: not for {self.noun} ({self.name} data){'; ' + hint if hint else ''}")

    def unsupported(self, what: str) -> UserError:
        """The one-line error for a capability this kind does not have."""
        return UserError(f"{what} is not available for {self.name} data ({self.description or self.noun})")

    def __repr__(self) -> str:
        return f"<data kind {self.name}>"
