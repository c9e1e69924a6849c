"""High-level shower features of the CaloChallenge 2022 evaluation, computed in streaming chunks.

Definitions follow the challenge's ``HighLevelFeatures.py`` (CaloChallenge/homepage, ``code/``),
re-derived here:

* voxels below the readout threshold ``t`` are set to 0 first (``E < t -> 0``), as the challenge's
  ``evaluate.py`` does (datasets 2/3: ``t = 0.5 keV / 0.033``; dataset 1: ``t = 1 MeV``);
* ``etot``: sum of all voxel energies (MeV); ``etot_over_einc = etot / E_inc``;
* ``layer_energy[l]``: sum of the voxel energies of readout layer ``l`` (MeV);
* each voxel has a transverse position ``x = r cos(alpha)``, ``y = r sin(alpha)`` (mm; the
  challenge calls them "eta" and "phi") with ``r`` the radial bin centre and ``alpha`` the
  angular bin centre (``alpha = 0`` for a layer with a single angular bin);
* ``center_x[l] = sum(E x) / (sum(E) + 1e-16)``, likewise ``center_y`` and ``center_r`` (mm);
* ``width_x[l] = sqrt(max(0, sum(E x^2) / (sum(E) + 1e-16) - center_x^2))``, likewise
  ``width_y`` and ``width_r`` (mm); an empty layer has centre 0 and width 0;
* ``sparsity[l]``: fraction of the layer's voxels with zero energy after the threshold,
  ``1 - mean(E > 0)``.

``center_x/y`` and ``width_x/y`` are defined only for layers binned in angle (``n_alpha > 1``),
as in the challenge; every per-layer feature is undefined for a layer without voxels (dataset 1).
Undefined entries are NaN; :func:`defined_layers` says which layers carry a feature.

Per-shower features are small (one number per shower and layer) and are kept in memory; the
voxels are only ever held one chunk at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np

from showerforge.errors import UserError
from showerforge.geometry import PRESETS, Geometry

__all__ = [
    "PER_SHOWER_FEATURES",
    "PER_LAYER_FEATURES",
    "FEATURE_LABELS",
    "compute_features",
    "stream_features",
    "concat_features",
    "defined_layers",
    "challenge_dataset",
    "default_threshold_mev",
    "voxel_histograms",
    "auto_chunk",
]

#: Features with one value per shower, shape (N,).
PER_SHOWER_FEATURES: tuple[str, ...] = ("incident_energy", "etot", "etot_over_einc", "max_voxel")
#: Features with one value per shower and readout layer, shape (N, L).
PER_LAYER_FEATURES: tuple[str, ...] = (
    "layer_energy",
    "center_x",
    "center_y",
    "width_x",
    "width_y",
    "center_r",
    "width_r",
    "sparsity",
)
#: Axis labels (with units) of the features and of the voxel energies.
FEATURE_LABELS: dict[str, str] = {
    "etot_over_einc": "E_tot / E_inc",
    "voxel_energy": "voxel energy [MeV]",
    "layer_energy": "layer energy [MeV]",
    "center_x": "centre in x [mm]",
    "center_y": "centre in y [mm]",
    "width_x": "width in x [mm]",
    "width_y": "width in y [mm]",
    "center_r": "centre in r [mm]",
    "width_r": "width in r [mm]",
    "sparsity": "fraction of empty voxels",
}
_XY_FEATURES = ("center_x", "center_y", "width_x", "width_y")
_EPS = 1e-16  # the challenge's regulator in the energy-weighted means
# Voxels per chunk held in memory at once when the chunk size is chosen automatically.
_CHUNK_VOXELS = 8_000_000


def auto_chunk(n_voxels: int) -> int:
    """Rows per chunk so that one chunk holds about 8 million voxels (32 MB in float32)."""
    return int(max(16, min(65536, _CHUNK_VOXELS // max(1, n_voxels))))


@functools.cache
def _dataset1_geometries() -> dict[str, Geometry]:
    out: dict[str, Geometry] = {}
    folder = Path(str(resources.files("showerforge"))) / "data" / "binning"
    for key, fname in (("1-photons", "binning_dataset_1_photons.xml"), ("1-pions", "binning_dataset_1_pions.xml")):
        path = folder / fname
        if path.is_file():
            out[key] = Geometry.from_calochallenge_xml(path)
    return out


def challenge_dataset(geometry: Geometry) -> str | None:
    """The CaloChallenge 2022 dataset whose readout ``geometry`` is, else None.

    Returns:
        ``"1-photons"``, ``"1-pions"``, ``"2"``, ``"3"`` or ``None``.
    """
    if geometry.same_readout(PRESETS["ds2"]):
        return "2"
    if geometry.same_readout(PRESETS["ds3"]):
        return "3"
    for key, geo in _dataset1_geometries().items():
        if geometry.same_readout(geo):
            return key
    return None


def default_threshold_mev(geometry: Geometry) -> float:
    """Voxel readout threshold (MeV) of the challenge for this readout.

    Dataset 1: 1 MeV; datasets 2/3: 0.5 keV / 0.033 (the sampling fraction of their files);
    another geometry with a known sampling fraction ``f``: 0.5 keV / ``f``; otherwise 0 (no cut).
    """
    ds = challenge_dataset(geometry)
    if ds is not None and ds.startswith("1"):
        return 1.0
    if ds in ("2", "3"):
        return 0.5e-3 / 0.033
    if geometry.sampling_fraction:
        return 0.5e-3 / float(geometry.sampling_fraction)
    return 0.0


def defined_layers(geometry: Geometry, name: str) -> np.ndarray:
    """Readout layers on which the per-layer feature ``name`` is defined, shape (k,) int."""
    if name not in PER_LAYER_FEATURES:
        raise KeyError(f"{name!r} is not a per-layer feature; expected one of {PER_LAYER_FEATURES}")
    keep = [
        i
        for i, layer in enumerate(geometry.readout)
        if layer.n_voxels > 0 and (name not in _XY_FEATURES or layer.n_alpha > 1)
    ]
    return np.asarray(keep, dtype=np.int64)


def _weighted_moments(e: np.ndarray, coord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy-weighted centre and width along the last axis; e (n, V), coord (V,)."""
    norm = e.sum(axis=-1) + _EPS
    mean = (e @ coord) / norm
    second = (e @ (coord * coord)) / norm
    return mean, np.sqrt(np.clip(second - mean * mean, 0.0, None))


def compute_features(
    incident_mev: np.ndarray, showers_mev: np.ndarray, geometry: Geometry, *, threshold_mev: float = 0.0
) -> dict[str, np.ndarray]:
    """High-level features of a batch of showers (see module docstring).

    Args:
        incident_mev: (n,) incident energies, MeV.
        showers_mev: (n, n_voxels) voxel energies, MeV, voxels in (layer, angle, radius) order.
        geometry: the readout.
        threshold_mev: voxels with ``E < threshold_mev`` count as empty (MeV, >= 0). Negative
            voxel energies always count as empty.

    Returns:
        dict with ``incident_energy``, ``etot``, ``etot_over_einc``, ``max_voxel`` (n,) float64
        (MeV; ratio dimensionless) and the per-layer features (n, L) float32 (MeV, mm, fraction),
        NaN where a feature is undefined for a layer.
    """
    inc = np.asarray(incident_mev, dtype=np.float64).reshape(-1)
    x = np.array(showers_mev, dtype=np.float64)  # a copy: thresholding happens in place
    if x.ndim != 2 or x.shape != (inc.shape[0], geometry.n_voxels):
        raise UserError(f"showers have shape {x.shape}, expected ({inc.shape[0]}, {geometry.n_voxels})")
    x[(x < threshold_mev) | (x < 0)] = 0.0
    n, n_layers = x.shape[0], geometry.n_layers
    out: dict[str, np.ndarray] = {}
    out["incident_energy"] = inc
    out["etot"] = x.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["etot_over_einc"] = out["etot"] / inc
    out["max_voxel"] = x.max(axis=1) if x.shape[1] else np.zeros(n)
    per = {name: np.full((n, n_layers), np.nan, dtype=np.float32) for name in PER_LAYER_FEATURES}
    vx, vy = geometry.voxel_xy_mm()
    vr = geometry.voxel_r_mm()
    if geometry.is_regular:
        _, n_a, n_r = geometry.shape
        e = x.reshape(n, n_layers, n_a * n_r)
        cx, cy, cr = (v[: n_a * n_r] for v in (vx, vy, vr))
        layers = np.arange(n_layers)
        _fill(per, layers, e, cx, cy, cr, binned_in_alpha=n_a > 1)
    else:
        for layer_idx, layer in enumerate(geometry.readout):
            if layer.n_voxels == 0:
                continue
            sl = geometry.layer_slice(layer_idx)
            _fill(per, np.array([layer_idx]), x[:, None, sl], vx[sl], vy[sl], vr[sl], binned_in_alpha=layer.n_alpha > 1)
    out.update(per)
    return out


def _fill(
    per: dict[str, np.ndarray],
    layers: np.ndarray,
    e: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    vr: np.ndarray,
    *,
    binned_in_alpha: bool,
) -> None:
    """Write the per-layer features of ``e`` (n, k, V) into the columns ``layers`` of ``per``."""
    per["layer_energy"][:, layers] = e.sum(axis=-1)
    per["sparsity"][:, layers] = 1.0 - (e > 0).mean(axis=-1)
    per["center_r"][:, layers], per["width_r"][:, layers] = _weighted_moments(e, vr)
    if binned_in_alpha:
        per["center_x"][:, layers], per["width_x"][:, layers] = _weighted_moments(e, vx)
        per["center_y"][:, layers], per["width_y"][:, layers] = _weighted_moments(e, vy)


def voxel_histograms(showers_mev: np.ndarray, edges: np.ndarray, *, threshold_mev: float = 0.0) -> np.ndarray:
    """Per-shower histogram of voxel energies.

    Bins follow ``numpy.histogram``: ``[e_i, e_{i+1})``, the last bin closed; voxels outside
    ``[edges[0], edges[-1]]`` and voxels below the threshold (set to 0 first) are not counted.

    Args:
        showers_mev: (n, n_voxels) voxel energies, MeV.
        edges: (B + 1,) increasing bin edges, MeV.
        threshold_mev: readout threshold, MeV.

    Returns:
        (n, B) int32 counts; summing over showers gives the histogram of all voxels.
    """
    x = np.asarray(showers_mev)
    edges = np.asarray(edges, dtype=np.float64)
    n_bins = len(edges) - 1
    n = x.shape[0]
    idx = np.searchsorted(edges, x.astype(np.float64, copy=False).ravel(), side="right") - 1
    flat = x.ravel()
    idx[flat == edges[-1]] = n_bins - 1
    ok = (idx >= 0) & (idx < n_bins) & (flat >= threshold_mev)
    rows = np.repeat(np.arange(n), x.shape[1])
    counts = np.bincount(rows[ok] * n_bins + idx[ok], minlength=n * n_bins)
    return counts.reshape(n, n_bins).astype(np.int32)


def concat_features(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the per-chunk feature dicts of :func:`compute_features` along the showers."""
    if not parts:
        raise ValueError("no feature chunks to concatenate")
    return {key: np.concatenate([p[key] for p in parts], axis=0) for key in parts[0]}


def stream_features(
    source: str | Path | object,
    *,
    geometry: Geometry | str | None = None,
    threshold_mev: float | None = None,
    chunk: int | None = None,
    max_showers: int | None = None,
    on_chunk: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
) -> dict[str, np.ndarray]:
    """Features of every shower of a CaloChallenge-format file, read in chunks.

    Memory is bounded by one chunk of voxels plus the (small) per-shower features.

    Args:
        source: path of the file, or an open :class:`showerforge.data.calo.CaloFile`.
        geometry: readout (when the file has none, or to check it); see ``CaloFile.open``.
        threshold_mev: readout threshold in MeV; ``None``: :func:`default_threshold_mev`.
        chunk: showers per chunk; ``None``: :func:`auto_chunk`.
        max_showers: read only the first ``max_showers`` showers.
        on_chunk: called as ``on_chunk(start_row, incident, showers)`` for every chunk, e.g. to
            accumulate further statistics in the same pass.

    Returns:
        the dict of :func:`compute_features` for all showers read.
    """
    from showerforge.data.calo import CaloFile

    if isinstance(source, CaloFile):
        return _stream(source, threshold_mev, chunk, max_showers, on_chunk)
    with CaloFile.open(Path(str(source)), geometry) as f:
        return _stream(f, threshold_mev, chunk, max_showers, on_chunk)


def _iter_rows(f: object, chunk: int | None, max_showers: int | None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    n = len(f)  # type: ignore[arg-type]
    stop = n if max_showers is None else min(n, int(max_showers))
    step = chunk or auto_chunk(f.n_voxels)  # type: ignore[attr-defined]
    for lo in range(0, stop, step):
        inc, sh = f.read(lo, min(lo + step, stop))  # type: ignore[attr-defined]
        yield lo, inc, sh


def _stream(
    f: object,
    threshold_mev: float | None,
    chunk: int | None,
    max_showers: int | None,
    on_chunk: Callable[[int, np.ndarray, np.ndarray], None] | None,
) -> dict[str, np.ndarray]:
    geo: Geometry = f.geometry  # type: ignore[attr-defined]
    thr = default_threshold_mev(geo) if threshold_mev is None else float(threshold_mev)
    parts = []
    for lo, inc, sh in _iter_rows(f, chunk, max_showers):
        parts.append(compute_features(inc, sh, geo, threshold_mev=thr))
        if on_chunk is not None:
            on_chunk(lo, inc, sh)
    if not parts:
        return compute_features(np.zeros(0), np.zeros((0, geo.n_voxels)), geo, threshold_mev=thr)
    return concat_features(parts)
