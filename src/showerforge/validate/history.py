"""Reading the history: the trend of a suite's versions and what changed between two versions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from showerforge.errors import UserError
from showerforge.validate.histograms import Hist1D, compare
from showerforge.validate.report import fmt_num, gate_keys, regressions, value_of
from showerforge.validate.store import HistoryStore, RunRecord

#: change of chi2/ndf against the reference that counts as worse / better
CHANGE = 1.0

__all__ = [
    "CHANGE",
    "HistogramChange",
    "check_metric_names",
    "compare_files",
    "compare_histograms",
    "compare_versions",
    "format_changes",
    "format_history",
]


def format_history(runs: list[RunRecord], suite: str, metrics: list[str] | None = None) -> str:
    """A plain-text table: one line per version, the gated values (or ``metrics``) as columns."""
    if not runs:
        return f"suite {suite!r}: no validation runs yet"
    keys = metrics or gate_keys(runs) or ["chi2_ndf_max"]
    head = ["label", "date", "verdict", *keys]
    rows = []
    for r in runs:
        cells = []
        for k in keys:
            v, e = value_of(r, k)
            cells.append(fmt_num(v) + (f" ± {fmt_num(e, '.2g')}" if e is not None and v is not None else ""))
        rows.append([r.label, r.created[:19].replace("T", " "), r.verdict.upper(), *cells])
    widths = [max(len(str(x[i])) for x in [head, *rows]) for i in range(len(head))]
    lines = [f"suite {suite}: {len(runs)} version(s)"]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)) for line in [head, *rows]]
    alarms = regressions(runs)
    lines += [f"REGRESSION: {a}" for a in alarms] or ["no regression from the previous version"]
    return "\n".join(lines)


def check_metric_names(runs: list[RunRecord], metrics: list[str], suite: str) -> None:
    """Refuse ``--metric`` names that no recorded version has (a column of "-" says nothing).

    Known names: the metrics recorded by any run, the values read by its gates, and
    ``func(histogram)`` of a recorded histogram (``chi2_ndf(e_layer_3)``). With no runs yet
    there is nothing to check.

    Raises:
        UserError: naming the unknown value and listing the known ones.
    """
    if not runs:
        return
    known = sorted({k for r in runs for k in r.metrics} | set(gate_keys(runs)))
    for key in metrics:
        if key in known:
            continue
        if "(" in key and key.endswith(")") and any(value_of(r, key)[0] is not None for r in runs):
            continue
        raise UserError(
            f"--metric {key!r}: no version of suite {suite!r} records this value; known: {', '.join(known)} "
            "(or FUNC(HISTOGRAM), e.g. chi2_ndf(NAME) of a histogram on the run's page)"
        )


@dataclass
class HistogramChange:
    """How one histogram changed between versions ``a`` and ``b``.

    Attributes:
        name: histogram name.
        chi2_ndf: chi2/ndf between the two versions' histograms (both statistical errors).
        ref_a, ref_b: chi2/ndf of each version against the reference (None when unknown).
        direction: ``worse`` when b's chi2/ndf against the reference exceeds a's by more than
            :data:`CHANGE` (one unit: beyond the spread of chi2/ndf for a few tens of bins),
            ``better`` when it fell by more, ``same`` in between, ``-`` when unknown.
    """

    name: str
    chi2_ndf: float | None
    ref_a: float | None
    ref_b: float | None

    @property
    def direction(self) -> str:
        if self.ref_a is None or self.ref_b is None:
            return "-"
        if self.ref_b > self.ref_a + CHANGE:
            return "worse"
        return "better" if self.ref_b < self.ref_a - CHANGE else "same"


def compare_histograms(
    a: dict[str, Hist1D], b: dict[str, Hist1D], ref: dict[str, Hist1D] | None = None
) -> list[HistogramChange]:
    """Histograms of both sets ranked by chi2/ndf between them, those that moved away from the
    reference (``worse``) first: what broke heads the list."""
    common = [n for n in a if n in b]
    if not common:
        raise UserError("the two versions have no histogram in common")
    out = []
    for n in common:
        c = compare(b[n], a[n]).chi2_ndf
        ra = rb = None
        if ref is not None and n in ref:
            ra, rb = compare(a[n], ref[n]).chi2_ndf, compare(b[n], ref[n]).chi2_ndf
        out.append(HistogramChange(n, c, ra, rb))
    return sorted(out, key=lambda h: (h.direction != "worse", -(h.chi2_ndf or 0.0)))


def _roles(hists: list[Hist1D]) -> tuple[dict[str, Hist1D], dict[str, Hist1D]]:
    """(candidate, reference) histograms of a file written by ``validate run`` (names
    ``candidate/X``, ``reference/X``); any other file: every histogram is a candidate."""
    cand = {h.name.split("/", 1)[1]: h for h in hists if h.name.startswith("candidate/")}
    ref = {h.name.split("/", 1)[1]: h for h in hists if h.name.startswith("reference/")}
    if not cand:
        return {h.name: h for h in hists}, {}
    return cand, ref


def compare_files(a: str, b: str, top: int = 15) -> str:
    """Plain text: the histograms of two files (.root / .yoda) ranked as :func:`compare_histograms`
    (against the reference histograms of ``b`` where it holds them), and those in one file only."""
    from showerforge.validate.histio import read_histograms

    ca, _ = _roles(read_histograms(a))
    cb, rb = _roles(read_histograms(b))
    changes = compare_histograms(ca, cb, rb or None)
    only = sorted(set(ca) ^ set(cb))
    names = ("A", "B")
    text = f"A = {a}\nB = {b}\n" + format_changes(changes, [], *names, top=top)
    if only:
        text += f"\nin one file only ({len(only)}): {', '.join(only[:10])}{' ...' if len(only) > 10 else ''}"
    return text


def compare_versions(
    store: HistoryStore, suite: str, a: str, b: str
) -> tuple[list[HistogramChange], list[tuple[str, Any, Any]]]:
    """(histogram changes ranked, metric rows (name, value in a, value in b)) between two labels."""
    ra, rb = store.get(suite, a), store.get(suite, b)
    ha = {n: h["candidate"] for n, h in ra.histograms.items()}
    hb = {n: h["candidate"] for n, h in rb.histograms.items()}
    ref = {n: h["reference"] for n, h in rb.histograms.items()}
    changes = compare_histograms(ha, hb, ref)
    names = [n for n in ra.metrics if n in rb.metrics and not n.endswith("_floor")]
    metrics = [(n, ra.metrics[n], rb.metrics[n]) for n in names]
    return changes, metrics


def format_changes(
    changes: list[HistogramChange], metrics: list[tuple[str, Any, Any]], a: str, b: str, top: int = 15
) -> str:
    """Plain text of :func:`compare_versions`."""
    lines = [f"histograms that changed most from {a} to {b} (chi2/ndf between the versions; vs reference):"]
    width = max([len(c.name) for c in changes[:top]] + [9])
    lines.append(f"  {'histogram'.ljust(width)}  {a}->{b} chi2/ndf  vs ref {a}  vs ref {b}  change")
    for c in changes[:top]:
        lines.append(
            f"  {c.name.ljust(width)}  {fmt_num(c.chi2_ndf, '.3g'):>15}  {fmt_num(c.ref_a, '.3g'):>9}  {fmt_num(c.ref_b, '.3g'):>9}  {c.direction}"
        )
    if len(changes) > top:
        lines.append(f"  ... {len(changes) - top} more")
    if metrics:
        lines.append("metrics:")
        for n, ma, mb in metrics:
            va, vb = ma.get("value"), mb.get("value")
            ea, eb = ma.get("error"), mb.get("error")
            shift = ""
            if None not in (va, vb, ea, eb) and math.hypot(ea, eb) > 0:
                shift = f"  ({(vb - va) / math.hypot(ea, eb):+.1f} sigma)"
            lines.append(f"  {n}: {fmt_num(va)} -> {fmt_num(vb)}{shift}")
    return "\n".join(lines)
