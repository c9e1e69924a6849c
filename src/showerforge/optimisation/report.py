"""Plots of the path through design space and of the loss, and the run's HTML page.

``OUT/path.png``: every optimised thickness (mm) and material probability against the iteration;
``OUT/loss.png``: the Geant4 loss of the current design (with its error), the surrogate's before
and after the step, the cost and length; ``OUT/index.html``: the table of iterations, the start
and the current design, the verification table when ``OUT/comparison.md`` exists.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.io import atomic_output
from showerforge.optimisation.config import OptConfig
from showerforge.optimisation.design import DesignSpace

__all__ = ["write_report", "plot_path", "plot_loss"]


def write_report(out: Path, cfg: OptConfig, space: DesignSpace, state: dict[str, Any]) -> Path:
    """Write the plots and ``index.html``; returns the page's path."""
    records = state["records"]
    if records:
        plot_path(out / "path.png", space, state)
        plot_loss(out / "loss.png", records)
    page = _page(out, cfg, space, state)
    with atomic_output(out / "index.html") as tmp:
        tmp.write_text(page)
    return out / "index.html"


def _figure(n: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n, 1, figsize=(7, 2.4 * n), sharex=True, squeeze=False)
    return fig, axes[:, 0]


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def plot_path(path: Path, space: DesignSpace, state: dict[str, Any]) -> None:
    """Thicknesses (mm) and material probabilities along the iterations (0 = start)."""
    records = state["records"]
    us = np.asarray([state["start_u"]] + [r["u_after"] for r in records])
    probs = [[_softmax(np.asarray(lg)) for lg in state["start_logits"]]]
    probs += [[_softmax(np.asarray(lg)) for lg in r["logits_after"]] for r in records]
    fig, (ax_t, ax_p) = _figure(2)
    it = np.arange(len(us))
    for j, p in enumerate(space.cont):
        ax_t.plot(it, p.low + us[:, j] * (p.high - p.low), marker=".", label=p.name)
    ax_t.set_ylabel("thickness [mm]")
    ax_t.legend(fontsize=7, ncol=2)
    colours = iter(matplotlib_colours(sum(space.sizes)))
    for j, q in enumerate(space.disc):
        for c, name in enumerate(q.choices):
            ax_p.plot(it, [pr[j][c] for pr in probs], marker=".", color=next(colours), label=f"{q.name}={name}")
    ax_p.set_ylabel("probability")
    ax_p.set_xlabel("iteration (design after the step)")
    if space.disc:
        ax_p.legend(fontsize=6, ncol=2)
    _save(fig, path)


def matplotlib_colours(n: int) -> list[Any]:
    """``n`` distinct colours (tab20)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


def plot_loss(path: Path, records: list[dict[str, Any]]) -> None:
    """Geant4 and surrogate loss, cost and length of the current design per iteration."""
    it = np.asarray([r["iteration"] for r in records])
    fig, (ax_l, ax_c) = _figure(2)
    ax_l.errorbar(it, [r["geant4_loss"] for r in records], [r["geant4_loss_error"] for r in records],
                  fmt="o", label="Geant4, current design")  # fmt: skip
    ax_l.plot(it, [r["surrogate_loss_before"] for r in records], "s--", label="surrogate, before step")
    ax_l.plot(it, [r["surrogate_loss_after"] for r in records], "^:", label="surrogate, after step")
    ax_l.set_ylabel("loss (y_pred - y)^2 / (|y| + 1)")
    ax_l.set_yscale("log")
    ax_l.legend(fontsize=7)
    ax_c.plot(it, [r["cost"] for r in records], "o-", label="cost [CU]")
    ax_c.set_ylabel("cost [CU]")
    ax_len = ax_c.twinx()
    ax_len.plot(it, [r["length_mm"] for r in records], "s--", color="tab:red", label="length [mm]")
    ax_len.set_ylabel("length [mm]")
    ax_c.set_xlabel("iteration")
    _save(fig, path)


def _page(out: Path, cfg: OptConfig, space: DesignSpace, state: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{r['iteration']}</td><td>{r['geant4_loss']:.5f} ± {r['geant4_loss_error']:.5f}</td>"
        f"<td>{r['surrogate_loss_before']:.5f}</td><td>{r['surrogate_loss_after']:.5f}</td>"
        f"<td>{r['length_mm']:.1f}</td><td>{r['cost']:.1f}</td><td>{r['geant4_showers_total']}</td>"
        f"<td>{html.escape(_describe(r['design']))}</td></tr>"
        for r in state["records"]
    )
    start = space.best(np.asarray(state["start_u"]), [np.asarray(x) for x in state["start_logits"]])
    final = space.best(np.asarray(state["u"]), [np.asarray(x) for x in state["logits"]])
    verification = ""
    cpath = out / "comparison.md"
    if cpath.is_file():  # written by the verification (runner)
        verification = "<h2>Verification (fresh Geant4 seeds)</h2><pre>" + html.escape(cpath.read_text()) + "</pre>"
    imgs = "".join(f'<img src="{n}" alt="{n}">' for n in ("path.png", "loss.png") if (out / n).is_file())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>optimise {html.escape(cfg.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd;font-size:13px}}</style>
</head><body><h1>Detector optimisation: {html.escape(cfg.name)}</h1>
<p>{html.escape(cfg.particle)}, {html.escape(cfg.energy.describe())}; engine {cfg.engine}{_physics(cfg, state)};
{len(state["records"])} of {cfg.n_iterations} iterations; {cfg.designs_per_iteration} designs x
{cfg.showers_per_design} showers per iteration.</p>
<p><b>start</b>: {html.escape(start.describe())}<br><b>current</b>: {html.escape(final.describe())}</p>
{imgs}
<table><tr><th>iteration</th><th>Geant4 loss</th><th>surrogate before</th><th>after</th><th>length mm</th>
<th>cost CU</th><th>showers</th><th>design</th></tr>{rows}</table>{verification}</body></html>
"""


def _physics(cfg: OptConfig, state: dict[str, Any]) -> str:
    """`` (Geant4 11.4.1, FTFP_BERT, approximate hadronic data)`` from the last record's provenance."""
    if cfg.engine != "geant4":
        return ""
    prov = state["records"][-1].get("provenance", {}) if state["records"] else {}
    parts = [
        f"Geant4 {prov['geant4_version']}" if "geant4_version" in prov else "",
        prov.get("physics_list", cfg.physics),
    ]
    parts += [
        f"{prov[k]} {what} data" for k, what in (("physics_data", "EM"), ("hadronic_data", "hadronic")) if k in prov
    ]
    return " (" + html.escape(", ".join(p for p in parts if p)) + ")"


def _describe(d: dict[str, list[Any]]) -> str:
    return " | ".join(
        f"{a:.1f} mm {am} + {s:.1f} mm {sm}"
        for a, s, am, sm in zip(d["absorber_mm"], d["sensor_mm"], d["absorber"], d["sensor"])
    )


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return np.asarray(e / e.sum())
