"""The PNG plots of the shower report (matplotlib, imported only when drawing).

:func:`draw_plots` draws every figure of a :class:`~.compute.ShowerEvaluation` into ``out/plots/``
and returns ``{"file", "caption"}`` per figure, in the order of the page:

* ``etot_over_einc.png`` and one grid per per-layer feature (``layer_energy.png``, ...), reference
  against candidate with ratio panels, separation power in each panel;
* ``voxel_energy.png`` (all voxels above threshold), ``classifier_weights.png`` (verdict
  classifier), ``response_vs_einc.png``;
* for regular readouts ``mean_images.png``, ``layer_profile.png`` and ``radial_profile.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.evaluation.metrics import unit_histogram
from showerforge.evaluation.showers.compute import ShowerEvaluation
from showerforge.evaluation.showers.features import FEATURE_LABELS, PER_LAYER_FEATURES, defined_layers
from showerforge.geometry import Geometry

__all__ = ["draw_plots", "profile_panels"]

_Add = Callable[[Path, str], None]


def _note(m: dict[str, Any] | None) -> str:
    """``S = value`` for a panel, or nothing where the separation power is undefined."""
    return "" if not m or m["value"] is None else f"S = {m['value']:.3g}"


def _normalised(counts: Any) -> np.ndarray:
    """Counts as fractions of their sum (zeros stay zeros)."""
    c = np.asarray(counts, dtype=np.float64)
    return c / max(c.sum(), 1.0)


def draw_plots(out: Path, result: ShowerEvaluation) -> list[dict[str, str]]:
    """Draw every plot of the report into ``out/plots/``.

    Args:
        out: the report folder.
        result: the computed evaluation.

    Returns:
        ``{"file": path relative to out, "caption": text}`` per plot.
    """
    files: list[dict[str, str]] = []

    def add(path: Path, caption: str) -> None:
        files.append({"file": path.relative_to(out).as_posix(), "caption": caption})

    _feature_plots(out / "plots", result, add)
    _voxel_plot(out / "plots", result, add)
    _weights_plot(out / "plots", result.metrics["candidate_vs_reference"].get("classifier_weights"), add)
    _response_plot(out / "plots", result, add)
    if result.geometry.is_regular:
        _readout_plots(out / "plots", result, add)
    return files


def _feature_plots(pdir: Path, result: ShowerEvaluation, add: _Add) -> None:
    """E_tot/E_inc and one grid of layer panels per per-layer feature."""
    from showerforge.evaluation.plots import HistPanel, plot_histograms

    ref, cand, edges = result.reference, result.candidate, result.edges
    sep = result.metrics["candidate_vs_reference"]["separation_power"]
    e = edges["etot_over_einc"]
    h_ref, h_cand = unit_histogram(ref["etot_over_einc"], e), unit_histogram(cand["etot_over_einc"], e)
    panel = HistPanel("E_tot / E_inc", e, h_ref, h_cand, _note(sep["etot_over_einc"]))
    path = plot_histograms(pdir / "etot_over_einc.png", [panel], xlabel=FEATURE_LABELS["etot_over_einc"], logy=True)
    add(path, "Total deposited over incident energy")
    for name in PER_LAYER_FEATURES:
        panels = []
        for layer in defined_layers(result.geometry, name):
            eg = edges[name].get(int(layer))
            if eg is None:
                continue
            h_ref, h_cand = unit_histogram(ref[name][:, layer], eg), unit_histogram(cand[name][:, layer], eg)
            panels.append(HistPanel(f"layer {layer}", eg, h_ref, h_cand, _note(sep[name].get(str(layer)))))
        if panels:
            path = plot_histograms(
                pdir / f"{name}.png",
                panels,
                xlabel=FEATURE_LABELS[name],
                logx=name == "layer_energy",
                logy=name != "sparsity",
            )
            add(path, f"{FEATURE_LABELS[name]} per layer")


def _voxel_plot(pdir: Path, result: ShowerEvaluation, add: _Add) -> None:
    """Voxel energies of all showers (when the voxel-energy histograms were binned)."""
    from showerforge.evaluation.plots import HistPanel, plot_histograms

    ve = result.edges.get("voxel_energy")
    if ve is None or result.voxel_totals is None:
        return
    vr, vc = (_normalised(t) for t in result.voxel_totals)
    sep = result.metrics["candidate_vs_reference"]["separation_power"]["voxel_energy"]
    path = plot_histograms(
        pdir / "voxel_energy.png",
        [HistPanel("voxel energy", ve, vr, vc, _note(sep))],
        xlabel=FEATURE_LABELS["voxel_energy"],
        logx=True,
        logy=True,
    )
    add(path, "Voxel energies (all voxels above threshold)")


def _weights_plot(pdir: Path, weights: dict[str, Any] | None, add: _Add) -> None:
    """log10 w of the verdict classifier on held-out reference and candidate showers."""
    from showerforge.evaluation.plots import HistPanel, plot_histograms

    if not weights:
        return
    we = np.asarray(weights["log10_w_edges"])
    wr, wc = (_normalised(weights[k]) for k in ("log10_w_reference", "log10_w_candidate"))
    path = plot_histograms(
        pdir / "classifier_weights.png",
        [HistPanel("verdict classifier weights", we, wr, wc, "")],
        xlabel="log10 w,  w = p / (1 - p) = reference / candidate density ratio",
        logy=True,
    )
    add(
        path,
        "Classifier weights on held-out showers: candidate showers at log10 w < -1 are ones the "
        "reference hardly makes; reference showers at log10 w > 1 are ones the candidate misses",
    )


def _response_plot(pdir: Path, result: ShowerEvaluation, add: _Add) -> None:
    """E_tot/E_inc against E_inc."""
    from showerforge.evaluation.plots import plot_response_vs_energy

    ref, cand = result.reference, result.candidate
    path = plot_response_vs_energy(
        pdir / "response_vs_einc.png",
        ref["incident_energy"],
        ref["etot_over_einc"],
        cand["incident_energy"],
        cand["etot_over_einc"],
    )
    add(path, "E_tot / E_inc against E_inc (mean and standard deviation per bin)")


def _readout_plots(pdir: Path, result: ShowerEvaluation, add: _Add) -> None:
    """Mean shower images per layer, longitudinal and radial profiles (regular readouts)."""
    from showerforge.evaluation.plots import plot_histograms, plot_mean_images

    geo, mean_ref, mean_cand = result.geometry, result.mean_reference, result.mean_candidate
    add(
        plot_mean_images(pdir / "mean_images.png", geo, mean_ref, mean_cand),
        "Mean shower per layer (reference, candidate, ratio)",
    )
    for name, panel, label, title in profile_panels(geo, mean_ref, mean_cand):
        path = plot_histograms(pdir / f"{name}.png", [panel], xlabel=label, logy=True, ylabel="mean energy [MeV]")
        add(path, title)


def profile_panels(geo: Geometry, mean_ref: np.ndarray, mean_cand: np.ndarray) -> list[tuple[str, Any, str, str]]:
    """Longitudinal (per layer) and radial (per ring, summed over layers and angles) mean energy.

    Args:
        geo: a regular readout.
        mean_ref, mean_cand: (voxels,) mean reference and candidate showers in MeV.

    Returns:
        ``(file stem, HistPanel, x label, caption)`` of the layer and the radial profile.
    """
    from showerforge.evaluation.plots import HistPanel

    n_l, n_a, n_r = geo.shape
    ref, cand = (np.asarray(m, dtype=np.float64).reshape(n_l, n_a, n_r) for m in (mean_ref, mean_cand))
    r_edges = np.asarray(geo.readout[0].r_edges_mm, dtype=np.float64)
    return [
        (
            "layer_profile",
            HistPanel("longitudinal profile", np.arange(n_l + 1.0), ref.sum(axis=(1, 2)), cand.sum(axis=(1, 2)), ""),
            "layer",
            "Mean energy per layer (longitudinal profile)",
        ),
        (
            "radial_profile",
            HistPanel("radial profile", r_edges, ref.sum(axis=(0, 1)), cand.sum(axis=(0, 1)), ""),
            "r [mm]",
            "Mean energy per radial ring, all layers (radial profile)",
        ),
    ]
