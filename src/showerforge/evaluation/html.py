"""``index.html`` of the evaluation reports (jinja2, imported only when rendering).

Shared by showers and jets: the common look (:data:`PAGE_STYLE`), the plots footer
(:data:`PAGE_PLOTS_FOOTER`) and :func:`render_template`; :func:`render_html` renders the shower
page (the jet page's template lives in :mod:`showerforge.evaluation.jets.report`).
"""

from __future__ import annotations

from typing import Any

from showerforge.evaluation.metrics import format_measurement

__all__ = ["PAGE_STYLE", "PAGE_LOAD_CHECK", "PAGE_PLOTS_FOOTER", "render_html", "render_template"]

#: The ``<style>`` block shared by every evaluation page (showers and jets).
PAGE_STYLE = """<style>
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-size: 0.9em; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0 2em 0; }
figure img { max-width: 100%; }
.small { color: #555; font-size: 0.85em; }
.ok { background: #d8f0d8; } .warn { background: #fbe8c0; } .bad { background: #f6c8c8; }
figcaption { font-weight: bold; margin-bottom: 0.3em; }
.keyplots figure { display: inline-block; width: 48%; vertical-align: top; margin: 0.5em 0.5%; }
</style>
"""

PAGE_LOAD_CHECK = """<script>
window.addEventListener("load", function () {
  var broken = 0;
  for (var i = 0; i < document.images.length; i++) {
    if (!document.images[i].complete || document.images[i].naturalWidth === 0) { broken++; }
  }
  document.body.setAttribute("data-images", document.images.length);
  document.body.setAttribute("data-broken-images", broken);
});
</script>
"""
"""Script that marks ``<body>`` with ``data-images`` and ``data-broken-images`` once the page has
loaded (read by the headless-browser test)."""

PAGE_PLOTS_FOOTER = (
    """<h2>Plots</h2>
{% for p in plots %}<figure>
<figcaption>{{ p.caption }}</figcaption>
<img src="{{ p.file }}" alt="{{ p.caption }}">
</figure>
{% endfor %}
<p class="small">showerforge {{ m.showerforge_version }}, schema {{ m.schema }}; all numbers also in
<a href="metrics.json">metrics.json</a>.</p>
"""
    + PAGE_LOAD_CHECK
    + """</body>
</html>
"""
)
"""End of every report page: the plots with captions and the pointer to metrics.json."""

_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>showerforge evaluation: {{ m.candidate.path }} vs {{ m.reference.path }}</title>
"""
    + PAGE_STYLE
    + """</head>
<body>
<h1>Shower evaluation</h1>
<p>
candidate: <code>{{ m.candidate.path }}</code> ({{ m.candidate.n_showers }} showers)<br>
reference: <code>{{ m.reference.path }}</code> ({{ m.reference.n_showers }} showers)<br>
readout: {{ m.geometry.name }} ({{ m.geometry.n_layers }} layers, {{ m.geometry.n_voxels }} voxels{% if m.geometry.challenge_dataset %}, CaloChallenge dataset {{ m.geometry.challenge_dataset }}{% endif %})<br>
voxel threshold: {{ "%.4g"|format(m.settings.threshold_mev) }} MeV; seed {{ m.settings.seed }};
{{ m.settings.n_bootstrap }} bootstrap replicas; {{ "quick" if m.settings.quick else "full" }} classifier
</p>
<h2>Verdict</h2>
<p class="small">Each headline number beside its floor ({{ m.settings.floor }}; the same sample sizes).
Green: within 2 standard deviations of the floor (the reference cannot tell them apart); amber:
2-5 sigma; red: more than 5 sigma. NPLM: green p &ge; 0.05, amber 0.05 &gt; p &ge; 0.003, red below.</p>
<table>
<tr><th>headline metric</th><th>candidate vs reference</th><th>floor</th><th>verdict</th></tr>
{% for name, cand, floor, word, cls in verdict %}<tr class="{{ cls }}"><td>{{ name }}</td><td>{{ cand }}</td><td>{{ floor }}</td><td>{{ word }}</td></tr>
{% endfor %}</table>
<h2>Key plots</h2>
<div class="keyplots">
{% for p in key_plots %}<figure>
<figcaption>{{ p.caption }}</figcaption>
<img src="{{ p.file }}" alt="{{ p.caption }}">
</figure>
{% endfor %}</div>
<h2>All metrics</h2>
<p class="small">JSD = (ln 2 - BCE) / ln 2 of the calibrated classifier: 0 means no separation, 1 perfect
separation; small negative values are fluctuations of "no separation". S: separation power (0 identical,
1 disjoint); chi2/ndf about 1 for one parent distribution; FPD, KPD x 1e3 as the CaloChallenge tables;
definitions in docs/evaluation.md.</p>
<table>
<tr><th>metric</th><th>candidate vs reference</th><th>reference vs reference (floor)</th></tr>
{% for name, cand, floor in rows %}<tr><td>{{ name }}</td><td>{{ cand }}</td><td>{{ floor }}</td></tr>
{% endfor %}</table>
<details><summary>Separation power and W1 per histogram ({{ per_layer|length }} rows)</summary>
<table>
<tr><th>feature</th><th>layer</th><th>candidate</th><th>floor</th><th>W1 candidate</th><th>W1 floor</th></tr>
{% for r in per_layer %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td><td>{{ r[2] }}</td><td>{{ r[3] }}</td><td>{{ r[4] }}</td><td>{{ r[5] }}</td></tr>
{% endfor %}</table>
</details>
"""
    + PAGE_PLOTS_FOOTER
)


def _per_layer_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    comp, floor = metrics["candidate_vs_reference"], metrics["reference_vs_reference"]
    rows = []
    for name, value in comp["separation_power"].items():
        entries = value.items() if "value" not in value else [("", value)]
        for layer, m in entries:

            def pick(block: dict[str, Any], key: str, name: str = name, layer: str = layer) -> Any:
                v = block[key].get(name)
                if v is None:
                    return None
                return v if layer == "" else v.get(layer)

            rows.append(
                (
                    name,
                    layer,
                    format_measurement(m),
                    format_measurement(pick(floor, "separation_power")),
                    format_measurement(pick(comp, "wasserstein")),
                    format_measurement(pick(floor, "wasserstein")),
                )
            )
    return rows


KEY_PLOTS = ("etot_over_einc", "layer_profile", "radial_profile", "response_vs_einc", "classifier_weights")
"""Plots shown first, under the verdict (file stems)."""


def render_html(
    metrics: dict[str, Any],
    plots: list[dict[str, str]],
    rows: list[tuple[str, str, str]],
    verdict: list[tuple[str, str, str, str, str]] | None = None,
) -> str:
    """The report page: verdict, key plots, all metrics, per-histogram table (folded), all plots.

    Args:
        metrics: the ``metrics.json`` dict.
        plots: ``{"file": relative path, "caption": text}`` per plot.
        rows: summary rows (metric, candidate, floor).
        verdict: headline rows (metric, candidate, floor, verdict word, css class ``ok``/``warn``/``bad``).

    Returns:
        HTML text.
    """
    stem = {p["file"].rsplit("/", 1)[-1].rsplit(".", 1)[0]: p for p in plots}
    key = [stem[k] for k in KEY_PLOTS if k in stem]
    return render_template(
        _TEMPLATE,
        m=metrics,
        plots=plots,
        rows=rows,
        verdict=verdict or [],
        key_plots=key,
        per_layer=_per_layer_rows(metrics),
    )


def render_template(template: str, **context: Any) -> str:
    """Render a page template with the report's jinja2 settings (autoescape, strict undefined).

    Args:
        template: jinja2 template text (pages include :data:`PAGE_STYLE` for the common look).
        **context: template variables.

    Returns:
        HTML text.

    Raises:
        ImportError: jinja2 is not installed (``pip install 'showerforge[report]'``).
    """
    try:
        import jinja2
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("the HTML report needs jinja2: pip install 'showerforge[report]'") from err
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(**context)
