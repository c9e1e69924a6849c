"""The optimisation config (``OPT.toml``): parsed and checked completely before any Geant4 runs.

A config names the design space (a fixed number of layers, each an absorber slab followed by an
active slab; every thickness and material either fixed or a parameter), the beam, the cost model,
the constraints, the Geant4 budget, the trust region and the reconstruction. Every mistake is a
one-line :class:`~showerforge.errors.UserError` naming the file and the field
(``docs/optimise.md`` is the reference).

Units: lengths in mm, energies with a unit in the text (``1:20GeV``), costs in cost units (CU)
per cm^3 of material, the total cost in CU.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from showerforge.errors import UserError
from showerforge.simulate.calo_g4 import HADRONS, PHYSICS_EM, PHYSICS_HADRONIC
from showerforge.simulate.energies import SHOWER_ENERGY_RANGE_MEV, EnergySpec, parse_energy

__all__ = [
    "DEFAULT_COSTS_PER_CM3",
    "ContinuousParam",
    "DiscreteParam",
    "LayerSpec",
    "OptConfig",
    "load_config",
    "parse_config",
]

DEFAULT_COSTS_PER_CM3: dict[str, float] = {
    # Illustrative prices in cost units (CU) per cm^3, of the order of US dollars of raw material
    # (lead, steel, copper, tungsten plates; PbWO4 crystals; plastic scintillator; silicon sensors).
    "G4_Pb": 0.025,
    "G4_Fe": 0.008,
    "G4_Cu": 0.08,
    "G4_W": 0.8,
    "G4_PbWO4": 2.5,
    "G4_POLYSTYRENE": 0.05,
    "G4_Si": 10.0,
}
"""Cost per cm^3 of the materials that need no ``[materials]`` entry (``docs/optimise.md``)."""

_LAYER_KEYS = ("absorber_mm", "sensor_mm", "absorber", "sensor")
_ENGINES = ("geant4", "toy")
_PARTICLES = ("e-", "e+", "gamma", "pi+", "pi-")
_REFERENCE_LIST = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


@dataclass(frozen=True)
class ContinuousParam:
    """A thickness optimised in ``[low, high]`` mm (``name``: ``layer2.absorber_mm``)."""

    name: str
    low: float
    high: float


@dataclass(frozen=True)
class DiscreteParam:
    """A material chosen among ``choices`` (optimised as softmax probabilities)."""

    name: str
    choices: tuple[str, ...]


@dataclass(frozen=True)
class LayerSpec:
    """One layer: each entry a fixed value, a ``(low, high)`` range (mm) or a tuple of materials."""

    absorber_mm: float | tuple[float, float]
    sensor_mm: float | tuple[float, float]
    absorber: str | tuple[str, ...]
    sensor: str | tuple[str, ...]


@dataclass(frozen=True)
class OptConfig:
    """A checked optimisation config (see module docstring and ``docs/optimise.md``)."""

    path: str
    name: str
    seed: int
    particle: str
    energy: EnergySpec
    layers: tuple[LayerSpec, ...]
    transverse_half_mm: float
    costs_per_cm3: dict[str, float]
    start: str | dict[str, list[Any]]
    max_length_mm: float | None
    max_cost: float | None
    penalty_weight: float
    engine: str
    iterations: int
    designs_per_iteration: int
    showers_per_design: int
    budget_showers: int | None
    physics: str
    cut_mm: float
    workers: int
    trust_radius: float
    sample_sigma: float
    steps_per_iteration: int
    learning_rate: float
    probability_floor: float
    surrogate: dict[str, Any] = field(default_factory=dict)
    reconstruction: str = "linear"
    history_iterations: int = 2
    logit_radius: float = 1.0
    baseline_seeds: int = 1

    @property
    def continuous(self) -> tuple[ContinuousParam, ...]:
        """The optimised thicknesses, layer by layer (absorber, then sensor)."""
        out = []
        for i, lay in enumerate(self.layers):
            for key in ("absorber_mm", "sensor_mm"):
                value = getattr(lay, key)
                if isinstance(value, tuple):
                    out.append(ContinuousParam(f"layer{i}.{key}", float(value[0]), float(value[1])))
        return tuple(out)

    @property
    def discrete(self) -> tuple[DiscreteParam, ...]:
        """The optimised material choices, layer by layer (absorber, then sensor)."""
        out = []
        for i, lay in enumerate(self.layers):
            for key in ("absorber", "sensor"):
                value = getattr(lay, key)
                if isinstance(value, tuple):
                    out.append(DiscreteParam(f"layer{i}.{key}", value))
        return tuple(out)

    @property
    def showers_per_iteration(self) -> int:
        """Geant4 showers one iteration costs."""
        return self.designs_per_iteration * self.showers_per_design

    @property
    def n_iterations(self) -> int:
        """Iterations that fit both ``iterations`` and ``budget_showers``."""
        if self.budget_showers is None:
            return self.iterations
        return min(self.iterations, self.budget_showers // self.showers_per_iteration)

    def to_json_dict(self) -> dict[str, Any]:
        """The resolved config, JSON-ready (kept in the output folder, compared on resume)."""
        d = asdict(self)
        d.pop("path")
        d["energy"] = {"values_mev": list(self.energy.values_mev), "spectrum": self.energy.spectrum}
        d["layers"] = [{k: _jsonable(v) for k, v in asdict(lay).items()} for lay in self.layers]
        return d


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def load_config(path: str | Path, **overrides: Any) -> OptConfig:
    """Read and check ``OPT.toml`` (``overrides`` replace top-level keys of ``[simulation]``).

    Raises:
        UserError: one line naming the file and the field.
    """
    path = Path(path)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise UserError(f"--config {path}: not a TOML file; give the optimisation config, e.g. opt.toml") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"--config {path}: not valid TOML ({err})") from None
    sim = dict(raw.get("simulation", {})) if isinstance(raw.get("simulation", {}), dict) else raw.get("simulation")
    if isinstance(sim, dict):
        sim.update({k: v for k, v in overrides.items() if v is not None})
        raw["simulation"] = sim
    return parse_config(raw, str(path))


def parse_config(raw: dict[str, Any], path: str = "config") -> OptConfig:
    """Check a config given as a dictionary (the parsed TOML); see :func:`load_config`."""
    known = {"name", "seed", "beam", "design", "materials", "constraints", "simulation", "optimiser", "surrogate"}
    _no_unknown(raw, known | {"reconstruction"}, path, "")
    beam = _table(raw, "beam", path)
    design = _table(raw, "design", path)
    cons = _table(raw, "constraints", path)
    sim = _table(raw, "simulation", path)
    opt = _table(raw, "optimiser", path)
    _no_unknown(beam, {"particle", "energy"}, path, "beam")
    _no_unknown(cons, {"max_length_mm", "max_cost", "penalty_weight"}, path, "constraints")
    _no_unknown(
        sim,
        {"engine", "iterations", "designs_per_iteration", "showers_per_design", "budget_showers"}
        | {"physics", "cut_mm", "workers", "baseline_seeds"},
        path,
        "simulation",
    )
    _no_unknown(
        opt,
        {"trust_radius", "sample_sigma", "steps_per_iteration", "learning_rate", "probability_floor"}
        | {"history_iterations", "logit_radius"},
        path,
        "optimiser",
    )
    costs = _costs(raw, path)
    layers = _layers(design, costs, path)
    cfg = OptConfig(
        path=path,
        name=str(raw.get("name", Path(path).stem)),
        seed=_int(raw, "seed", 0, path, "", low=0),
        particle=_particle(beam, path),
        energy=_energy(beam, path),
        layers=layers,
        transverse_half_mm=_num(design, "transverse_half_mm", 150.0, path, "design", positive=True),
        costs_per_cm3=costs,
        start=_start(design, path),
        max_length_mm=_opt_num(cons, "max_length_mm", path),
        max_cost=_opt_num(cons, "max_cost", path),
        penalty_weight=_num(cons, "penalty_weight", 10.0, path, "constraints", positive=True),
        engine=_choice(sim, "engine", "geant4", _ENGINES, path, "simulation"),
        iterations=_int(sim, "iterations", 10, path, "simulation", low=1),
        designs_per_iteration=_int(sim, "designs_per_iteration", 12, path, "simulation", low=2),
        showers_per_design=_int(sim, "showers_per_design", 100, path, "simulation", low=10),
        budget_showers=_opt_int(sim, "budget_showers", path),
        physics=_physics(sim, beam, path),
        cut_mm=_num(sim, "cut_mm", 0.7, path, "simulation", positive=True),
        workers=_int(sim, "workers", 1, path, "simulation", low=1),
        baseline_seeds=_int(sim, "baseline_seeds", 1, path, "simulation", low=1),
        trust_radius=_fraction(opt, "trust_radius", 0.1, path),
        sample_sigma=_fraction(opt, "sample_sigma", opt.get("trust_radius", 0.1), path),
        steps_per_iteration=_int(opt, "steps_per_iteration", 50, path, "optimiser", low=1),
        learning_rate=_num(opt, "learning_rate", 0.01, path, "optimiser", positive=True),
        probability_floor=_num(opt, "probability_floor", 0.05, path, "optimiser", positive=False),
        surrogate=_surrogate(raw, path),
        reconstruction=_reconstruction(raw, path),
        history_iterations=_int(opt, "history_iterations", 2, path, "optimiser", low=1),
        logit_radius=_num(opt, "logit_radius", 1.0, path, "optimiser", positive=True),
    )
    _check_whole(cfg, path)
    return cfg


# ------------------------------------------------------------------ pieces


def _table(raw: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{path} [{key}]: must be a table")
    return value


def _no_unknown(table: dict[str, Any], known: set[str], path: str, where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise UserError(
            f"{path} [{where or 'top level'}]: unknown key {unknown[0]!r}; expected some of {sorted(known)}"
        )


def _num(table: dict[str, Any], key: str, default: float, path: str, where: str, *, positive: bool) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{path} [{where}] {key}: expected a number, got {value!r}")
    if (positive and not value > 0) or value < 0:
        raise UserError(f"{path} [{where}] {key}: must be {'> 0' if positive else '>= 0'}, got {value}")
    return float(value)


def _opt_num(table: dict[str, Any], key: str, path: str) -> float | None:
    return None if key not in table else _num(table, key, 0.0, path, "constraints", positive=True)


def _int(table: dict[str, Any], key: str, default: int, path: str, where: str, *, low: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{path} [{where or 'top level'}] {key}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _opt_int(table: dict[str, Any], key: str, path: str) -> int | None:
    return None if key not in table else _int(table, key, 0, path, "simulation", low=1)


def _fraction(table: dict[str, Any], key: str, default: Any, path: str) -> float:
    value = _num(table, key, default, path, "optimiser", positive=True)
    if value > 1:
        raise UserError(f"{path} [optimiser] {key}: a fraction of each parameter's range, in (0, 1], got {value}")
    return value


def _choice(table: dict[str, Any], key: str, default: str, allowed: tuple[str, ...], path: str, where: str) -> str:
    value = table.get(key, default)
    if value not in allowed:
        raise UserError(f"{path} [{where}] {key}: expected one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _particle(beam: dict[str, Any], path: str) -> str:
    value = beam.get("particle", "e-")
    if value not in _PARTICLES:
        raise UserError(f"{path} [beam] particle: {value!r} is not simulated here; use one of {', '.join(_PARTICLES)}")
    return str(value)


def _physics(sim: dict[str, Any], beam: dict[str, Any], path: str) -> str:
    """The Geant4 physics: an EM constructor name, or a hadronic reference list (``FTFP_BERT`` for pions)."""
    hadron = beam.get("particle", "e-") in HADRONS
    value = sim.get("physics", PHYSICS_HADRONIC[0] if hadron else "standard")
    lists = " or ".join(PHYSICS_HADRONIC)
    if not isinstance(value, str) or not (value in PHYSICS_EM or _REFERENCE_LIST.match(value)):
        raise UserError(
            f"{path} [simulation] physics: expected one of {', '.join(PHYSICS_EM)} (EM) or a Geant4 reference "
            f"list such as {lists}, got {value!r}"
        )
    if hadron and value in PHYSICS_EM:
        raise UserError(
            f"{path} [simulation] physics: {beam['particle']} needs a hadronic reference list ({lists}), "
            f"got the EM-only {value!r}"
        )
    return value


def _energy(beam: dict[str, Any], path: str) -> EnergySpec:
    text = beam.get("energy", "1:20GeV")
    try:
        spec = parse_energy(str(text), "uniform" if ":" in str(text) else None)
        spec.check_range(*SHOWER_ENERGY_RANGE_MEV, what="energy")
    except UserError as err:
        raise UserError(f"{path} [beam] energy: {err}") from None
    return spec


def _costs(raw: dict[str, Any], path: str) -> dict[str, float]:
    costs = dict(DEFAULT_COSTS_PER_CM3)
    for name, entry in _table(raw, "materials", path).items():
        if not isinstance(entry, dict) or set(entry) != {"cost_per_cm3"}:
            raise UserError(f"{path} [materials.{name}]: expected a table with one key, cost_per_cm3 (CU per cm^3)")
        costs[name] = _num(entry, "cost_per_cm3", 0.0, path, f"materials.{name}", positive=False)
    return costs


def _thickness(value: Any, path: str, where: str, key: str) -> float | tuple[float, float]:
    sensor = key == "sensor_mm"
    what = f"{path} [{where}] {key}"
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise UserError(f"{what}: a range is two numbers [low, high] in mm, got {value!r}")
        low, high = float(value[0]), float(value[1])
        if low < 0 or (sensor and low <= 0):
            raise UserError(f"{what}: thickness must be {'> 0' if sensor else '>= 0'} mm, got {low:g}")
        if not high > low:
            raise UserError(f"{what}: range [{low:g}, {high:g}] mm needs high > low")
        return (low, high)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{what}: expected a thickness in mm or a range [low, high], got {value!r}")
    if value < 0 or (sensor and value <= 0):
        raise UserError(f"{what}: thickness must be {'> 0' if sensor else '>= 0'} mm, got {value:g}")
    return float(value)


def _material(value: Any, costs: dict[str, float], path: str, where: str, key: str) -> str | tuple[str, ...]:
    names = value if isinstance(value, (list, tuple)) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{path} [{where}] {key}: expected a material name or a list of them, got {value!r}")
    for n in names:
        if n not in costs:
            raise UserError(
                f"{path} [{where}] {key}: unknown material {n!r}; known: {', '.join(sorted(costs))} "
                f"(add [materials.{n}] cost_per_cm3 = ... for another Geant4 NIST material)"
            )
    if len(set(names)) != len(names):
        raise UserError(f"{path} [{where}] {key}: a material is listed twice in {list(names)}")
    return tuple(names) if isinstance(value, (list, tuple)) and len(names) > 1 else str(names[0])


def _layers(design: dict[str, Any], costs: dict[str, float], path: str) -> tuple[LayerSpec, ...]:
    _no_unknown(design, {"n_layers", "transverse_half_mm", "start", "layer", *_LAYER_KEYS}, path, "design")
    n = _int(design, "n_layers", 3, path, "design", low=1)
    overrides = design.get("layer", [])
    if not isinstance(overrides, list) or len(overrides) > n:
        raise UserError(f"{path} [[design.layer]]: at most n_layers = {n} tables, got {overrides!r}")
    defaults = {"absorber_mm": 0.0, "sensor_mm": 5.0, "absorber": "G4_Pb", "sensor": "G4_PbWO4"}
    layers = []
    for i in range(n):
        over = overrides[i] if i < len(overrides) else {}
        if not isinstance(over, dict):
            raise UserError(f"{path} [[design.layer]] {i}: must be a table")
        _no_unknown(over, set(_LAYER_KEYS), path, f"design.layer.{i}")
        entry = {k: over.get(k, design.get(k, defaults[k])) for k in _LAYER_KEYS}
        where = f"design.layer.{i}" if over else "design"
        layers.append(
            LayerSpec(
                absorber_mm=_thickness(entry["absorber_mm"], path, where, "absorber_mm"),
                sensor_mm=_thickness(entry["sensor_mm"], path, where, "sensor_mm"),
                absorber=_material(entry["absorber"], costs, path, where, "absorber"),
                sensor=_material(entry["sensor"], costs, path, where, "sensor"),
            )
        )
    return tuple(layers)


def _start(design: dict[str, Any], path: str) -> str | dict[str, list[Any]]:
    value = design.get("start", "random")
    if isinstance(value, str):
        if value not in ("random", "centre"):
            raise UserError(f"{path} [design] start: expected 'random', 'centre' or a table of values, got {value!r}")
        return value
    if not isinstance(value, dict):
        raise UserError(f"{path} [design] start: expected 'random', 'centre' or a table of values, got {value!r}")
    _no_unknown(value, set(_LAYER_KEYS), path, "design.start")
    n = _int(design, "n_layers", 3, path, "design", low=1)
    for key, values in value.items():
        if not isinstance(values, list) or len(values) != n:
            raise UserError(
                f"{path} [design.start] {key}: expected a list of {n} values (one per layer), got {values!r}"
            )
    return {k: list(v) for k, v in value.items()}


def _surrogate(raw: dict[str, Any], path: str) -> dict[str, Any]:
    table = _table(raw, "surrogate", path)
    defaults: dict[str, int | float] = {"width": 64, "n_blocks": 2, "epochs": 60, "batch_size": 256, "lr": 2e-3}
    _no_unknown(table, set(defaults) | {"ode_steps", "noise_draws"}, path, "surrogate")
    defaults |= {"ode_steps": 8, "noise_draws": 64}
    out: dict[str, Any] = {}
    for key, value in defaults.items():
        if isinstance(value, int):
            out[key] = _int(table, key, value, path, "surrogate", low=1)
        else:
            out[key] = _num(table, key, value, path, "surrogate", positive=True)
    return out


def _reconstruction(raw: dict[str, Any], path: str) -> str:
    value = raw.get("reconstruction", "linear")
    if isinstance(value, dict):
        _no_unknown(value, {"method"}, path, "reconstruction")
        value = value.get("method", "linear")
    if not isinstance(value, str) or not (value == "linear" or ":" in value):
        raise UserError(
            f"{path} [reconstruction] method: expected 'linear' or a Python entry 'module:function', got {value!r}"
        )
    return value


def _check_whole(cfg: OptConfig, path: str) -> None:
    if not cfg.continuous and not cfg.discrete:
        raise UserError(
            f"{path} [design]: nothing to optimise (empty parameter set); give a thickness as a range "
            "[low, high] or a material as a list of choices"
        )
    if cfg.engine == "toy" and cfg.particle in HADRONS:
        raise UserError(
            f"{path} [simulation] engine: the toy engine has electromagnetic showers only; "
            f"{cfg.particle} needs engine = 'geant4'"
        )
    if cfg.budget_showers is not None and cfg.budget_showers < cfg.showers_per_iteration:
        raise UserError(
            f"{path} [simulation] budget_showers: {cfg.budget_showers} is less than one iteration "
            f"({cfg.designs_per_iteration} designs x {cfg.showers_per_design} showers)"
        )
    if isinstance(cfg.start, dict):
        for i, lay in enumerate(cfg.layers):
            for key, values in cfg.start.items():
                allowed = getattr(lay, key)
                v = values[i]
                if key.endswith("_mm"):
                    lo, hi = allowed if isinstance(allowed, tuple) else (allowed, allowed)
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                        raise UserError(f"{path} [design.start] {key}[{i}]: {v!r} is outside [{lo:g}, {hi:g}] mm")
                else:
                    choices = allowed if isinstance(allowed, tuple) else (allowed,)
                    if v not in choices:
                        raise UserError(f"{path} [design.start] {key}[{i}]: {v!r} is not one of {list(choices)}")
