"""Validation suites: a TOML file naming the reference, the analyses, the metrics and the gates.

Example (``ds2.toml``; paths are relative to the suite file)::

    name = "ds2-electron"
    gates = ["auc_high <= 0.65", 'chi2_ndf("etot_over_einc") <= 4', "chi2_ndf_max <= 10"]

    [reference]
    file = "ds2_e_test.h5"              # or: simulate = {geometry = "mini", n = 2000, seed = 7}
    # floor_file = "ds2_e_test_seed2.h5"  (an independent reference sample for the floor)

    [candidate]                          # how a model (run folder or shipped name) is sampled
    n = 2000                             # default: as many as the reference, at its energies
    seed = 1

    [analyses]
    use = ["calo_energy", "calo_profiles"]   # default: all built-ins of the kind
    modules = ["my_analyses.py:photon_shapes"]
    bins = 30

    [metrics]                            # the evaluation (showerforge evaluate)
    quick = true
    classifiers = ["high_level"]
    max_samples = 2000
    seed = 0

``name`` and ``gates`` stand at the top, before the first ``[table]`` (TOML puts every key after a
table header into that table). ``[metrics] enabled = false`` skips the evaluation (histograms and gates on them only).
``[reference] simulate`` runs the reference simulation once (``showerforge simulate calo`` or
``jets`` with these options) and caches it beside the suite, keyed by the options.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from showerforge.errors import UserError
from showerforge.kinds import DataKind, get_kind
from showerforge.validate.gates import HISTOGRAM_FUNCTIONS, Gate, parse_gate

__all__ = ["Suite", "load_suite"]

_METRIC_KEYS = {"enabled", "quick", "classifiers", "max_samples", "seed", "nplm_toys", "distances"}
_CLASSIFIERS = ("high_level", "low_level", "verdict")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass
class Suite:
    """A parsed suite (see module docstring)."""

    path: Path
    name: str
    reference_file: Path | None
    reference_simulate: dict[str, Any] | None
    simulate_kind: str | None
    floor_file: Path | None
    candidate_n: int | None
    candidate_seed: int
    analyses: list[str]
    modules: list[str]
    bins: int
    metrics: dict[str, Any]
    gates: list[Gate]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.path.parent

    @property
    def evaluate(self) -> bool:
        return bool(self.metrics.get("enabled", True))

    def reference_cache(self) -> Path:
        """Where a simulated reference is cached: beside the suite, keyed by its options."""
        assert self.reference_simulate is not None
        key = hashlib.sha256(json.dumps(self.reference_simulate, sort_keys=True).encode()).hexdigest()[:12]
        return self.base / f".{self.path.stem}.reference-{key}.h5"

    def check_gates(self, kind: DataKind) -> None:
        """Every plain gate names a metric of this kind that this suite computes."""
        from showerforge.validate.profiles import HIST_AGGREGATES, metric_names, profile_of

        known = set(metric_names(kind))
        prof = profile_of(kind)
        for i, g in enumerate(self.gates):
            where = f"{self.path}: gates[{i}] {g.expr!r}"
            if g.histogram is not None:
                continue
            if g.metric not in known:
                raise UserError(
                    f"{where}: unknown metric {g.metric!r} for {kind.name} data; known: {', '.join(sorted(known))}"
                )
            if g.metric not in HIST_AGGREGATES and not self.evaluate:
                raise UserError(f"{where}: needs the evaluation metrics, but [metrics] enabled = false")
            clf = prof.classifier_of.get(g.metric.removesuffix("_floor")) if prof is not None else None
            if clf is not None and self.evaluate and clf not in self.classifiers():
                raise UserError(f"{where}: needs the {clf!r} classifier; add it to [metrics] classifiers")

    def classifiers(self) -> list[str]:
        return list(self.metrics.get("classifiers", ["high_level", "verdict", "low_level"]))


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except UnicodeDecodeError:
        raise UserError(f"--suite {path}: not a text (TOML) file; give the suite, e.g. suite.toml") from None
    except FileNotFoundError:
        raise UserError(f"--suite {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"--suite {path}: is a folder; give the suite's .toml file") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"--suite {path}: not valid TOML ({err})") from None


def _table(raw: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{path}: [{key}] must be a table")
    return value


def _unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if "gates" in extra or "name" in extra:
        key = "gates" if "gates" in extra else "name"
        raise UserError(f"{where}: {key} belongs at the top of the suite, before the first [table] header")
    if extra:
        raise UserError(f"{where}: unknown key(s) {', '.join(extra)}; expected some of {', '.join(sorted(allowed))}")


def _reference(raw: dict[str, Any], path: Path) -> tuple[Path | None, dict[str, Any] | None, str | None, Path | None]:
    ref = _table(raw, "reference", path)
    _unknown(ref, {"file", "simulate", "kind", "floor_file"}, f"{path}: [reference]")
    file, sim = ref.get("file"), ref.get("simulate")
    if (file is None) == (sim is None):
        raise UserError(f'{path}: [reference] needs exactly one of file = "REF.h5" or simulate = {{...}}')
    if file is not None and (not isinstance(file, str) or not file.strip()):
        raise UserError(f"{path}: [reference] file must be a file name, e.g. file = 'ref.h5', got {file!r}")
    floor = ref.get("floor_file")
    floor_path = (path.parent / str(floor)) if floor is not None else None
    if file is not None:
        return path.parent / str(file), None, None, floor_path
    if not isinstance(sim, dict):
        raise UserError(f"{path}: [reference] simulate must be a table of simulate options")
    try:
        kind = get_kind(str(ref.get("kind", "jets" if "types" in sim else "showers")))
    except UserError as err:
        raise UserError(f"{path}: [reference] kind: {err}") from None
    if not kind.simulate_keys:
        raise UserError(f"{path}: [reference] kind {kind.name}: showerforge cannot simulate it; give file = ...")
    _unknown(sim, set(kind.simulate_keys), f"{path}: [reference] simulate ({kind.name})")
    return None, dict(sim), kind.name, floor_path


def _int(table: dict[str, Any], key: str, where: str, default: int | None, lo: int) -> int | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise UserError(f"{where} {key} must be an integer >= {lo}, got {value!r}")
    return value


def _bool(table: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise UserError(f"{where} {key} must be true or false (no quotes), got {value!r}")
    return value


def _strings(table: dict[str, Any], key: str, where: str, example: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{where} {key} must be a list of strings, e.g. {key} = {example}, got {value!r}")
    return list(value)


def _metrics(raw: dict[str, Any], p: Path) -> dict[str, Any]:
    m = _table(raw, "metrics", p)
    where = f"{p}: [metrics]"
    _unknown(m, _METRIC_KEYS, where)
    out: dict[str, Any] = {
        "enabled": _bool(m, "enabled", where, True),
        "quick": _bool(m, "quick", where, True),
        "distances": _bool(m, "distances", where, True),
        "seed": _int(m, "seed", where, 0, 0),
        "max_samples": _int(m, "max_samples", where, None, 4),
        "nplm_toys": _int(m, "nplm_toys", where, 0, 0),
    }
    if "classifiers" in m:
        clf = _strings(m, "classifiers", where, '["high_level"]')
        unknown = sorted(set(clf) - set(_CLASSIFIERS))
        if unknown:
            raise UserError(f"{where} classifiers: unknown {unknown}; expected some of {list(_CLASSIFIERS)}")
        out["classifiers"] = clf
    return out


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file (every error names the file and the key).

    Raises:
        UserError: missing file, invalid TOML, unknown keys, values of the wrong type or range,
            malformed gates or analyses, a missing floor file.
    """
    p = Path(path)
    raw = _load_toml(p)
    _unknown(raw, {"name", "reference", "candidate", "analyses", "metrics", "gates", "description"}, str(p))
    name = raw.get("name", p.stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"{p}: name {name!r}: a string of letters, digits, '_', '.', '-' (at most 100)")
    ref_file, ref_sim, sim_kind, floor = _reference(raw, p)
    if floor is not None and not floor.is_file():
        raise UserError(f"{p}: [reference] floor_file {floor}: no such file")
    cand = _table(raw, "candidate", p)
    _unknown(cand, {"n", "seed"}, f"{p}: [candidate]")
    ana = _table(raw, "analyses", p)
    _unknown(ana, {"use", "modules", "bins"}, f"{p}: [analyses]")
    bins = ana.get("bins", 30)
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 1000:
        raise UserError(f"{p}: [analyses] bins must be an integer in 2..1000, got {bins!r}")
    gates_raw = raw.get("gates", [])
    if not isinstance(gates_raw, list) or not all(isinstance(g, str) for g in gates_raw):
        raise UserError(f'{p}: gates must be a list of strings, e.g. gates = ["auc_high <= 0.65"]')
    gates = [parse_gate(g, f"{p}: gates[{i}]") for i, g in enumerate(gates_raw)]
    return Suite(
        path=p,
        name=name,
        reference_file=ref_file,
        reference_simulate=ref_sim,
        simulate_kind=sim_kind,
        floor_file=floor,
        candidate_n=_int(cand, "n", f"{p}: [candidate]", None, 4),
        candidate_seed=_int(cand, "seed", f"{p}: [candidate]", 0, 0) or 0,
        analyses=_strings(ana, "use", f"{p}: [analyses]", '["calo_energy"]'),
        modules=_strings(ana, "modules", f"{p}: [analyses]", '["my_analyses.py:shapes"]'),
        bins=bins,
        metrics=_metrics(raw, p),
        gates=gates,
        raw=raw,
    )


def function_gate_names(gates: list[Gate]) -> list[tuple[int, Gate]]:
    return [(i, g) for i, g in enumerate(gates) if g.metric in HISTOGRAM_FUNCTIONS]
