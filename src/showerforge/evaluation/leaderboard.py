"""Several candidates against one reference: one report each, a leaderboard and overlaid histograms.

:func:`evaluate_many` runs :func:`~showerforge.evaluation.evaluate_files` (showers) or
:func:`~showerforge.evaluation.evaluate_jet_files` (jets) for every candidate into
``out_dir/<name>/`` with the same seed (so every candidate meets the same reference half and the
same floor), then writes ``out_dir/leaderboard.json`` and ``out_dir/index.html``: the headline
metrics of every candidate in one table beside the floor, sorted by the first headline metric (an
AUC by its distance from 0.5),
links to each report and, for showers, E_tot/E_inc and the longitudinal and radial profiles of
the reference and every candidate overlaid.

:data:`PUBLISHED_DS2` holds published CaloChallenge 2022 dataset-2 numbers to print beside ours
(``--published``). Our ds2 files are DS2-like (the same calorimeter and readout, simulated by
showerforge up to 100 GeV), not the challenge's files: the comparison says "same league", not "same
test".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from showerforge.errors import UserError
from showerforge.evaluation.metrics import format_measurement
from showerforge.evaluation.output import check_output_dir, report_folder, write_json, write_page

__all__ = ["PUBLISHED_DS2", "Kind", "evaluate_many", "candidate_names", "shower_overlays"]

PUBLISHED_DS2: list[dict[str, Any]] = [
    {"model": "CaloDREAM", "auc_low": 0.531, "auc_high": 0.521},
    {"model": "CaloScore", "auc_low": 0.595, "auc_high": 0.666},
    {"model": "L2LFlows", "auc_low": 0.708, "auc_high": 0.737},
    {"model": "CaloINN", "auc_low": 0.743, "auc_high": 0.865},
    {"model": "Geant4 vs Geant4", "fpd_x1e3": "10.8 ± 0.8", "kpd_x1e3": "-0.03 ± 0.02"},
]
"""CaloChallenge 2022 dataset 2 (electrons 1 GeV-1 TeV, 100k test showers, GPU-trained models):
classifier AUCs (low- / high-level) and the Geant4-vs-Geant4 FPD / KPD (x 1e3), from the
challenge's final results. Not comparable one to one with a DS2-like sample of other size and range."""


class Kind(Protocol):
    """What a leaderboard needs of a kind of data (:class:`showerforge.kinds.DataKind` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def floor_section(self) -> str: ...

    def evaluate(
        self, reference: str | Path, candidate: str | Path, output: Path, **options: Any
    ) -> dict[str, Any]: ...

    def headline_metrics(self) -> list[tuple[str, str, float]]: ...

    def overlay_plots(
        self, reference: str | Path, candidates: list[str], names: list[str], out: Path, **options: Any
    ) -> list[dict[str, str]]: ...


def candidate_names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique folder names for the candidates (file stems, numbered when they repeat)."""
    stems = [Path(str(p).split(":")[0]).stem or "candidate" for p in paths]
    out = []
    for i, s in enumerate(stems):
        out.append(s if stems.count(s) == 1 else f"{s}_{i + 1}")
    return out


def _get(block: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    cur: Any = block
    for key in path:
        if not isinstance(cur, dict) or key not in cur or cur[key] is None:
            return None
        cur = cur[key]
    return cur if isinstance(cur, dict) and "value" in cur else None


def _scale(m: dict[str, Any] | None, factor: float) -> dict[str, Any] | None:
    if m is None:
        return None
    return {k: (None if v is None else v * factor) for k, v in m.items()}


def evaluate_many(
    reference: str | Path,
    candidates: Sequence[str | Path],
    out_dir: str | Path,
    *,
    kind: Kind,
    published: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate every candidate against one reference; leaderboard in ``out_dir``.

    Args:
        reference: the reference file (jets: ``FILE.h5:TYPE`` allowed).
        candidates: two or more candidate files.
        out_dir: output folder: ``<name>/`` per candidate, ``leaderboard.json``, ``index.html``,
            ``plots/``; created only when every report is complete.
        kind: the kind of the files (:func:`showerforge.kinds.kind_of_file`): its ``evaluate``,
            headline metrics and overlay plots.
        published: put :data:`PUBLISHED_DS2` beside the table (showers on a ds2 readout).
        options: passed to ``kind.evaluate`` (``seed``, ``quick``, ...).

    Returns:
        the content of ``leaderboard.json``.
    """
    if len(candidates) < 2:
        raise UserError("a leaderboard needs at least two --candidate files")
    out = check_output_dir(out_dir)
    names = candidate_names(candidates)
    with report_folder(out) as stage:
        results = [
            _evaluate_one(reference, cand, stage / name, name, kind, options)
            for name, cand in zip(names, candidates, strict=True)
        ]
        present, key = _rank(results, kind)
        board = {
            "reference": str(reference),
            "kind": kind.name,
            "sorted_by": key,
            "metrics": present,
            "floor": results[0][1],
            "candidates": [r[0] for r in results],
            "published_ds2": PUBLISHED_DS2 if published else None,
        }
        plots: list[dict[str, str]] = []
        if options.get("plots", True):
            plots = kind.overlay_plots(
                reference, [r[0]["candidate"] for r in results], [r[0]["name"] for r in results], stage, **options
            )
        board["plots"] = plots
        write_json(stage / "leaderboard.json", board)
        write_page(stage / "index.html", _render(board))
    return board


_Result = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]
"""(leaderboard row, floor row, metrics) of one candidate."""


def _evaluate_one(
    reference: str | Path, cand: str | Path, folder: Path, name: str, kind: Kind, options: dict[str, Any]
) -> _Result:
    """One candidate's report in ``folder`` and its rows of headline metrics."""
    m = kind.evaluate(reference, cand, folder, **options)
    comp, floor = m["candidate_vs_reference"], m[kind.floor_section]
    row: dict[str, Any] = {"name": name, "candidate": str(cand), "report": f"{name}/index.html"}
    floor_row: dict[str, Any] = {}
    for label, path, scale in kind.headline_metrics():
        keys = tuple(path.split("."))
        row[label] = _scale(_get(comp, keys), scale)
        floor_row[label] = _scale(_get(floor, keys), scale)
    return row, floor_row, m


def _rank(results: list[_Result], kind: Kind) -> tuple[list[str], str | None]:
    """Sort ``results`` (in place) by the first headline metric present (an AUC by its distance
    from 0.5); returns the metrics present and that key."""
    labels = [label for label, _, _ in kind.headline_metrics()]
    present = [lab for lab in labels if any(r[0].get(lab) for r in results)]
    key = present[0] if present else None

    def sort_key(item: _Result) -> float:
        v = item[0].get(key) if key else None
        if not v or v.get("value") is None:
            return float("inf")
        return abs(float(v["value"]) - 0.5) if key and "AUC" in key else float(v["value"])

    results.sort(key=sort_key)
    return present, key


def shower_overlays(
    reference: str | Path, candidates: list[str], names: list[str], out: Path, options: dict[str, Any]
) -> list[dict[str, str]]:
    """E_tot/E_inc, layer profile and radial profile of the reference and every candidate."""
    from showerforge.data.calo import CaloFile
    from showerforge.evaluation.plots import plot_overlay
    from showerforge.evaluation.showers.features import default_threshold_mev, stream_features

    samples = []
    for path in [str(reference), *candidates]:
        with CaloFile.open(path, options.get("geometry")) as f:
            geo = f.geometry
            thr = default_threshold_mev(geo) if options.get("threshold_mev") is None else options["threshold_mev"]
            feats = stream_features(f, threshold_mev=thr, max_showers=options.get("max_showers"))
        samples.append(feats)
    labels = ["reference", *names]
    edges = np.linspace(0.5, 1.5, 101)
    ratio = [s["etot_over_einc"] for s in samples]
    layer = [s["layer_energy"].mean(axis=0) for s in samples]
    files = [
        (
            plot_overlay(
                out / "plots" / "etot_over_einc.png",
                edges,
                [np.histogram(r, edges)[0] for r in ratio],
                labels,
                "E_tot / E_inc",
                density=True,
            ),
            "E_tot / E_inc of the reference and every candidate",
        ),
        (
            plot_overlay(
                out / "plots" / "layer_profile.png",
                np.arange(len(layer[0]) + 1.0),
                layer,
                labels,
                "layer",
                ylabel="mean energy [MeV]",
            ),
            "Mean energy per layer (longitudinal profile)",
        ),
    ]
    return [{"file": p.relative_to(out).as_posix(), "caption": c} for p, c in files]


def _render(board: dict[str, Any]) -> str:
    from showerforge.evaluation.html import PAGE_LOAD_CHECK, PAGE_STYLE, render_template

    template = (
        """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>showerforge leaderboard: {{ b.reference }}</title>
"""
        + PAGE_STYLE
        + """</head><body>
<h1>Leaderboard</h1>
<p>reference: <code>{{ b.reference }}</code>; every candidate meets the same reference sample and the same
floor (same seed); sorted by {{ b.sorted_by }}. Each name links to its full report.</p>
<table>
<tr><th>candidate</th>{% for k in b.metrics %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in b.candidates %}<tr><td><a href="{{ r.report }}">{{ r.name }}</a></td>{% for k in b.metrics %}<td>{{ fmt(r[k]) }}</td>{% endfor %}</tr>
{% endfor %}<tr><td><i>floor</i></td>{% for k in b.metrics %}<td><i>{{ fmt(b.floor[k]) }}</i></td>{% endfor %}</tr>
</table>
{% if b.published_ds2 %}<h2>Published CaloChallenge dataset-2 numbers</h2>
<p class="small">CaloChallenge 2022 dataset 2 (1 GeV-1 TeV, 100k test showers, GPU-trained). Our
sample is DS2-like (same calorimeter and readout, showerforge's Geant4, 1-100 GeV), not DS2: read
these as the league, not as the same test.</p>
<table><tr><th>model</th><th>low-level AUC</th><th>high-level AUC</th><th>FPD x 1e3</th><th>KPD x 1e3</th></tr>
{% for p in b.published_ds2 %}<tr><td>{{ p.model }}</td><td>{{ p.auc_low or "" }}</td><td>{{ p.auc_high or "" }}</td><td>{{ p.fpd_x1e3 or "" }}</td><td>{{ p.kpd_x1e3 or "" }}</td></tr>
{% endfor %}</table>{% endif %}
<h2>Overlaid histograms</h2>
{% for p in b.plots %}<figure><figcaption>{{ p.caption }}</figcaption><img src="{{ p.file }}" alt="{{ p.caption }}"></figure>
{% endfor %}
"""
        + PAGE_LOAD_CHECK
        + """</body></html>
"""
    )
    return render_template(template, b=board, fmt=format_measurement)
