"""Pages and files of a validation: the run page, ``result.json``, ROOT/YODA histograms, plots,
and the dashboard of a suite's history."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.validate.histograms import BANDS, Hist1D, band
from showerforge.validate.store import RunRecord

__all__ = ["fmt_num", "gate_keys", "regressions", "value_of", "render_dashboard", "write_dashboard", "write_outputs"]

#: at most this many histograms are drawn on a run page (the worst by chi2/ndf first)
MAX_PLOTS = 60

_BAND_CLASS = {"good": "ok", "marginal": "warn", "bad": "bad", "n/a": ""}


def fmt_num(v: Any, spec: str = ".4g") -> str:
    """A number for a table ("-" for None / NaN)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(float(v), spec)


def _pm(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "-"
    err = m.get("error")
    return fmt_num(m["value"]) + (f" ± {fmt_num(err, '.2g')}" if err is not None else "")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _ordered(record: RunRecord) -> list[str]:
    return sorted(record.histograms, key=lambda k: -(record.histograms[k]["comparison"].get("chi2_ndf") or 0.0))


def _plots(record: RunRecord, out: Path) -> dict[str, str]:
    from showerforge.evaluation.plots import HistPanel, plot_histograms

    files = {}
    for name in _ordered(record)[:MAX_PLOTS]:
        h = record.histograms[name]
        hc, hr = h["candidate"], h["reference"]
        (yc, _), (yr, _) = hc.normalised(), hr.normalised()
        comp = h["comparison"]
        note = f"chi2/ndf {fmt_num(comp.get('chi2_ndf'), '.2f')}"
        rel = f"plots/{_safe(name)}.png"
        plot_histograms(
            out / rel,
            [HistPanel(hr.title or name, hr.edges, yr, yc, note)],
            xlabel=hr.xlabel or name,
            logx=hr.logx,
            ylabel="mean" if hr.kind == "profile" else "fraction",
            labels=("reference", record.label),
        )
        files[name] = rel
    return files


def _write_histograms(record: RunRecord, out: Path) -> list[str]:
    from showerforge.validate.histio import write_histograms

    hists: list[Hist1D] = []
    for h in record.histograms.values():
        for role in ("candidate", "reference"):
            src: Hist1D = h[role]
            hists.append(
                Hist1D(
                    name=f"{role}/{src.name}",
                    edges=src.edges,
                    values=src.values,
                    errors=src.errors,
                    kind=src.kind,
                    entries=src.entries,
                    title=src.title,
                    xlabel=src.xlabel,
                    analysis=src.analysis,
                    logx=src.logx,
                )
            )
    names = []
    for suffix in (".root", ".yoda"):
        write_histograms(out / f"histograms{suffix}", hists)
        names.append(f"histograms{suffix}")
    return names


def _result_json(record: RunRecord) -> dict[str, Any]:
    return {
        "schema": "showerforge.validation/1",
        "suite": record.suite,
        "label": record.label,
        "created": record.created,
        "verdict": record.verdict,
        "candidate": record.candidate,
        "reference": record.reference,
        "gates": record.gates,
        "metrics": record.metrics,
        "histograms": {k: v["comparison"] for k, v in record.histograms.items()},
    }


def write_outputs(record: RunRecord, out: Path, *, suite: Any = None) -> Path:
    """``result.json``, ``histograms.root`` / ``.yoda``, ``plots/`` and ``index.html`` in ``out``."""
    from showerforge.data.io import atomic_output
    from showerforge.evaluation.output import write_page

    out.mkdir(parents=True, exist_ok=True)
    files = _write_histograms(record, out)
    with atomic_output(out / "result.json") as tmp:
        tmp.write_text(json.dumps(_result_json(record), indent=1, default=str))
    plots = _plots(record, out)
    write_page(out / "index.html", render_run_page(record, plots, files))  # non-UTF-8 file names: U+FFFD
    return out / "index.html"


def _hist_rows(record: RunRecord, plots: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for name in _ordered(record):
        h = record.histograms[name]
        c = h["comparison"]
        b = band(c.get("chi2_ndf"))
        rows.append(
            {
                "name": name,
                "analysis": h["reference"].analysis,
                "kind": h["reference"].kind,
                "chi2": fmt_num(c.get("chi2"), ".3g"),
                "ndf": c.get("ndf"),
                "chi2_ndf": fmt_num(c.get("chi2_ndf"), ".3g"),
                "pull": fmt_num(c.get("max_pull"), ".2f"),
                "ks_p": fmt_num(c.get("ks_p"), ".3g"),
                "band": b,
                "cls": _BAND_CLASS[b],
                "plot": plots.get(name),
            }
        )
    return rows


def _render(template: str, **context: Any) -> str:
    """A page: the template, the shared style and the image-load check of the evaluation pages."""
    from showerforge.evaluation.html import PAGE_LOAD_CHECK, PAGE_STYLE, render_template

    return render_template(template + PAGE_LOAD_CHECK + "</body>\n</html>\n", style=PAGE_STYLE, **context)


def render_run_page(record: RunRecord, plots: dict[str, str], files: list[str]) -> str:
    gates = [
        {
            **g,
            "value_s": fmt_num(g.get("value")),
            "error_s": fmt_num(g.get("error"), ".2g"),
            "cls": "ok" if g["passed"] else "bad",
        }
        for g in record.gates
    ]
    metrics = [
        (name, _pm(m), fmt_num(m.get("floor")) if m.get("floor") is not None else "")
        for name, m in sorted(record.metrics.items())
        if not name.endswith("_floor")
    ]
    return _render(
        _RUN_TEMPLATE,
        r=record,
        gates=gates,
        metrics=metrics,
        rows=_hist_rows(record, plots),
        plots=[(name, plots[name]) for name in plots],
        files=files,
        bands=BANDS,
        cand_desc=_describe(record.candidate),
        ref_desc=_describe(record.reference),
    )


def _describe(identity: dict[str, Any]) -> str:
    a = identity.get("attrs", {})
    parts = [str(identity.get("model_spec") or identity.get("path", ""))]
    if identity.get("checkpoint_sha256"):
        parts.append(f"checkpoint sha256 {identity['checkpoint_sha256'][:12]}")
    for k in ("engine", "generator", "model", "geant4_version", "physics_list", "production_cut_mm", "solver", "nfe"):
        if a.get(k) is not None:
            parts.append(f"{k} {a[k]}")
    parts.append(f"file sha256 {str(identity.get('sha256', ''))[:12]}")
    if identity.get("n_events") is not None:
        parts.append(f"{identity['n_events']} events")
    return "; ".join(parts)


_RUN_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>validation {{ r.suite }} {{ r.label }}: {{ r.verdict }}</title>
{{ style|safe }}</head>
<body>
<h1>Validation of {{ r.label }} <span class="{{ 'ok' if r.verdict == 'pass' else 'bad' }}">{{ r.verdict|upper }}</span></h1>
<p>suite <b>{{ r.suite }}</b>, {{ r.created }}<br>
candidate: <code>{{ cand_desc }}</code><br>
reference: <code>{{ ref_desc }}</code></p>
{% for note in r.reference.get("notes", []) %}<p class="warn small">note: {{ note }}</p>
{% endfor %}
<h2>Gates</h2>
<table><tr><th>gate</th><th>value</th><th>uncertainty</th><th>verdict</th></tr>
{% for g in gates %}<tr class="{{ g.cls }}"><td><code>{{ g.expr }}</code></td><td>{{ g.value_s }}</td><td>{{ g.error_s }}</td><td>{{ 'pass' if g.passed else 'FAIL' }}</td></tr>
{% endfor %}</table>
<p class="small">A gate compares the central value with its threshold; a value exactly at a &le; or &ge; threshold passes.</p>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>candidate vs reference</th><th>floor (reference vs reference)</th></tr>
{% for name, value, floor in metrics %}<tr><td>{{ name }}</td><td>{{ value }}</td><td>{{ floor }}</td></tr>
{% endfor %}</table>
<h2>Histograms ({{ rows|length }})</h2>
<p class="small">chi2 between candidate and reference with both statistical errors (histograms normalised
to unit area, ndf = bins - 1; profiles as they are, ndf = bins). Bands as mcplots:
<span class="ok">chi2/ndf &lt; 1</span>, <span class="warn">1-4</span>, <span class="bad">&ge; 4</span>.
KS: two-sample Kolmogorov-Smirnov p-value of the unbinned values. Files: {% for f in files %}<a href="{{ f }}">{{ f }}</a> {% endfor %}<a href="result.json">result.json</a>.</p>
<table><tr><th>histogram</th><th>analysis</th><th>chi2</th><th>ndf</th><th>chi2/ndf</th><th>largest pull</th><th>KS p</th><th>band</th></tr>
{% for h in rows %}<tr class="{{ h.cls }}"><td>{% if h.plot %}<a href="#{{ h.name }}">{{ h.name }}</a>{% else %}{{ h.name }}{% endif %}</td><td>{{ h.analysis }}</td><td>{{ h.chi2 }}</td><td>{{ h.ndf }}</td><td>{{ h.chi2_ndf }}</td><td>{{ h.pull }}</td><td>{{ h.ks_p }}</td><td>{{ h.band }}</td></tr>
{% endfor %}</table>
<h2>Plots (worst first)</h2>
<div class="keyplots">
{% for name, file in plots %}<figure id="{{ name }}"><figcaption>{{ name }}</figcaption><img src="{{ file }}" alt="{{ name }}"></figure>
{% endfor %}</div>
"""


# ----------------------------------------------------------------------------- dashboard


def gate_keys(runs: list[RunRecord]) -> list[str]:
    """The values read by the gates of these runs, in first-seen order."""
    keys: list[str] = []
    for r in runs:
        for g in r.gates:
            if g["key"] not in keys:
                keys.append(g["key"])
    return keys


def _trend_keys(runs: list[RunRecord]) -> list[str]:
    keys = gate_keys(runs)
    for k in ("chi2_ndf_max", "chi2_ndf_mean", "auc_high", "auc_low", "w1m", "fpd"):
        if k not in keys and any(k in r.metrics for r in runs):
            keys.append(k)
    return keys


def value_of(r: RunRecord, key: str) -> tuple[float | None, float | None]:
    """(value, error) of a metric or ``func(histogram)`` key in one run."""
    if "(" in key:
        fn, hist = key[:-1].split("(", 1)
        h = r.histograms.get(hist)
        if h is not None:
            return h["comparison"].get(fn), None
        for g in r.gates:
            if g["key"] == key:
                return g.get("value"), g.get("error")
        return None, None
    m = r.metrics.get(key, {})
    return m.get("value"), m.get("error")


def _gate_lines(runs: list[RunRecord], key: str) -> list[tuple[str, float]]:
    seen = {}
    for r in runs:
        for g in r.gates:
            if g["key"] == key:
                seen[g["expr"]] = (g["op"], float(g["threshold"]))
    return list(seen.values())


def regressions(runs: list[RunRecord]) -> list[str]:
    """Alarms for the latest run: a gate that passed before and fails now, or a gated value that
    moved the wrong way by more than 2 standard deviations (when both have an uncertainty)."""
    if len(runs) < 2:
        return []
    prev, last = runs[-2], runs[-1]
    alarms = []
    before = {g["expr"]: g for g in prev.gates}
    for g in last.gates:
        p = before.get(g["expr"])
        if p is None:
            continue
        if p["passed"] and not g["passed"]:
            alarms.append(f"{g['expr']}: passed in {prev.label}, fails in {last.label} ({fmt_num(g['value'])})")
            continue
        raw = (p.get("value"), p.get("error"), g.get("value"), g.get("error"))
        if any(x is None for x in raw):
            continue
        v0, e0, v1, e1 = (float(x) for x in raw if x is not None)
        worse = (v1 - v0) if g["op"] in ("<=", "<") else (v0 - v1)
        sigma = math.hypot(e0, e1)
        if sigma > 0 and worse > 2 * sigma:
            alarms.append(f"{g['key']}: worse by {worse / sigma:.1f} sigma from {prev.label} to {last.label}")
    return alarms


def _trend_plot(path: Path, runs: list[RunRecord], key: str) -> Path:
    from showerforge.evaluation.plots import _figure, _save

    fig, _ = _figure(5.0, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(runs))
    vals = [value_of(r, key) for r in runs]
    y = np.array([np.nan if v is None else v for v, _ in vals], dtype=float)
    err = np.array([0.0 if e is None else e for _, e in vals], dtype=float)
    colors = ["#2a7a2a" if r.verdict == "pass" else "#b02020" for r in runs]
    ax.errorbar(x, y, yerr=err, color="#444444", linewidth=1, zorder=1)
    ax.scatter(x, y, c=colors, zorder=2)
    for op, thr in _gate_lines(runs, key):
        ax.axhline(thr, color="#b02020", linestyle="--", linewidth=1)
        ax.annotate(f"gate {op} {thr:g}", (0, thr), fontsize=7, color="#b02020", va="bottom")
    ax.set_xticks(x, [r.label for r in runs], fontsize=7, rotation=30)
    ax.set_title(key, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def render_dashboard(runs: list[RunRecord], out: Path, suite: str) -> str:
    keys = _trend_keys(runs)
    plots = []
    for key in keys:
        rel = f"trend_{_safe(key)}.png"
        _trend_plot(out / rel, runs, key)
        plots.append((key, rel))
    table = []
    for r in runs:
        link = os.path.relpath(r.page, out) if r.page else ""
        cells = [_pm(dict(zip(("value", "error"), value_of(r, k)))) for k in keys]
        table.append({"r": r, "link": link, "cells": cells, "cls": "ok" if r.verdict == "pass" else "bad"})
    return _render(
        _DASH_TEMPLATE,
        suite=suite,
        keys=keys,
        table=table,
        plots=plots,
        alarms=regressions(runs),
    )


def write_dashboard(runs: list[RunRecord], out: str | Path, suite: str) -> Path:
    """``index.html`` with every metric's trend across versions (gates as dashed lines)."""
    from showerforge.evaluation.output import write_page

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_page(out / "index.html", render_dashboard(runs, out, suite))
    return out / "index.html"


_DASH_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>validation dashboard: {{ suite }}</title>
{{ style|safe }}</head>
<body>
<h1>Validation dashboard: {{ suite }}</h1>
{% if alarms %}<h2 class="bad">Regression alarm</h2>
<ul>{% for a in alarms %}<li class="bad">{{ a }}</li>{% endfor %}</ul>
{% else %}<p class="ok">No regression from the previous version.</p>{% endif %}
<h2>Versions</h2>
<table><tr><th>label</th><th>date</th><th>verdict</th>{% for k in keys %}<th>{{ k }}</th>{% endfor %}</tr>
{% for row in table %}<tr class="{{ row.cls }}"><td>{% if row.link %}<a href="{{ row.link }}">{{ row.r.label }}</a>{% else %}{{ row.r.label }}{% endif %}</td><td>{{ row.r.created }}</td><td>{{ row.r.verdict }}</td>{% for c in row.cells %}<td>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
<h2>Trends</h2>
<p class="small">One point per version in the order they were validated (green: all gates passed, red: a gate
failed); dashed lines: the gates.</p>
<div class="keyplots">
{% for key, file in plots %}<figure><figcaption>{{ key }}</figcaption><img src="{{ file }}" alt="{{ key }}"></figure>
{% endfor %}</div>
"""
