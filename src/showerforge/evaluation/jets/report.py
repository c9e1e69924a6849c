"""JetNet-standard evaluation report of a candidate jet file against a reference jet file.

:func:`evaluate_jet_files` reads two JetNet-format files (:func:`showerforge.data.jetnet.read_jets`
specs, ``jets.h5:t`` selects a type), computes the metrics of arXiv:2211.10295 with
:func:`showerforge.evaluation.jets.metrics.evaluate_jets` (W1M, W1P, W1EFP, FPD, KPD) for the
candidate and, as the floor, for one random half of the reference against the other
("truth vs truth"), and writes, into ``out_dir``:

* ``metrics.json`` (keys below);
* ``plots/*.png``: reference-vs-candidate histograms with ratio panels of the particle features
  (``particle_eta_rel.png``, ``particle_phi_rel.png``, ``particle_pt_rel.png``), the relative jet
  mass from the constituents (``relative_mass.png``), the particle multiplicity
  (``multiplicity.png``) and, when both files carry jet masses in GeV, ``jet_mass.png``;
* ``index.html``: the summary table and the plots, in the look of the shower report
  (:data:`showerforge.evaluation.html.PAGE_STYLE`).

Nothing is printed; :func:`format_jet_summary` turns the returned dict into a table for the CLI,
and :func:`detect_format` tells a jet file from a shower file so that ``showerforge evaluate``
can dispatch.

Jet types. A ``:type`` suffix on either spec is honoured. When the reference is given without a
type and holds several types while the candidate (after its own selection) holds exactly one
type ``t``, the reference's ``t`` jets are selected automatically (``type_selection:
"automatic"`` in ``metrics.json``). A candidate holding several types is compared as a mixture
only when the reference holds exactly the same set of types; otherwise, as when the two
selections differ (e.g. ``ref.h5:t`` against a gluon-only candidate), a :class:`~showerforge.errors.UserError` asks
for a ``file:type`` selection and lists the types of both files.

``metrics.json`` (schema ``showerforge.evaluation.jets/1``); every measurement is
``{"value": v, "error": e}``:

* ``schema``, ``showerforge_version``;
* ``reference`` / ``candidate``: ``path`` (the spec as given), ``file``, ``n_jets`` (used),
  ``n_jets_in_file``, ``n_particles`` (slots per jet), ``types`` (type -> jets used),
  ``types_in_file``, ``selected_type`` (or null), ``type_selection`` (``"spec"``,
  ``"automatic"`` or ``"none"``);
* ``settings``: ``seed``, ``quick``, ``max_jets``, and the sample sizes and conventions of
  :func:`~showerforge.evaluation.jets.metrics.evaluate_jets` (``w1_samples``, ``w1_batches``,
  ``fpd_min``, ``fpd_max``, ``fpd_batches``, ``kpd_batches``, ``kpd_size``, ``kpd_degree``,
  ``efp_normed`` (false: jetnet's EFPs on the stored pT_rel, as the published numbers; true:
  pT normalised to the jet's sum), ``efp_features`` (the same in words), ``fpd_extrapolation``
  (``"jetnet"``: bounded ``curve_fit`` as jetnet; ``"lsq"``: exact least squares),
  ``w1efp_set``, the error definitions);
* ``candidate_vs_reference`` (candidate against reference half A) and ``truth_vs_truth``
  (reference half B against half A), each with

  - ``n_jets``: ``[n_a, n_b]`` sample sizes compared;
  - ``W1M``: W1 of the relative jet mass m/pT (dimensionless);
  - ``W1P``: ``eta_rel``, ``phi_rel``, ``pt_rel`` (W1 in the feature's unit) and ``mean``;
  - ``W1EFP``: W1 averaged over the 5 connected n=4, d=4 EFPs (EFP units); ``W1EFP_per_efp``:
    per EFP (keyed by :attr:`~showerforge.evaluation.jets.metrics.EFPGraph.name`);
  - ``FPD`` and ``KPD`` (of the 36 EFPs, each divided by the reference's max |value|);
* ``target``: ``factor`` (3), ``rule``, and per summary metric (``W1M``, ``W1P``,
  ``W1P_eta_rel``, ``W1P_phi_rel``, ``W1P_pt_rel``, ``W1EFP``, ``FPD``, ``KPD``) the
  ``ratio`` candidate / truth (null where the truth value is not positive) and ``within``
  (candidate value <= factor x max(truth value, truth error): the error stands in for a truth
  value consistent with zero, as KPD usually is); ``all_within``;
* ``plots``: ``{"file", "caption"}`` per PNG written (relative to ``out_dir``);
* ``warnings``: messages of the warnings raised while evaluating (e.g. samples smaller than the
  recommended 50,000 jets); they are also re-issued as :class:`UserWarning`.

Sample sizes: the candidate is compared with half of the reference, so that it and the floor see
the same reference statistics. The plots show the whole reference.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.jetnet import JET_TYPES, JetData, JetFileError, parse_spec, read_jets
from showerforge.errors import UserError
from showerforge.evaluation.html import PAGE_PLOTS_FOOTER, PAGE_STYLE
from showerforge.evaluation.jets.metrics import PARTICLE_FEATURE_NAMES, evaluate_jets
from showerforge.evaluation.metrics import format_measurement
from showerforge.evaluation.output import check_output_dir, report_folder, write_json, write_page

__all__ = [
    "JET_SCHEMA",
    "TARGET_FACTOR",
    "evaluate_jet_files",
    "format_jet_summary",
    "jet_summary_rows",
]

JET_SCHEMA = "showerforge.evaluation.jets/1"
TARGET_FACTOR = 3.0
"""The goal for a surrogate: every metric within this factor of truth vs truth."""

_SUMMARY = (
    ("W1M", "W1M (m/pT)"),
    ("W1P", "W1P mean"),
    ("W1P_eta_rel", "W1P eta_rel"),
    ("W1P_phi_rel", "W1P phi_rel"),
    ("W1P_pt_rel", "W1P pt_rel"),
    ("W1EFP", "W1EFP mean"),
    ("FPD", "FPD"),
    ("KPD", "KPD"),
)


# ----------------------------------------------------------------------------- format detection
# ----------------------------------------------------------------------------- inputs
def _type_counts(data: JetData) -> dict[str, int]:
    """Jets per type, in :data:`JET_TYPES` order, types present only."""
    counts = np.bincount(np.asarray(data.jet_type, dtype=np.int64), minlength=len(JET_TYPES))
    return {t: int(c) for t, c in zip(JET_TYPES, counts, strict=True) if c > 0}


def _select(data: JetData, jet_type: str) -> JetData:
    """The jets of one type (a new :class:`JetData`)."""
    keep = data.jet_type == JET_TYPES.index(jet_type)
    return JetData(
        data.particle_features[keep],
        data.jet_features[keep],
        data.jet_type[keep],
        data.attrs,
        data.type_column_found,
        data.path,
        jet_type,
    )


def _describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{t}: {n}" for t, n in counts.items()) or "no jets"


def _load_pair(reference: str, candidate: str) -> tuple[JetData, JetData, dict[str, Any], dict[str, Any]]:
    """Read both specs, check n, resolve the jet types (see module docstring)."""
    ref_file, ref_type = parse_spec(reference)
    cand_file, cand_type = parse_spec(candidate)
    ref_all, cand_all = read_jets(ref_file), read_jets(cand_file)
    if ref_all.n_particles != cand_all.n_particles:
        raise JetFileError(
            candidate,
            "particle_features",
            f"n = {cand_all.n_particles} particles per jet, but the reference {reference} has "
            f"n = {ref_all.n_particles}; compare files with the same number of particles (e.g. both 30 or both 150)",
        )
    ref_in, cand_in = _type_counts(ref_all), _type_counts(cand_all)
    cand = _select(cand_all, cand_type) if cand_type else cand_all
    cand_how = "spec" if cand_type else "none"
    cand_types = _type_counts(cand)
    ref_how = "none"
    if ref_type is None and len(ref_in) > 1 and len(cand_types) == 1:
        ref_type, ref_how = next(iter(cand_types)), "automatic"
    elif ref_type is not None:
        ref_how = "spec"
    ref = _select(ref_all, ref_type) if ref_type else ref_all
    ref_types = _type_counts(ref)
    hint = f"reference {reference} holds {{{_describe(ref_in)}}}, candidate {candidate} holds {{{_describe(cand_in)}}}"
    if len(cand) == 0:
        raise JetFileError(candidate, "jet_type", f"no jets of type {cand_type!r}; {hint}")
    if len(ref) == 0:
        raise JetFileError(reference, "jet_type", f"no jets of type {ref_type!r} to compare with; {hint}")
    if set(ref_types) != set(cand_types):
        raise UserError(
            f"jet types differ: reference {sorted(ref_types)}, candidate {sorted(cand_types)}; "
            f"select the same type on both with FILE.h5:TYPE ({hint})"
        )

    def info(spec: str, file: Path, data: JetData, in_file: dict[str, int], how: str) -> dict[str, Any]:
        return {
            "path": str(spec),
            "file": str(file),
            "n_jets": len(data),
            "n_jets_in_file": int(sum(in_file.values())),
            "n_particles": data.n_particles,
            "types": _type_counts(data),
            "types_in_file": in_file,
            "selected_type": data.selected_type,
            "type_selection": how,
        }

    return (
        ref,
        cand,
        info(reference, ref_file, ref, ref_in, ref_how),
        info(candidate, cand_file, cand, cand_in, cand_how),
    )


def _head(data: JetData, n: int | None) -> JetData:
    """The first ``n`` jets (all when ``n`` is None)."""
    if n is None or n >= len(data):
        return data
    return JetData(
        data.particle_features[:n],
        data.jet_features[:n],
        data.jet_type[:n],
        data.attrs,
        data.type_column_found,
        data.path,
        data.selected_type,
    )


# ----------------------------------------------------------------------------- metrics
def _block(raw: dict[str, Any], n_jets: Sequence[int]) -> dict[str, Any]:
    """Rename :func:`evaluate_jets` output to the report's keys."""
    w1p = raw["w1p"]
    return {
        "n_jets": [int(n) for n in n_jets],
        "W1M": raw["w1m"],
        "W1P": {**{name: w1p["per_component"][name] for name in PARTICLE_FEATURE_NAMES}, "mean": w1p["mean"]},
        "W1EFP": raw["w1efp"]["mean"],
        "W1EFP_per_efp": raw["w1efp"]["per_component"],
        "FPD": raw["fpd"],
        "KPD": raw["kpd"],
    }


def _pick(block: dict[str, Any], key: str) -> dict[str, float]:
    """The measurement of a summary key (``W1P`` is the mean, ``W1P_<feature>`` one feature)."""
    if key == "W1P":
        return block["W1P"]["mean"]
    if key.startswith("W1P_"):
        return block["W1P"][key[4:]]
    return block[key]


def _ratio(cand: dict[str, float], truth: dict[str, float]) -> float | None:
    return float(cand["value"] / truth["value"]) if truth["value"] > 0 else None


def _target(comp: dict[str, Any], truth: dict[str, Any], factor: float) -> dict[str, Any]:
    ratio, within = {}, {}
    for key, _ in _SUMMARY:
        c, t = _pick(comp, key), _pick(truth, key)
        ratio[key] = _ratio(c, t)
        within[key] = bool(c["value"] <= factor * max(t["value"], t["error"]))
    return {
        "factor": factor,
        "rule": "candidate value <= factor * max(truth value, truth error)",
        "ratio": ratio,
        "within": within,
        "all_within": all(within.values()),
    }


def evaluate_jet_files(
    reference: str | os.PathLike[str],
    candidate: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    quick: bool = False,
    plots: bool = True,
    max_jets: int | None = None,
    efp_normed: bool = False,
    fpd_extrapolation: str = "jetnet",
) -> dict[str, Any]:
    """Evaluate a candidate jet file against a reference jet file (see module docstring).

    Args:
        reference: JetNet-format reference file (e.g. Pythia8), ``path`` or ``path:type``.
        candidate: Candidate (generated) file with the same number of particle slots n.
        out_dir: Output folder: ``metrics.json``, ``index.html``, ``plots/``; created (with its
            parents) only when the report is complete (see
            :func:`showerforge.evaluation.output.report_folder`).
        seed: Seeds the reference halves and every bootstrap.
        quick: Smaller bootstrap sizes (see :func:`~showerforge.evaluation.jets.metrics.evaluate_jets`):
            for small samples and tests.
        plots: Write the PNG plots (needs matplotlib).
        max_jets: Use only the first ``max_jets`` jets of each file (after type selection).
        efp_normed: EFPs of pT normalised to the jet's sum instead of jetnet's stored pT_rel
            (the default; published numbers use it).
        fpd_extrapolation: ``"jetnet"`` (default, as jetnet) or ``"lsq"`` (exact least squares).

    Returns:
        The content of ``metrics.json`` as a dict.

    Raises:
        FileNotFoundError: A file does not exist.
        JetFileError: A file is malformed, the particle counts n differ (naming both files), or a
            selected type has no jets.
        UserError: The two files' jet types differ and no single type can be selected
            automatically (the message lists both files' types); ``max_jets`` < 4; an unknown
            ``fpd_extrapolation``.
        OutputPathError: ``out_dir`` cannot be created or written.
    """
    if max_jets is not None and max_jets < 4:
        raise UserError(f"max_jets must be >= 4 (the reference is split in halves), got {max_jets}")
    out = check_output_dir(out_dir)
    ref, cand, ref_info, cand_info = _load_pair(os.fspath(reference), os.fspath(candidate))
    ref, cand = _head(ref, max_jets), _head(cand, max_jets)
    ref_info.update(n_jets=len(ref), types=_type_counts(ref))
    cand_info.update(n_jets=len(cand), types=_type_counts(cand))
    metrics = _jet_metrics(ref, cand, ref_info, cand_info, seed, quick, max_jets, efp_normed, fpd_extrapolation)
    with report_folder(out) as stage:
        if plots:
            metrics["plots"] = _draw(stage, ref, cand)
        metrics = json.loads(json.dumps(metrics))  # plain JSON types, as read back from disk
        _write_page(stage, metrics)
    for message in metrics["warnings"]:
        warnings.warn(message, UserWarning, stacklevel=2)
    return metrics


def _jet_metrics(
    ref: JetData,
    cand: JetData,
    ref_info: dict[str, Any],
    cand_info: dict[str, Any],
    seed: int,
    quick: bool,
    max_jets: int | None,
    efp_normed: bool,
    fpd_extrapolation: str,
) -> dict[str, Any]:
    """The ``metrics.json`` content (``plots`` still empty); warnings recorded, not issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = evaluate_jets(
            ref,
            cand,
            seed=int(seed),
            quick=bool(quick),
            efp_normed=bool(efp_normed),
            fpd_extrapolation=fpd_extrapolation,
        )
    half = raw["settings"]["n_reference_half"]
    comp = _block(raw["candidate"], (half, len(cand)))
    truth = _block(raw["truth"], (half, half))
    from showerforge._version import __version__

    return {
        "schema": JET_SCHEMA,
        "showerforge_version": __version__,
        "reference": ref_info,
        "candidate": cand_info,
        "settings": {
            "seed": int(seed),
            "quick": bool(quick),
            "max_jets": max_jets,
            **{k: v for k, v in raw["settings"].items() if k not in ("quick", "n_reference_half", "n_candidate")},
        },
        "candidate_vs_reference": comp,
        "truth_vs_truth": truth,
        "target": _target(comp, truth, TARGET_FACTOR),
        "plots": [],
        "warnings": list(dict.fromkeys(str(w.message) for w in caught)),
    }


def _write_page(out: Path, metrics: dict[str, Any]) -> None:
    """``metrics.json`` and ``index.html`` into ``out`` (each atomically)."""
    from showerforge.evaluation.html import render_template  # jinja2 only when a page is rendered

    write_json(out / "metrics.json", metrics)
    page = render_template(
        _TEMPLATE, m=metrics, plots=metrics["plots"], rows=jet_summary_rows(metrics), style=PAGE_STYLE
    )
    write_page(out / "index.html", page)


# ----------------------------------------------------------------------------- plots
def _multiplicity(data: JetData) -> np.ndarray:
    """Real particles per jet (mask column)."""
    return (data.particle_features[..., 3] > 0.5).sum(axis=1)


def _draw(out: Path, ref: JetData, cand: JetData) -> list[dict[str, str]]:
    """Every PNG of the report; returns ``{"file", "caption"}`` per plot."""
    from showerforge.evaluation.jets.metrics import plot_jet_mass, plot_particle_features
    from showerforge.evaluation.metrics import unit_histogram
    from showerforge.evaluation.plots import HistPanel, plot_histograms

    pdir = out / "plots"
    files: list[dict[str, str]] = []

    def add(path: Path, caption: str) -> None:
        files.append({"file": path.relative_to(out).as_posix(), "caption": caption})

    captions = {
        "eta_rel": "Particle eta relative to the jet axis",
        "phi_rel": "Particle phi relative to the jet axis",
        "pt_rel": "Particle pT / jet pT",
    }
    for path, name in zip(plot_particle_features(ref, cand, pdir), PARTICLE_FEATURE_NAMES, strict=True):
        add(path, f"{captions[name]} (real particles)")
    add(
        plot_jet_mass(ref, cand, pdir / "relative_mass.png"),
        "Relative jet mass m/pT from the constituents (the W1M observable)",
    )
    n = ref.n_particles
    edges = np.arange(-0.5, n + 1.0)
    m_ref, m_cand = _multiplicity(ref), _multiplicity(cand)
    add(
        plot_histograms(
            pdir / "multiplicity.png",
            [
                HistPanel(
                    "particle multiplicity",
                    edges,
                    unit_histogram(m_ref, edges),
                    unit_histogram(m_cand, edges),
                    f"mean {m_ref.mean():.3g} vs {m_cand.mean():.3g}",
                )
            ],
            xlabel=f"real particles per jet (of {n})",
        ),
        "Particle multiplicity (mask column)",
    )
    mass_ref, mass_cand = ref.jet_features[:, 2].astype(np.float64), cand.jet_features[:, 2].astype(np.float64)
    if np.any(mass_ref > 0) and np.any(mass_cand > 0):
        both = np.concatenate([mass_ref, mass_cand])
        lo, hi = np.percentile(both, [0.1, 99.9])
        medges = np.linspace(lo, hi if hi > lo else lo + 1.0, 51)
        add(
            plot_histograms(
                pdir / "jet_mass.png",
                [HistPanel("jet mass", medges, unit_histogram(mass_ref, medges), unit_histogram(mass_cand, medges))],
                xlabel="jet mass [GeV]",
            ),
            "Jet mass in GeV (jet_features column 2, as stored in the files)",
        )
    return files


# ----------------------------------------------------------------------------- summary
def jet_summary_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, candidate vs reference, truth vs truth, ratio) rows of the summary table.

    Args:
        metrics: The dict returned by :func:`evaluate_jet_files` (or read from ``metrics.json``).

    Returns:
        One row per summary metric; the ratio is ``"n/a"`` where the truth value is not positive,
        and is followed by ``*`` where the candidate misses the target (``metrics["target"]``).
    """
    comp, truth, target = metrics["candidate_vs_reference"], metrics["truth_vs_truth"], metrics["target"]
    rows = []
    for key, label in _SUMMARY:
        r = target["ratio"][key]
        ratio = "n/a" if r is None else f"{r:.3g}"
        if not target["within"][key]:
            ratio += " *"
        rows.append((label, format_measurement(_pick(comp, key)), format_measurement(_pick(truth, key)), ratio))
    return rows


def format_jet_summary(metrics: dict[str, Any]) -> str:
    """A plain-text table (rendered with rich, no colour codes): candidate beside truth vs truth.

    Args:
        metrics: The dict returned by :func:`evaluate_jet_files` (or read from ``metrics.json``).

    Returns:
        The table, with a ratio column (candidate / truth) and a last line saying whether every
        metric is within the target factor of truth vs truth.
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    ref, cand = metrics["reference"], metrics["candidate"]
    types = ",".join(cand["types"]) or "-"
    factor = metrics["target"]["factor"]
    table = Table(
        title=Text(f"{cand['path']} vs {ref['path']} (jet type {types}, n = {cand['n_particles']})"),
        caption=f"truth: two halves of the reference; * candidate > {factor:g} x max(truth, its error)\n"
        + _conventions(metrics["settings"]),
    )
    comp_n, truth_n = metrics["candidate_vs_reference"]["n_jets"], metrics["truth_vs_truth"]["n_jets"]
    table.add_column("metric")
    table.add_column(f"candidate vs reference ({comp_n[1]} vs {comp_n[0]})", justify="right")
    table.add_column(f"truth vs truth ({truth_n[0]} vs {truth_n[1]})", justify="right")
    table.add_column("ratio", justify="right")
    for row in jet_summary_rows(metrics):
        table.add_row(*(Text(cell) for cell in row))
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None, force_terminal=False, record=False).print(table)
    n_miss = sum(not v for v in metrics["target"]["within"].values())
    verdict = (
        f"every metric within {factor:g}x of truth vs truth"
        if n_miss == 0
        else f"{n_miss} of {len(metrics['target']['within'])} metrics beyond {factor:g}x of truth vs truth"
    )
    return buf.getvalue() + verdict + "\n"


def _conventions(settings: dict[str, Any]) -> str:
    """EFP normalisation and FPD extrapolation in one line.

    Files written before these settings were recorded used normed EFPs (their ``efp_features``
    says so) and do not say how FPD was extrapolated.
    """
    efps = "pT/sum(pT) (normed)" if settings.get("efp_normed", True) else "stored pT_rel (jetnet)"
    return f"EFPs: {efps}; FPD extrapolation: {settings.get('fpd_extrapolation', 'not recorded')}"


# ----------------------------------------------------------------------------- page
_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>showerforge evaluation: {{ m.candidate.path }} vs {{ m.reference.path }}</title>
{{ style|safe }}</head>
<body>
<h1>Jet evaluation</h1>
<p>
candidate: <code>{{ m.candidate.path }}</code> ({{ m.candidate.n_jets }} jets{% for t, c in m.candidate.types.items() %}{{ ", " if loop.first else " " }}{{ t }}: {{ c }}{% endfor %})<br>
reference: <code>{{ m.reference.path }}</code> ({{ m.reference.n_jets }} of {{ m.reference.n_jets_in_file }} jets{% if m.reference.selected_type %}, type {{ m.reference.selected_type }} selected {{ "automatically" if m.reference.type_selection == "automatic" else "by the spec" }}{% endif %})<br>
{{ m.reference.n_particles }} particle slots per jet; seed {{ m.settings.seed }}; {{ "quick" if m.settings.quick else "full" }} bootstrap
(W1: {{ m.settings.w1_batches }} x {{ m.settings.w1_samples }} jets; FPD: {{ m.settings.fpd_min }}-{{ m.settings.fpd_max }} jets, {{ m.settings.fpd_extrapolation }} extrapolation; KPD: {{ m.settings.kpd_batches }} x {{ m.settings.kpd_size }} jets)<br>
EFPs: {{ m.settings.efp_features }}
</p>
<h2>Verdict</h2>
<p class="small">Green: within the target; red: missed. Metrics of Kansal et al., arXiv:2211.10295. Truth vs truth compares two halves of the reference
(the candidate is compared with one of them): the value a perfect surrogate would reach. Target: every metric within
{{ "%g"|format(m.target.factor) }}&times; of truth vs truth; * marks a miss. W1M in m/pT, W1P in the feature units,
W1EFP in EFP units ({{ "pT normalised to the jet's sum" if m.settings.efp_normed else "jetnet's convention: stored pT_rel, not normalised" }}),
FPD and KPD of the 36 EFPs each divided by the reference's max |value|.</p>
<table>
<tr><th>metric</th><th>candidate vs reference</th><th>truth vs truth</th><th>ratio</th></tr>
{% for name, cand, truth, ratio in rows %}<tr class="{{ 'bad' if ratio.endswith('*') else 'ok' }}"><td>{{ name }}</td><td>{{ cand }}</td><td>{{ truth }}</td><td>{{ ratio }}</td></tr>
{% endfor %}</table>
{% if m.warnings %}<p class="small">{% for w in m.warnings %}warning: {{ w }}<br>{% endfor %}</p>
{% endif %}"""
    + PAGE_PLOTS_FOOTER
)
