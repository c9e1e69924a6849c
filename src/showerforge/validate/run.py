"""``showerforge validate run``: one candidate version against a suite, recorded in the history.

Order of work (everything that can be wrong in the input is checked before the long parts):
suite -> history (open, label free) -> reference (file, or simulated once and cached) -> analyses
on the reference (gate names checked against the booked histograms) -> candidate (a file, or a
model sampled at the reference's energies / jet types) -> analyses on the candidate -> comparison
of every histogram (chi2/ndf, band, largest pull, KS p) -> evaluation metrics -> gates -> files
(``index.html``, ``result.json``, ``histograms.root``, ``histograms.yoda``, ``plots/``) -> one
transaction in the history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.errors import UserError
from showerforge.kinds import DataKind, get_kind, kind_of_checkpoint, kind_of_file
from showerforge.validate.analyses import (
    ANALYSES,
    Analysis,
    Observable,
    book,
    load_analysis,
    run_analyses,
)
from showerforge.validate.gates import HISTOGRAM_FUNCTIONS, Gate
from showerforge.validate.histograms import Hist1D, band, compare, ks_pvalue
from showerforge.validate.profiles import evaluation_metrics, sample_notes
from showerforge.validate.store import HistoryStore, RunRecord, now_utc, open_store
from showerforge.validate.suite import Suite, load_suite

__all__ = ["ValidationResult", "default_store", "evaluate_gates", "validate_run"]

_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}$")
Say = Callable[[str], None]


@dataclass
class ValidationResult:
    """What ``validate run`` produced.

    Attributes:
        record: the run as stored in the history.
        passed: every gate passed.
        output: folder with ``index.html``, ``result.json`` and the histogram files.
    """

    record: RunRecord
    passed: bool
    output: Path

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def default_store(suite: Suite) -> Path:
    """``validation.db`` beside the suite file."""
    return suite.base / "validation.db"


# ----------------------------------------------------------------------------- inputs


def _split(spec: str | Path) -> tuple[Path, str | None]:
    """``FILE.h5`` or ``FILE.h5:TYPE`` (a jet type) -> (file, type)."""
    from showerforge.data.jetnet import parse_spec

    return parse_spec(str(spec))


def _reference(suite: Suite, say: Say) -> str:
    """The reference spec (``FILE`` or ``FILE:TYPE``), simulated first if the suite says so."""
    if suite.reference_file is not None:
        path, _ = _split(suite.reference_file)
        if path.is_dir():
            raise UserError(f"{suite.path}: [reference] file {path}: is a folder; give the reference HDF5 file")
        if not path.is_file():
            raise UserError(f"{suite.path}: [reference] file {path}: no such file")
        return str(suite.reference_file)
    target = suite.reference_cache()
    if target.is_file():
        say(f"reference: cached simulation {target}")
        return str(target)
    opts = dict(suite.reference_simulate or {})
    say(f"reference: simulating once with {opts} (cached as {target})")
    return str(get_kind(str(suite.simulate_kind)).simulate(target, opts, say))


def _kind_of(spec: Path | str) -> DataKind:
    return kind_of_file(str(spec))


def _analyses(suite: Suite, kind: DataKind) -> dict[str, Analysis]:
    names = suite.analyses or ([] if suite.modules else list(kind.default_analyses))
    out: dict[str, Analysis] = {}
    for name in names:
        if name not in ANALYSES:
            known = ", ".join(kind.default_analyses) or "none (add your own with modules = [...])"
            raise UserError(
                f"{suite.path}: [analyses] use: unknown analysis {name!r}; built-ins for {kind.noun}: {known}"
            )
        k, fn = ANALYSES[name]
        if k != kind.name:
            raise UserError(
                f"{suite.path}: [analyses] use: {name!r} is a {get_kind(k).noun} analysis, "
                f"the reference holds {kind.noun}"
            )
        out[name] = fn
    for i, spec in enumerate(suite.modules):
        out[spec.rpartition(":")[2]] = _guarded(
            spec, load_analysis(spec, suite.base, f"{suite.path}: [analyses] modules[{i}]")
        )
    return out


def _guarded(spec: str, fn: Analysis) -> Analysis:
    """A user's analysis whose exceptions become one line naming it (SHOWERFORGE_DEBUG=1: traceback)."""
    import os

    def run(sample: Any) -> Any:
        try:
            return fn(sample)
        except UserError:
            raise
        except Exception as err:
            if os.environ.get("SHOWERFORGE_DEBUG"):
                raise
            first = str(err).splitlines()[0] if str(err) else ""
            raise UserError(
                f"analysis {spec} raised {type(err).__name__}: {first} (SHOWERFORGE_DEBUG=1 shows the traceback)"
            ) from None

    return run


def _read(path: Path | str, kind: DataKind, max_events: int | None) -> Any:
    return kind.read_events(path, max_events)


def _attrs(path: Path) -> dict[str, Any]:
    import h5py

    keep = (
        "engine", "generator", "geant4_version", "physics_list", "production_cut_mm", "particle",
        "model", "checkpoint", "checkpoint_sha256", "checkpoint_epoch", "solver", "steps", "nfe",
        "training_data_sha256", "showerforge_version", "campaign_seed", "seed", "settings",
    )  # fmt: skip
    with h5py.File(path, "r") as f:
        out = {}
        for k in keep:
            if k in f.attrs:
                v = f.attrs[k]
                out[k] = v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)
        return {k: (v if not isinstance(v, str) or len(v) < 4000 else v[:4000] + "...") for k, v in out.items()}


def _identity(spec: str | Path, role: str) -> dict[str, Any]:
    from showerforge.runs.checkpoint import file_sha256

    path, jet_type = _split(spec)
    out = {"role": role, "type": "file", "path": str(path), "sha256": file_sha256(path), "attrs": _attrs(path)}
    return out | ({"jet_type": jet_type} if jet_type else {})


@dataclass
class _Candidate:
    spec: str
    identity: dict[str, Any]
    checkpoint: Path | None = None


def _resolve_candidate(spec: str, kind: DataKind, ref_spec: str) -> _Candidate:
    """A candidate file (``FILE`` / ``FILE:TYPE``) or a model's checkpoint, checked (nothing sampled)."""
    p, _ = _split(spec)
    if p.is_file() and p.suffix in (".h5", ".hdf5"):
        ck = _kind_of(spec)
        if ck is not kind:
            raise UserError(f"--candidate {spec}: holds {ck.noun}, the suite's reference holds {kind.noun}")
        spec = kind.check_candidate(spec, ref_spec)
        return _Candidate(spec, _identity(spec, "candidate"))
    from showerforge.runs import file_sha256, read_checkpoint, resolve_model

    try:
        ckpt = resolve_model(spec)
        meta = read_checkpoint(ckpt)
    except UserError as err:
        raise UserError(
            f"--candidate {spec}: not a shower/jet file, a run folder or a shipped model ({str(err).splitlines()[0]})"
        ) from None
    mkind = kind_of_checkpoint(meta)
    if mkind is not kind:
        raise UserError(f"--candidate {spec}: a model of {mkind.noun}, the suite's reference holds {kind.noun}")
    kind.check_model(spec, meta, ref_spec)
    identity = {
        "role": "candidate",
        "type": "model",
        "model_spec": str(spec),
        "checkpoint": str(ckpt),
        "checkpoint_sha256": file_sha256(ckpt),
        "model": str(meta.get("model_name", "")),
        "model_config": meta.get("model_config", {}),
        "epoch": meta.get("epoch"),
        "training_data_sha256": meta.get("provenance", {}).get("sha256")
        if isinstance(meta.get("provenance"), dict)
        else None,
        "showerforge_version": str(meta.get("showerforge_version", "")),
    }
    return _Candidate(str(spec), identity, ckpt)


def _sample(cand: _Candidate, kind: DataKind, ref: Any, suite: Suite, out: Path, say: Say) -> _Candidate:
    """Sample a model candidate into ``out/candidate.h5`` (at the reference's conditions)."""
    if cand.checkpoint is None:
        return cand
    target = out / "candidate.h5"
    n = suite.candidate_n or len(ref)
    say(f"candidate: sampling {n} {kind.noun} from {cand.checkpoint} (seed {suite.candidate_seed})")
    draws = kind.draws_like(ref.path, n)
    kind.generate(cand.checkpoint, draws, target, seed=suite.candidate_seed, progress=None)
    file_id = _identity(target, "candidate")
    identity = cand.identity | {"path": file_id["path"], "sha256": file_id["sha256"], "attrs": file_id["attrs"]}
    return _Candidate(str(target), identity, cand.checkpoint)


# ----------------------------------------------------------------------------- comparison


def _compare_all(
    ref_obs: dict[str, tuple[str, Observable]], cand_obs: dict[str, tuple[str, Observable]], bins: int
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, (analysis, ro) in ref_obs.items():
        if name not in cand_obs:
            raise UserError(
                f"analysis {analysis!r}: observable {name!r} booked for the reference but not the candidate"
            )
        co = cand_obs[name][1]
        hr, hc = book(analysis, ro, co, bins)
        assert hc is not None
        comp = compare(hc, hr).to_dict()
        comp["ks_p"] = None if ro.profile else ks_pvalue(np.asarray(co.values), np.asarray(ro.values))
        out[name] = {"candidate": hc, "reference": hr, "comparison": comp}
    return out


def _aggregates(hists: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    chi = [h["comparison"]["chi2_ndf"] for h in hists.values() if h["comparison"]["chi2_ndf"] is not None]
    ks = [h["comparison"]["ks_p"] for h in hists.values() if h["comparison"]["ks_p"] is not None]
    worst = max(hists, key=lambda k: hists[k]["comparison"]["chi2_ndf"] or 0.0) if hists else None
    return {
        "chi2_ndf_max": {"value": max(chi) if chi else None, "error": None, "where": worst},
        "chi2_ndf_mean": {"value": float(np.mean(chi)) if chi else None, "error": None},
        "ks_p_min": {"value": min(ks) if ks else None, "error": None},
        "n_bad": {"value": float(sum(band(c) == "bad" for c in chi)), "error": None},
    }


def _evaluation(suite: Suite, kind: DataKind, ref: str, cand: str, out: Path, say: Say) -> dict[str, dict[str, Any]]:
    say("evaluation metrics (showerforge evaluate) ...")
    return evaluation_metrics(suite, kind, ref, cand, out, int(suite.metrics.get("seed", 0)))


def evaluate_gates(
    gates: list[Gate], metrics: dict[str, dict[str, Any]], hists: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Verdict of every gate: {"expr", "key", "value", "error", "op", "threshold", "passed"}."""
    out = []
    for g in gates:
        if g.histogram is not None:
            comp = hists[g.histogram]["comparison"]
            value, error = comp.get(g.metric), None
        else:
            m = metrics.get(g.metric, {})
            value, error = m.get("value"), m.get("error")
        out.append(
            {
                "expr": g.expr,
                "key": g.key,
                "value": value,
                "error": error,
                "op": g.op,
                "threshold": g.threshold,
                "passed": g.passes(value),
            }
        )
    return out


def _check_function_gates(suite: Suite, booked: dict[str, Any]) -> None:
    for i, g in enumerate(suite.gates):
        if g.histogram is None or g.histogram in booked:
            continue
        near = [n for n in booked if g.histogram.split("_")[0] in n][:6] or list(booked)[:6]
        raise UserError(
            f"{suite.path}: gates[{i}] {g.expr!r}: no histogram {g.histogram!r} is booked; "
            f"some that are: {', '.join(near)}"
        )
    for i, g in enumerate(suite.gates):
        if g.metric == "ks_p" and g.histogram is not None and booked[g.histogram][1].profile:
            raise UserError(f"{suite.path}: gates[{i}] {g.expr!r}: {g.histogram} is a profile; KS needs a histogram")
    assert all(g.metric in HISTOGRAM_FUNCTIONS for g in suite.gates if g.histogram is not None)


# ----------------------------------------------------------------------------- entry point


def validate_run(
    suite: str | Path | Suite,
    candidate: str | Path,
    label: str,
    *,
    store: str | Path | None = None,
    output: str | Path | None = None,
    replace: bool = False,
    on_status: Say | None = None,
) -> ValidationResult:
    """Validate one candidate version (see module docstring).

    Args:
        suite: the suite file (or a loaded :class:`Suite`).
        candidate: a shower/jet file, a training run folder, a checkpoint or a shipped model name.
        label: the version label (``v3``, ``2026-11-30``); unique within the suite's history.
        store: history database path or SQLAlchemy URL; default ``validation.db`` beside the suite.
        output: folder for the page and files; default ``validation/<suite>/<label>`` beside the
            suite.
        replace: overwrite an earlier run with the same label.
        on_status: called with one-line progress messages.

    Returns:
        A :class:`ValidationResult` (``exit_code`` 0 when every gate passes, else 1).

    Raises:
        UserError: a bad suite, candidate, label or history (before any long work).
    """
    from showerforge.data.io import check_not_input, check_writable_dir
    from showerforge.validate.report import write_outputs

    say = on_status or (lambda message: None)
    s = suite if isinstance(suite, Suite) else load_suite(suite)
    if not _LABEL.match(str(label)):
        raise UserError(f"--label {label!r}: use letters, digits and . _ + - (at most 100), e.g. v3")
    hist_store: HistoryStore = open_store(store if store is not None else default_store(s))
    for folder in {s.base / "validation" / s.name, *([Path(output).parent] if output is not None else [])}:
        clean_stale_stages(folder, hist_store, s.name, say)
    if hist_store.has_label(s.name, label) and not replace:
        raise UserError(
            f"history {hist_store.where}: suite {s.name!r} already has a run labelled {label!r}; "
            "choose another --label or pass --replace"
        )
    out = Path(output) if output is not None else s.base / "validation" / s.name / str(label)
    _check_output(out)
    if s.reference_file is not None:
        check_not_input(out, _split(s.reference_file)[0])
    check_not_input(out, candidate)  # a run folder or file given as the candidate is never written into
    ref_path = _reference(s, say)
    kind = _kind_of(ref_path)
    s.check_gates(kind)
    analyses = _analyses(s, kind)
    cand_in = _resolve_candidate(str(candidate), kind, ref_path)
    max_events = s.metrics.get("max_samples")
    say(f"reference: {ref_path} ({kind.name})")
    ref = _read(ref_path, kind, max_events)
    ref_obs = run_analyses(analyses, ref)
    _check_function_gates(s, ref_obs)
    check_writable_dir(out.parent)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{_owner()}-", dir=out.parent))
    try:
        record = _measure(s, label, kind, analyses, ref_path, ref, ref_obs, cand_in, out, stage, say)
        write_outputs(record, stage, suite=s)
        hist_store.add(record, replace=replace)  # one transaction; the page is moved in after it
        _move_into_place(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return ValidationResult(record=record, passed=record.verdict == "pass", output=out)


#: below this many events per sample a run says that its numbers have large errors
SMALL_SAMPLE = 500


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {out}: an existing file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "result.json").is_file():
        raise UserError(f"-o {out}: a folder that holds other files (not a validation run); give a new or empty folder")


def _owner() -> str:
    """``PID@HOST`` of this process, in the names of its staging folders."""
    return f"{os.getpid()}@{socket.gethostname()}"


#: ``.NAME.partial-PID@HOST-XXXXXXXX`` (a run's page being written) and ``.NAME.old-PID@HOST`` (the
#: page it replaces, during the move)
_STAGE = re.compile(
    r"\.(?P<name>.+)\.(?:(?P<partial>partial)-(?P<pid>\d+)@(?P<host>[A-Za-z0-9.-]+)-[a-z0-9_]{8}"
    r"|old-(?P<old_pid>\d+)@(?P<old_host>[A-Za-z0-9.-]+))"
)
#: staging folders of older versions, which did not name their host: ``.NAME.partial-XXXXXXXX``, ``.NAME.old-PID``
_LEGACY_STAGE = re.compile(r"\.(?P<name>.+)\.(?:(?P<partial>partial)-[a-z0-9_]{8}|old-\d+)")
#: a staging folder without an owner is stale after this long (no validate run takes a day to commit)
LEGACY_STALE_S = 24 * 3600.0


def clean_stale_stages(folder: Path, store: HistoryStore, suite: str, say: Say) -> list[Path]:
    """Finish or remove the staging folders that a killed ``validate run`` left in ``folder``.

    A run writes its page into a hidden ``.LABEL.partial-PID@HOST-*`` folder, records the run in
    the history and then renames the folder to ``LABEL``; killed in between, it leaves the folder
    behind. A folder whose process is gone (on this host) is moved into place when the history
    holds exactly its run (so the recorded run has its page), else removed; a ``.LABEL.old-*``
    folder (the page being replaced) is put back when ``LABEL`` is missing, else removed. Folders
    of live processes or of other hosts are left alone. Returns the folders handled.
    """
    from showerforge.simulate.shards import _alive

    if not folder.is_dir():
        return []
    here, handled = socket.gethostname(), []
    entries = sorted(p for p in folder.iterdir() if p.name.startswith(".") and p.is_dir())
    entries.sort(key=lambda p: ".old-" in p.name)  # pages being written first, then the ones they replace
    for p in entries:
        m = _STAGE.fullmatch(p.name)
        if m is not None:
            host, pid = (m["host"], m["pid"]) if m["partial"] else (m["old_host"], m["old_pid"])
            if host != here or _alive(int(pid)):
                continue
        else:
            m = _LEGACY_STAGE.fullmatch(p.name)
            if m is None or time.time() - p.stat().st_mtime < LEGACY_STALE_S:
                continue
        name, what = m["name"], ("partial" if m["partial"] else "old")
        target = folder / name
        if what == "partial" and _recorded_page(p, store, suite):
            _move_into_place(p, target)
            say(f"{target}: the page of a validate run that was stopped before moving it into place was restored")
        elif what == "old" and not target.exists():
            os.replace(p, target)
            say(f"{target}: the earlier page, set aside by a validate run that was stopped, was restored")
        else:
            shutil.rmtree(p, ignore_errors=True)
            say(f"{folder / p.name}: removed, left by a validate run that was stopped")
        handled.append(p)
    return handled


def _recorded_page(stage: Path, store: HistoryStore, suite: str) -> bool:
    """The staged page is complete and the history holds exactly its run (same label and time)."""
    try:
        result = json.loads((stage / "result.json").read_text())
    except (OSError, ValueError):
        return False
    if not (stage / "index.html").is_file() or result.get("suite") != suite:
        return False
    label = str(result.get("label", ""))
    if not store.has_label(suite, label):
        return False
    return store.get(suite, label, histograms=False).created == result.get("created")


def _move_into_place(stage: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{_owner()}")
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _measure(
    s: Suite,
    label: str,
    kind: DataKind,
    analyses: dict[str, Analysis],
    ref_path: str,
    ref: Any,
    ref_obs: dict[str, tuple[str, Observable]],
    cand_in: _Candidate,
    out: Path,
    stage: Path,
    say: Say,
) -> RunRecord:
    """Sample (into ``stage``), book, compare, evaluate and gate: the record of one run."""
    max_events = s.metrics.get("max_samples")
    cand_run = _sample(cand_in, kind, ref, s, stage, say)
    cand_path, identity = cand_run.spec, dict(cand_run.identity)
    if cand_run.checkpoint is not None:
        identity["path"] = str((out / "candidate.h5").resolve())
    cand = _read(cand_path, kind, max_events)
    cand_obs = run_analyses(analyses, cand)
    hists = _compare_all(ref_obs, cand_obs, s.bins)
    metrics = _aggregates(hists)
    ref_id = _identity(ref_path, "reference")
    notes = sample_notes(kind, ref, cand, ref_id, identity)
    if s.evaluate:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            metrics.update(_evaluation(s, kind, ref_path, cand_path, stage / "evaluation", say))
        notes += sorted({str(w.message).splitlines()[0] for w in caught if issubclass(w.category, UserWarning)})
    for note in notes:
        say(f"note: {note}")
    gates = evaluate_gates(s.gates, metrics, hists)
    passed = all(g["passed"] for g in gates)
    record = RunRecord(
        suite=s.name,
        label=str(label),
        created=now_utc(),
        verdict="pass" if passed else "fail",
        candidate=identity | {"n_events": len(cand)},
        reference=ref_id | {"n_events": len(ref), "kind": kind.name, "notes": notes},
        metrics=metrics,
        gates=gates,
        histograms=hists,
        page=str((out / "index.html").resolve()),
    )
    return record


def histograms_of(record: RunRecord, which: str = "candidate") -> list[Hist1D]:
    return [h[which] for h in record.histograms.values()]
