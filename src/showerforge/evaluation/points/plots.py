"""PNG plots of the point-cloud report: one reference-vs-candidate histogram with a ratio panel per observable.

Every histogram is normalised to unit sum (profiles: the share of the energy, or of the hits, per
layer or per ring). The reference is the whole reference file; the candidate the showers compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from showerforge.evaluation.points.observables import LABELS, OBSERVABLES, SCALARS, PointObservables

__all__ = ["draw_plots", "point_overlays", "CAPTIONS"]

CAPTIONS = {
    "n_hits": "Number of hits per shower (cells above threshold)",
    "e_vis_over_e_inc": "Visible energy / incident energy",
    "cell_energy": "Cell-energy spectrum, pooled over the cells of all showers (log scales)",
    "cog_x": "Centre of gravity in x (mm)",
    "cog_y": "Centre of gravity in y (mm)",
    "cog_z": "Centre of gravity in z (mm from the front face, sensor depths)",
    "longitudinal_energy": "Longitudinal profile: share of the energy per layer (W1: mean over the layers)",
    "longitudinal_hits": "Longitudinal profile: share of the hits per layer (W1: mean over the layers)",
    "radial_energy": "Radial profile: share of the energy per ring around the beam axis (rings one cell wide)",
}
"""Caption of each plot on the page."""


def _fractions(values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    h, _ = np.histogram(v[ok], bins=edges, weights=None if weights is None else weights[ok])
    return h / max(float(h.sum()), 1e-300)


def _scalar_edges(ref: np.ndarray, cand: np.ndarray, integer: bool) -> np.ndarray:
    both = np.concatenate([ref, cand])
    both = both[np.isfinite(both)]
    lo, hi = np.percentile(both, [0.5, 99.5]) if both.size else (0.0, 1.0)
    if integer and hi - lo < 50:
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 1.0)
    return np.linspace(lo, hi if hi > lo else lo + 1.0, 41)


def _panel(name: str, ref: PointObservables, cand: PointObservables) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, reference fractions, candidate fractions) of one observable."""
    if name in SCALARS:
        r, c = ref.scalars[name], cand.scalars[name]
        edges = _scalar_edges(r, c, name == "n_hits")
        return edges, _fractions(r, edges), _fractions(c, edges)
    if name == "cell_energy":
        pos = np.concatenate([ref.cell_energy, cand.cell_energy])
        pos = pos[pos > 0]
        lo, hi = (float(pos.min()), float(pos.max())) if pos.size else (1e-3, 1.0)
        edges = np.logspace(np.log10(lo), np.log10(hi if hi > lo else 10 * lo), 51)
        return edges, _fractions(ref.cell_energy, edges), _fractions(cand.cell_energy, edges)
    if name == "radial_energy":
        width = float(ref.ring_mm[1]) if len(ref.ring_mm) > 1 else 1.0
        edges = np.concatenate([[0.0], ref.ring_mm + 0.5 * width])
        return (
            edges,
            _fractions(ref.ring_mm, edges, ref.ring_energy.sum(axis=0)),
            _fractions(cand.ring_mm, edges, cand.ring_energy.sum(axis=0)),
        )
    rows_r, rows_c = (
        (ref.layer_energy, cand.layer_energy) if name == "longitudinal_energy" else (ref.layer_hits, cand.layer_hits)
    )
    layers = np.arange(rows_r.shape[1], dtype=np.float64)
    edges = np.arange(-0.5, rows_r.shape[1], 1.0)
    return edges, _fractions(layers, edges, rows_r.sum(axis=0)), _fractions(layers, edges, rows_c.sum(axis=0))


def _note(metrics: dict[str, Any], name: str) -> str:
    from showerforge.evaluation.metrics import format_measurement

    comp = metrics["candidate_vs_reference"]["w1x100"][name]
    floor = metrics["reference_vs_reference"]["w1x100"][name]
    return f"W1x100 {format_measurement(comp)}, floor {format_measurement(floor)}"


def draw_plots(
    out: Path, reference: PointObservables, candidate: PointObservables, metrics: dict[str, Any]
) -> list[dict[str, str]]:
    """Every PNG of the report into ``out/plots``; returns ``{"file", "caption"}`` per plot."""
    from showerforge.evaluation.plots import HistPanel, plot_histograms

    files = []
    for name in OBSERVABLES:
        edges, h_ref, h_cand = _panel(name, reference, candidate)
        path = plot_histograms(
            out / "plots" / f"{name}.png",
            [HistPanel(name.replace("_", " "), edges, h_ref, h_cand, _note(metrics, name))],
            xlabel=LABELS[name],
            logx=name == "cell_energy",
            logy=name in ("cell_energy", "radial_energy"),
            ylabel="share of the energy" if name.endswith("_energy") and name != "cell_energy" else "fraction",
        )
        files.append({"file": path.relative_to(out).as_posix(), "caption": CAPTIONS[name]})
    return files


def point_overlays(
    reference: str | Path, candidates: list[str], names: list[str], out: Path, options: dict[str, Any]
) -> list[dict[str, str]]:
    """E_vis / E_inc and the longitudinal profile of the reference and every candidate (leaderboards)."""
    from showerforge.data.points import DEFAULT_THRESHOLD_MIP, read_points
    from showerforge.evaluation.plots import plot_overlay
    from showerforge.evaluation.points.observables import observe

    threshold = options.get("threshold_mip")
    samples = [
        observe(
            read_points(path, options.get("max_samples")),
            threshold_mip=DEFAULT_THRESHOLD_MIP if threshold is None else float(threshold),
        )
        for path in [str(reference), *candidates]
    ]
    labels = ["reference", *names]
    ratio = [s.scalars["e_vis_over_e_inc"] for s in samples]
    edges = _scalar_edges(ratio[0], ratio[0], False)
    layers = [s.layer_energy.mean(axis=0) for s in samples]
    files = [
        (
            plot_overlay(
                out / "plots" / "e_vis_over_e_inc.png",
                edges,
                [np.histogram(r[np.isfinite(r)], edges)[0] for r in ratio],
                labels,
                "E_vis / E_inc",
                density=True,
            ),
            "E_vis / E_inc of the reference and every candidate",
        ),
        (
            plot_overlay(
                out / "plots" / "longitudinal_energy.png",
                np.arange(-0.5, len(layers[0])),
                layers,
                labels,
                "layer",
                ylabel="mean energy [MeV]",
            ),
            "Mean energy per layer (longitudinal profile)",
        ),
    ]
    return [{"file": p.relative_to(out).as_posix(), "caption": c} for p, c in files]
