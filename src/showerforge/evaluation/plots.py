"""PNG plots of the evaluation reports (matplotlib, imported only when a plot is drawn).

Shared by showers and jets: histograms with ratio panels (:class:`HistPanel`,
:func:`plot_histograms`, :func:`plot_ratio`); for showers also the mean images and the response
versus incident energy (:func:`plot_mean_images`, :func:`plot_response_vs_energy`).

Figures are built with the object-oriented API (``Figure`` + Agg canvas), so no global pyplot
state or backend is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.geometry import Geometry

__all__ = ["HistPanel", "plot_histograms", "plot_ratio", "plot_mean_images", "plot_response_vs_energy"]

_REF_COLOR, _CAND_COLOR = "#7f7f7f", "#d62728"


@dataclass
class HistPanel:
    """One reference-vs-candidate histogram.

    Attributes:
        title: panel title (e.g. ``layer 3``).
        edges: (B + 1,) bin edges.
        reference, candidate: (B,) unit-normalised histograms.
        note: text added to the title (e.g. the separation power).
    """

    title: str
    edges: np.ndarray
    reference: np.ndarray
    candidate: np.ndarray
    note: str = ""


def _figure(width: float, height: float) -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("plots need matplotlib: pip install 'showerforge[report]'") from err
    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig, fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, facecolor="white")
    return path


def plot_histograms(
    path: str | Path,
    panels: list[HistPanel],
    *,
    xlabel: str,
    suptitle: str = "",
    logx: bool = False,
    logy: bool = False,
    max_cols: int = 6,
    ylabel: str = "fraction",
    labels: tuple[str, str] = ("reference", "candidate"),
) -> Path:
    """Reference (filled) vs candidate (line) histograms, each over a candidate/reference ratio panel.

    Args:
        path: output PNG.
        panels: one histogram per panel.
        xlabel: x-axis label with its unit.
        suptitle: figure title.
        logx, logy: logarithmic axes.
        max_cols: panels per row.
        ylabel: y-axis label of the upper panels.
        labels: legend names of the reference and the candidate.

    Returns:
        the PNG path.
    """
    path = Path(path)
    n = max(1, len(panels))
    cols = min(max_cols, n)
    rows = math.ceil(n / cols)
    fig, _ = _figure(3.2 * cols, 3.0 * rows + 0.4)
    outer = fig.add_gridspec(rows, cols, hspace=0.45, wspace=0.3)
    for k, p in enumerate(panels):
        r, c = divmod(k, cols)
        inner = outer[r, c].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
        ax = fig.add_subplot(inner[0])
        rax = fig.add_subplot(inner[1], sharex=ax)
        ax.stairs(p.reference, p.edges, fill=True, color=_REF_COLOR, alpha=0.35, label=labels[0])
        ax.stairs(p.candidate, p.edges, color=_CAND_COLOR, linewidth=1.5, label=labels[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(p.reference > 0, p.candidate / p.reference, np.nan)
        rax.stairs(ratio, p.edges, color=_CAND_COLOR, baseline=None)
        rax.axhline(1.0, color=_REF_COLOR, linewidth=0.8)
        rax.set_ylim(0.5, 1.5)
        rax.set_yticks([0.5, 1.0, 1.5])
        ax.set_title(f"{p.title} ({p.note})" if p.note else p.title, fontsize=8)
        if logx:
            ax.set_xscale("log")
        if logy and (np.any(p.reference > 0) or np.any(p.candidate > 0)):
            ax.set_yscale("log")
        ax.tick_params(labelbottom=False, labelsize=7)
        rax.tick_params(labelsize=7)
        ax.minorticks_off()
        rax.minorticks_off()
        rax.set_xlabel(xlabel, fontsize=8)
        if c == 0:
            ax.set_ylabel(ylabel, fontsize=8)
            rax.set_ylabel("cand/ref", fontsize=8)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
    if suptitle:
        fig.suptitle(suptitle)
    return _save(fig, path)


def plot_ratio(
    path: str | Path,
    reference: np.ndarray,
    candidate: np.ndarray,
    edges: np.ndarray,
    *,
    xlabel: str,
    title: str = "",
    labels: tuple[str, str] = ("reference", "candidate"),
) -> Path:
    """One :func:`plot_histograms` panel from two 1-D samples, each histogram normalised to unit sum.

    Args:
        path: output PNG.
        reference, candidate: (n,), (m,) values; non-finite ones are dropped.
        edges: (B + 1,) bin edges.
        xlabel: x-axis label with its unit.
        title: panel title.
        labels: legend names of the reference and the candidate.
    """

    def fractions(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        h, _ = np.histogram(x[np.isfinite(x)], bins=edges)
        return h / max(1, h.sum())

    panel = HistPanel(title, np.asarray(edges), fractions(reference), fractions(candidate))
    return plot_histograms(path, [panel], xlabel=xlabel, labels=labels)


def plot_mean_images(
    path: str | Path,
    geometry: Geometry,
    mean_reference: np.ndarray,
    mean_candidate: np.ndarray,
    *,
    max_layers: int = 12,
) -> Path:
    """Mean shower per layer in polar (alpha, r) coordinates: reference, candidate, ratio.

    Args:
        path: output PNG.
        geometry: a regular readout.
        mean_reference, mean_candidate: (n_voxels,) mean voxel energies, MeV.
        max_layers: at most this many layers, evenly spread, are drawn.
    """
    from matplotlib.colors import LogNorm

    n_layers, n_a, n_r = geometry.shape
    layers = np.unique(np.linspace(0, n_layers - 1, min(max_layers, n_layers)).round().astype(int))
    ref = np.asarray(mean_reference, dtype=np.float64).reshape(n_layers, n_a, n_r)
    cand = np.asarray(mean_candidate, dtype=np.float64).reshape(n_layers, n_a, n_r)
    r_edges = np.asarray(geometry.readout[0].r_edges_mm)
    a_edges = np.linspace(-np.pi, np.pi, n_a + 1)
    theta, rad = np.meshgrid(a_edges, r_edges)
    positive = np.concatenate([ref[ref > 0], cand[cand > 0]])
    vmax = float(positive.max()) if positive.size else 1.0
    vmin = max(vmax * 1e-5, float(positive.min()) if positive.size else vmax * 1e-5)
    fig, _ = _figure(1.9 * len(layers) + 0.8, 6.3)
    rows = (("reference", ref), ("candidate", cand))
    for j, layer in enumerate(layers):
        for i, (label, img) in enumerate(rows):
            ax = fig.add_subplot(3, len(layers), i * len(layers) + j + 1, projection="polar")
            mesh = ax.pcolormesh(
                theta, rad, np.clip(img[layer].T, vmin, None), norm=LogNorm(vmin=vmin, vmax=vmax), cmap="viridis"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{label}\nlayer {layer}" if j == 0 else f"layer {layer}", fontsize=7)
        ax = fig.add_subplot(3, len(layers), 2 * len(layers) + j + 1, projection="polar")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref[layer] > 0, cand[layer] / ref[layer], np.nan)
        rmesh = ax.pcolormesh(theta, rad, ratio.T, vmin=0.5, vmax=1.5, cmap="coolwarm")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("cand/ref" if j == 0 else "", fontsize=7)
    fig.subplots_adjust(left=0.02, right=0.9, top=0.9, bottom=0.03)
    fig.colorbar(mesh, cax=fig.add_axes((0.92, 0.4, 0.012, 0.5)), label="mean voxel energy [MeV]")
    fig.colorbar(rmesh, cax=fig.add_axes((0.92, 0.05, 0.012, 0.25)), label="cand / ref")
    return _save(fig, path)


def plot_response_vs_energy(
    path: str | Path,
    inc_reference: np.ndarray,
    resp_reference: np.ndarray,
    inc_candidate: np.ndarray,
    resp_candidate: np.ndarray,
    *,
    n_bins: int = 15,
) -> Path:
    """Mean and spread of E_tot/E_inc in bins of log10 E_inc, reference vs candidate.

    Args:
        path: output PNG.
        inc_reference, inc_candidate: (n,) incident energies, MeV.
        resp_reference, resp_candidate: (n,) E_tot / E_inc.
    """
    inc_all = np.concatenate([inc_reference, inc_candidate])
    inc_all = inc_all[np.isfinite(inc_all) & (inc_all > 0)]
    lo, hi = (float(inc_all.min()), float(inc_all.max())) if inc_all.size else (1.0, 10.0)
    if hi <= lo:
        lo, hi = lo / 1.5, hi * 1.5
    edges = np.logspace(math.log10(lo), math.log10(hi), n_bins + 1)
    centres = np.sqrt(edges[1:] * edges[:-1])
    fig, _ = _figure(6.0, 5.5)
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
    ax = fig.add_subplot(grid[0])
    rax = fig.add_subplot(grid[1], sharex=ax)
    means = []
    for label, inc, resp, color in (
        ("reference", inc_reference, resp_reference, _REF_COLOR),
        ("candidate", inc_candidate, resp_candidate, _CAND_COLOR),
    ):
        idx = np.clip(np.searchsorted(edges, inc, side="right") - 1, 0, n_bins - 1)
        ok = np.isfinite(resp) & np.isfinite(inc)
        cnt = np.bincount(idx[ok], minlength=n_bins).astype(float)
        s1 = np.bincount(idx[ok], weights=resp[ok], minlength=n_bins)
        s2 = np.bincount(idx[ok], weights=resp[ok] ** 2, minlength=n_bins)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = s1 / cnt
            std = np.sqrt(np.clip(s2 / cnt - mean**2, 0, None))
        means.append(mean)
        ax.errorbar(
            centres,
            mean,
            yerr=std,
            fmt="o" if label == "reference" else "s",
            color=color,
            label=label,
            markersize=4,
            capsize=2,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        rax.plot(centres, means[1] / means[0], "s", color=_CAND_COLOR, markersize=4)
    rax.axhline(1.0, color=_REF_COLOR, linewidth=0.8)
    ax.set_xscale("log")
    ax.set_ylabel(r"$E_{tot}/E_{inc}$ (mean, std)")
    ax.tick_params(labelbottom=False)
    rax.set_xlabel(r"$E_{inc}$ [MeV]")
    rax.set_ylabel("cand/ref")
    ax.legend()
    return _save(fig, Path(path))


def plot_overlay(
    path: str | Path,
    edges: np.ndarray,
    values: list[np.ndarray],
    labels: list[str],
    xlabel: str,
    *,
    density: bool = False,
    ylabel: str = "fraction",
    logy: bool = True,
) -> Path:
    """Several histograms on the same bins (the first, the reference, filled) over their ratios to it.

    Args:
        path: PNG to write.
        edges: (B + 1,) bin edges.
        values: per sample (B,) bin contents (counts or means).
        labels: legend names, the reference first.
        xlabel, ylabel: axis labels.
        density: normalise each histogram to unit sum.
        logy: logarithmic y axis of the upper panel.
    """
    fig, _ = _figure(8.0, 5.5)
    top = fig.add_axes((0.1, 0.36, 0.86, 0.58))
    bottom = fig.add_axes((0.1, 0.1, 0.86, 0.22), sharex=top)
    rows = [np.asarray(v, dtype=np.float64) for v in values]
    if density:
        rows = [r / max(r.sum(), 1e-300) for r in rows]
    ref = rows[0]
    top.stairs(ref, edges, fill=True, color="0.8", label=labels[0])
    for r, lab in zip(rows[1:], labels[1:], strict=True):
        top.stairs(r, edges, label=lab)
        bottom.stairs(np.divide(r, ref, out=np.full_like(r, np.nan), where=ref > 0), edges)
    bottom.axhline(1.0, color="0.4", lw=0.8)
    bottom.set_ylim(0.5, 1.5)
    bottom.set_ylabel("cand/ref")
    bottom.set_xlabel(xlabel)
    top.set_ylabel(ylabel)
    if logy:
        top.set_yscale("log")
    top.legend(fontsize=8)
    return _save(fig, path)
