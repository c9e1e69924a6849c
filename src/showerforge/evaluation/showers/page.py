"""The files of the shower report: ``metrics.json`` and ``index.html``.

The page's template and look live in :mod:`showerforge.evaluation.html` (shared with the jet
report); the rows come from :mod:`.summary`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from showerforge.evaluation.output import write_json, write_page
from showerforge.evaluation.showers.summary import format_rows, verdict_rows

__all__ = ["write_report"]


def write_report(out: Path, metrics: dict[str, Any], plots: list[dict[str, str]]) -> None:
    """Write ``metrics.json`` and ``index.html`` into ``out`` (each atomically).

    Args:
        out: the report folder (usually the staging folder of
            :func:`~showerforge.evaluation.output.report_folder`).
        metrics: the ``metrics.json`` dict.
        plots: ``{"file", "caption"}`` per plot drawn (paths relative to ``out``).

    Raises:
        ImportError: jinja2 is not installed (``pip install 'showerforge[report]'``).
    """
    from showerforge.evaluation.html import render_html  # jinja2 only when a page is rendered

    write_json(out / "metrics.json", metrics)
    write_page(out / "index.html", render_html(metrics, plots, format_rows(metrics), verdict_rows(metrics)))
