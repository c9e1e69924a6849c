"""The point-cloud report in words: the summary rows, the plain-text table and ``index.html``.

Everything here reads a ``metrics.json`` dict (returned by
:func:`~showerforge.evaluation.points.report.evaluate_point_files` or read from disk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from showerforge.evaluation.html import PAGE_PLOTS_FOOTER, PAGE_STYLE
from showerforge.evaluation.metrics import format_measurement
from showerforge.evaluation.metrics import judge_against_floor as judge
from showerforge.evaluation.output import write_json, write_page
from showerforge.evaluation.points.observables import LABELS, OBSERVABLES

__all__ = ["Row", "summary_rows", "judge", "format_points_summary", "write_report"]

Row = tuple[str, str, str, str, str]
"""(metric, candidate vs reference, floor, verdict, css class)."""


def summary_rows(metrics: dict[str, Any]) -> list[Row]:
    """Classifier AUC and JSD, the mean W1 x 100 and W1 x 100 of every observable, beside the floor."""
    comp, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    pairs: list[tuple[str, Any, Any]] = []
    if comp["classifier"].get("skipped") is None:
        pairs += [
            ("classifier AUC (high-level observables)", comp["classifier"]["auc"], floor["classifier"]["auc"]),
            ("classifier JSD", comp["classifier"]["jsd"], floor["classifier"]["jsd"]),
        ]
    pairs.append(("W1 x 100, mean of the observables", comp["w1x100_mean"], floor["w1x100_mean"]))
    for name in OBSERVABLES:
        pairs.append((f"W1 x 100 {name}", comp["w1x100"][name], floor["w1x100"][name]))
    return [(label, format_measurement(c), format_measurement(f), *judge(c, f)) for label, c, f in pairs]


def format_points_summary(metrics: dict[str, Any]) -> str:
    """A plain-text table (rich, no colour codes): every metric beside its Geant4-vs-Geant4 floor.

    Args:
        metrics: the dict returned by :func:`~showerforge.evaluation.points.report.evaluate_point_files`
            (or read from ``metrics.json``).
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    comp, floor = metrics["candidate_vs_reference"]["n_showers"], metrics["reference_vs_reference"]["n_showers"]
    settings = metrics["settings"]
    table = Table(
        title=Text(f"{metrics['candidate']['path']} vs {metrics['reference']['path']} ({metrics['geometry']['name']})"),
        caption=f"cells above {settings['threshold_mip']:g} MIP; W1 x 100 of standardised observables "
        f"(CaloClouds II); floor: {settings['floor']}",
    )
    table.add_column("metric")
    table.add_column(f"candidate vs reference ({comp[1]} vs {comp[0]})", justify="right")
    table.add_column(f"floor ({floor[1]} vs {floor[0]})", justify="right")
    table.add_column("verdict")
    for row in summary_rows(metrics):
        table.add_row(*(Text(cell) for cell in row[:4]))
    buf = io.StringIO()
    Console(file=buf, width=130, color_system=None, force_terminal=False, record=False).print(table)
    skipped = metrics["candidate_vs_reference"]["classifier"].get("skipped")
    return buf.getvalue() + (f"classifier skipped: {skipped}\n" if skipped else "")


def write_report(out: Path, metrics: dict[str, Any]) -> None:
    """``metrics.json`` and ``index.html`` into ``out`` (each atomically)."""
    from showerforge.evaluation.html import render_template  # jinja2 only when a page is rendered

    write_json(out / "metrics.json", metrics)
    page = render_template(
        _TEMPLATE, m=metrics, plots=metrics["plots"], rows=summary_rows(metrics), labels=LABELS, style=PAGE_STYLE
    )
    write_page(out / "index.html", page)


_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>showerforge evaluation: {{ m.candidate.path }} vs {{ m.reference.path }}</title>
{{ style|safe }}</head>
<body>
<h1>Point-cloud shower evaluation</h1>
<p>
candidate: <code>{{ m.candidate.path }}</code> ({{ m.candidate.n_showers }} showers)<br>
reference: <code>{{ m.reference.path }}</code> ({{ m.reference.n_showers }} showers)<br>
{% if m.floor_reference is defined %}floor reference: <code>{{ m.floor_reference.path }}</code> ({{ m.floor_reference.n_showers }} showers)<br>
{% endif %}geometry: {{ m.geometry.name }} ({{ m.geometry.n_layers }} layers, {{ m.geometry.n_cells }} cells; {{ m.geometry.stack }})<br>
points projected on the cells, threshold {{ "%g"|format(m.settings.threshold_mip) }} MIP; seed {{ m.settings.seed }};
{{ m.settings.n_bootstrap }} bootstrap replicas
</p>
<h2>Verdict</h2>
<p class="small">Every metric beside its floor ({{ m.settings.floor }}; the same sample sizes). Green: within
2 standard deviations of the floor; amber: 2-5 sigma; red: more than 5 sigma. W1 x 100: {{ m.settings.w1x100 }}.
Classifier: calibrated AUC on a held-out split, inputs the per-shower observables and profiles.</p>
<table>
<tr><th>metric</th><th>candidate vs reference</th><th>floor</th><th>verdict</th></tr>
{% for name, cand, floor, word, cls in rows %}<tr class="{{ cls }}"><td>{{ name }}</td><td>{{ cand }}</td><td>{{ floor }}</td><td>{{ word }}</td></tr>
{% endfor %}</table>
{% if m.candidate_vs_reference.classifier.skipped %}<p class="small">classifier skipped: {{ m.candidate_vs_reference.classifier.skipped }}</p>
{% endif %}"""
    + PAGE_PLOTS_FOOTER
)
