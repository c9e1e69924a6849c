"""The shower report in words: the summary table (CLI and page) and the headline verdict (page).

Everything here reads a ``metrics.json`` dict (as returned by
:func:`~showerforge.evaluation.showers.report.evaluate_files` or read from disk) and returns text.
"""

from __future__ import annotations

from typing import Any

from showerforge.evaluation.metrics import format_measurement
from showerforge.evaluation.metrics import judge_against_floor as _judge
from showerforge.evaluation.showers.comparisons import PRDC_K
from showerforge.evaluation.showers.features import FEATURE_LABELS, PER_LAYER_FEATURES
from showerforge.evaluation.showers.settings import CLASSIFIERS

__all__ = ["format_rows", "verdict_rows", "format_summary"]

Row = tuple[str, str, str]
"""(metric, candidate vs reference, reference vs reference)."""


def _num(v: float | None, spec: str) -> str:
    """A number formatted, ``n/a`` for None (e.g. Z of a p-value of 1)."""
    return "n/a" if v is None else format(v, spec)


def _scaled(m: dict[str, Any] | None, factor: float) -> dict[str, Any] | None:
    """A stored measurement times ``factor`` (None stays None)."""
    if not m:
        return m
    return {k: (None if v is None else v * factor) for k, v in m.items()}


# ----------------------------------------------------------------------------- summary table
def _classifier_rows(comp: dict[str, Any], floor: dict[str, Any]) -> list[Row]:
    """AUC and JSD of every classifier that ran."""
    rows = []
    for kind in CLASSIFIERS:
        if kind in comp.get("classifier", {}):
            for key in ("auc", "jsd"):
                rows.append(
                    (
                        f"classifier {kind.replace('_', '-')} {key.upper()}",
                        format_measurement(comp["classifier"][kind][key]),
                        format_measurement(floor["classifier"][kind][key]),
                    )
                )
    return rows


def _distance_rows(comp: dict[str, Any], floor: dict[str, Any]) -> list[Row]:
    """FPD and KPD (x 1e3) and PRDC, when distances were computed."""
    dist: Any = comp.get("distances")
    floor_dist: Any = floor.get("distances")
    if not dist:
        return []
    rows = [
        (label, format_measurement(_scaled(dist[key], 1e3)), format_measurement(_scaled(floor_dist[key], 1e3)))
        for key, label in (("fpd", "FPD x 1e3 (high-level features)"), ("kpd", "KPD x 1e3 (high-level features)"))
    ]
    if dist.get("prdc"):
        for key in ("precision", "recall", "density", "coverage"):
            rows.append(
                (
                    f"PRDC {key} (k = {PRDC_K})",
                    format_measurement(dist["prdc"][key]),
                    format_measurement(floor_dist["prdc"][key]),
                )
            )
    return rows


def _weight_rows(comp: dict[str, Any], floor: dict[str, Any]) -> list[Row]:
    """The tails of the verdict classifier's weights."""
    cw, fw = comp.get("classifier_weights"), floor.get("classifier_weights")
    if not cw:
        return []
    return [
        (
            "verdict weights: candidate showers with w < 0.1",
            format_measurement(cw["candidate_tail"]),
            format_measurement((fw or {}).get("candidate_tail")),
        ),
        (
            "verdict weights: reference showers with w > 10",
            format_measurement(cw["reference_tail"]),
            format_measurement((fw or {}).get("reference_tail")),
        ),
    ]


def _nplm_rows(comp: dict[str, Any]) -> list[Row]:
    """NPLM t with its p-value and Z, beside the median and 16-84 % band of the null toys."""
    nplm = comp.get("nplm")
    if not nplm:
        return []
    q = nplm.get("null_quantiles_16_84") or [None, None]
    return [
        (
            f"NPLM t ({nplm['n_toys']} toys)",
            f"{_num(nplm['t'], '.4g')} (p = {_num(nplm['p_value'], '.3g')}, Z = {_num(nplm['z'], '.2f')})",
            f"{_num(nplm['null_median'], '.4g')} [{_num(q[0], '.4g')}, {_num(q[1], '.4g')}]",
        )
    ]


def _histogram_rows(comp: dict[str, Any], floor: dict[str, Any]) -> list[Row]:
    """chi2/ndf, separation power and W1 means of the feature histograms."""
    rows = []
    if "chi2_ndf_mean" in comp:
        rows.append(
            (
                "chi2/ndf, mean of all histograms",
                format_measurement(comp["chi2_ndf_mean"]["all"]),
                format_measurement(floor["chi2_ndf_mean"]["all"]),
            )
        )
    for key, m in comp["separation_power_mean"].items():
        label = "S, mean of all histograms" if key == "all" else f"S {key}"
        if key in PER_LAYER_FEATURES:
            label += " (layer mean)"
        rows.append((label, format_measurement(m), format_measurement(floor["separation_power_mean"].get(key))))
    for key, m in comp["wasserstein_mean"].items():
        unit = FEATURE_LABELS[key].split("[")[-1].rstrip("]") if "[" in FEATURE_LABELS[key] else ""
        label = f"W1 {key}" + (f" [{unit}]" if unit else "") + (" (layer mean)" if key in PER_LAYER_FEATURES else "")
        rows.append((label, format_measurement(m), format_measurement(floor["wasserstein_mean"].get(key))))
    return rows


def format_rows(metrics: dict[str, Any]) -> list[Row]:
    """(metric, candidate vs reference, reference vs reference) rows of the summary table.

    Args:
        metrics: the ``metrics.json`` dict.
    """
    comp, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    return [
        *_classifier_rows(comp, floor),
        *_distance_rows(comp, floor),
        *_weight_rows(comp, floor),
        *_nplm_rows(comp),
        *_histogram_rows(comp, floor),
    ]


# ----------------------------------------------------------------------------- verdict
def _nplm_verdict(comp: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The NPLM p-value as a headline row: green p >= 0.05, amber down to 0.003, red below."""
    nplm = comp.get("nplm")
    if not nplm or nplm.get("p_value") is None:
        return []
    p = nplm["p_value"]
    word, cls = (
        ("as the reference", "ok")
        if p >= 0.05
        else (("distinguishable", "warn") if p >= 0.003 else ("clearly different", "bad"))
    )
    return [
        (
            f"NPLM p-value ({nplm['n_toys']} toys)",
            f"{p:.3g} (Z = {_num(nplm['z'], '.2f')})",
            f"t null median {_num(nplm['null_median'], '.4g')}",
            word,
            cls,
        )
    ]


_HEADLINE_CLASSIFIERS = {
    "verdict": "verdict classifier AUC",
    "high_level": "CaloChallenge high-level AUC",
    "low_level": "CaloChallenge low-level AUC",
}


def verdict_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Headline rows of the report: (metric, candidate, floor, verdict, css class).

    Args:
        metrics: the ``metrics.json`` dict.
    """
    comp, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    rows: list[tuple[str, str, str, str, str]] = []

    def add(label: str, c: dict[str, Any] | None, f: dict[str, Any] | None, scale: float = 1.0) -> None:
        c, f = _scaled(c, scale), _scaled(f, scale)
        rows.append((label, format_measurement(c), format_measurement(f), *_judge(c, f)))

    for kind, label in _HEADLINE_CLASSIFIERS.items():
        if kind in comp.get("classifier", {}):
            add(label, comp["classifier"][kind]["auc"], floor["classifier"][kind]["auc"])
    if comp.get("distances"):
        add("FPD x 1e3", comp["distances"]["fpd"], floor["distances"]["fpd"], 1e3)
        add("KPD x 1e3", comp["distances"]["kpd"], floor["distances"]["kpd"], 1e3)
    add(
        "separation power, mean of all histograms",
        comp["separation_power_mean"]["all"],
        floor["separation_power_mean"]["all"],
    )
    if "chi2_ndf_mean" in comp:
        add("chi2/ndf, mean of all histograms", comp["chi2_ndf_mean"]["all"], floor["chi2_ndf_mean"]["all"])
    sep, floor_sep = comp["separation_power"], floor["separation_power"]
    add("E_tot / E_inc separation power", sep["etot_over_einc"], floor_sep["etot_over_einc"])
    return rows + _nplm_verdict(comp)


def format_summary(metrics: dict[str, Any]) -> str:
    """A plain-text table (rendered with rich, no colour codes): candidate beside the floor.

    Args:
        metrics: the dict returned by :func:`~showerforge.evaluation.showers.report.evaluate_files`
            (or read from ``metrics.json``).
    """
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    comp = metrics["candidate_vs_reference"]
    table = Table(
        title=Text(f"{metrics['candidate']['path']} vs {metrics['reference']['path']} ({metrics['geometry']['name']})"),
        caption=f"S: separation power; W1: Wasserstein-1; floor: {metrics['settings'].get('floor', 'two halves of the reference')}",
    )
    table.add_column("metric")
    table.add_column(f"candidate vs reference ({comp['n_showers'][1]} vs {comp['n_showers'][0]})", justify="right")
    fl = metrics["reference_vs_reference"]["n_showers"]
    table.add_column(f"reference floor ({fl[0]} vs {fl[1]})", justify="right")
    for row in format_rows(metrics):
        table.add_row(*(Text(cell) for cell in row))
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None, force_terminal=False, record=False).print(table)
    return buf.getvalue()
