"""``showerforge inspect``: describe and validate a CaloChallenge-format file, streaming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from showerforge.data.calo import ValidationReport, open_showers, validate_file
from showerforge.geometry import Geometry

__all__ = [
    "inspect_file",
    "format_inspection",
    "inspect_jet_file",
    "format_jet_inspection",
    "inspect_points_file",
    "format_points_inspection",
]

_SHOWN_ATTRS = (
    "particle",
    "spectrum",
    "seed",
    "n_showers",
    "geant4_version",
    "physics_list",
    "physics_data",
    "production_cut_mm",
    "sampling_fraction",
    "sampling_fraction_error",
    "showerforge_version",
    "model",
    "checkpoint_sha256",
    "sampler",
)


def inspect_file(path: str | Path, geometry: Geometry | str | None = None, chunk: int = 2048) -> dict[str, Any]:
    """Validate ``path`` and collect what a user wants to see about it (JSON-ready).

    Raises:
        CaloFileError: when the file cannot be read as CaloChallenge showers at all.
    """
    rep: ValidationReport = validate_file(path, geometry, chunk=chunk)
    with open_showers(path, geometry) as f:
        geo = f.geometry
        attrs = {k: _plain(f.attrs[k]) for k in _SHOWN_ATTRS if k in f.attrs}
    desc: dict[str, Any] = {
        "file": str(path),
        "ok": rep.ok,
        "n_showers": rep.n_showers,
        "n_voxels": rep.n_voxels,
        "geometry": geo.name,
        "geometry_source": rep.geometry_source,
        "readout": geo.describe_readout(),
        "stack": geo.describe_stack(),
        "attributes": attrs,
        "stats": rep.stats,
        "errors": rep.errors,
        "warnings": rep.warnings,
    }
    return desc


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def format_inspection(desc: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`inspect_file` output."""
    st = desc["stats"]
    lo, hi = st.get("incident_energy_mev", [None, None])
    lines = [
        f"file        {desc['file']}",
        f"showers     {desc['n_showers']} x {desc['n_voxels']} voxels (float32, MeV)",
        f"geometry    {desc['geometry']} (from {desc['geometry_source']}): {desc['readout']}",
        f"stack       {desc['stack']}",
    ]
    if lo is not None:
        lines.append(f"E_inc       {lo / 1e3:.4g} - {hi / 1e3:.4g} GeV")
        lines.append(f"E_dep/E_inc {st['mean_etot_over_einc']:.4f} +- {st['std_etot_over_einc']:.4f} (mean +- std)")
        lines.append(f"occupancy   {100 * st['mean_nonzero_voxel_fraction']:.2f} % of voxels non-zero")
    for k, v in desc["attributes"].items():
        lines.append(f"{k:<11} {v}")
    for w in desc["warnings"]:
        lines.append(f"warning: {w}")
    for e in desc["errors"]:
        lines.append(f"ERROR: {e}")
    lines.append("checks      " + ("passed" if desc["ok"] else f"FAILED ({len(desc['errors'])} problems)"))
    return "\n".join(lines)


def inspect_jet_file(spec: str | Path) -> dict[str, Any]:
    """Read and validate a JetNet-format file; per-type counts, pT range, masses, multiplicities.

    Raises:
        JetFileError: when the file does not follow the JetNet layout.
    """
    import numpy as np

    from showerforge.data.jetnet import JET_TYPES, read_jets

    data = read_jets(spec)
    per_type = {}
    for i, name in enumerate(JET_TYPES):
        sel = data.jet_type == i
        if not sel.any():
            continue
        jf = data.jet_features[sel]
        mult = data.particle_features[sel][..., 3].sum(axis=1)
        per_type[name] = {
            "n_jets": int(sel.sum()),
            "pt_gev": [float(jf[:, 0].min()), float(jf[:, 0].max())],
            "median_mass_gev": float(np.median(jf[:, 2])),
            "mean_multiplicity": float(jf[:, 3].mean()),
            "mean_particles_kept": float(mult.mean()),
        }
    settings = data.attrs.get("settings")
    return {
        "file": str(spec),
        "ok": len(data) > 0,
        "errors": [] if len(data) else ["0 jets: the file is empty; expected at least one jet"],
        "format": "jetnet",
        "n_jets": len(data),
        "n_particles": data.n_particles,
        "type_column_found": data.type_column_found,
        "jet_type_source": data.attrs.get("jet_type_source"),
        "per_type": per_type,
        "generator": settings.get("pythia_version") if isinstance(settings, dict) else None,
        "model": data.attrs.get("model"),
    }


def format_jet_inspection(desc: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`inspect_jet_file` output."""
    lines = [
        f"file        {desc['file']}",
        f"jets        {desc['n_jets']} x {desc['n_particles']} particles (eta_rel, phi_rel, pT_rel, mask)",
        f"type column {'found in jet_features[:, 0] (jetnet loader layout)' if desc['type_column_found'] else 'jet_type dataset'}"
        + (f"; types from {desc['jet_type_source']}" if desc.get("jet_type_source") else ""),
    ]
    for name, t in desc["per_type"].items():
        lines.append(
            f"type {name:<6} {t['n_jets']:>7} jets, pT {t['pt_gev'][0]:.0f}-{t['pt_gev'][1]:.0f} GeV, "
            f"median mass {t['median_mass_gev']:.1f} GeV, multiplicity {t['mean_multiplicity']:.1f} "
            f"({t['mean_particles_kept']:.1f} kept)"
        )
    for key in ("generator", "model"):
        if desc.get(key):
            lines.append(f"{key:<11} {desc[key]}")
    for e in desc.get("errors", []):
        lines.append(f"ERROR: {e}")
    lines.append("checks      " + ("passed" if desc["ok"] else f"FAILED ({len(desc['errors'])} problems)"))
    return "\n".join(lines)


def inspect_points_file(path: str | Path) -> dict[str, Any]:
    """Read and check a point-cloud file: points per shower, visible energy, layers, provenance.

    Raises:
        PointsFileError: when the file does not follow the point-cloud layout (one line).
    """
    import numpy as np

    from showerforge.data.points import points_to_cells, read_points

    clouds = read_points(path)
    geo = clouds.geometry
    n = len(clouds)
    npts = clouds.num_points
    vis = clouds.visible_mev()
    inc = clouds.incident_mev
    desc: dict[str, Any] = {
        "file": str(path),
        "ok": n > 0,
        "errors": [] if n else ["0 showers: the file is empty; expected at least one shower"],
        "format": "points",
        "n_showers": n,
        "n_points": int(npts.sum()),
        "points_per_shower": [
            float(npts.mean()) if n else 0.0,
            int(npts.min()) if n else 0,
            int(npts.max()) if n else 0,
        ],
        "incident_energy_mev": [float(inc.min()), float(inc.max())] if n else [None, None],
        "visible_over_incident": [float(np.mean(vis / inc)), float(np.std(vis / inc))] if n else [None, None],
        "geometry": geo.name if geo is not None else None,
        "readout": geo.describe_readout() if geo is not None else "unknown (no geometry attribute)",
        "stack": geo.describe_stack() if geo is not None else "unknown",
        "attributes": {k: _plain(clouds.attrs[k]) for k in _SHOWN_ATTRS if k in clouds.attrs},
    }
    if geo is not None and geo.is_crystal and n:
        cells = points_to_cells(clouds, geo, where=str(path))
        hits = np.bincount(cells.event, minlength=n)
        desc["cells_above_threshold"] = [float(hits.mean()), int(hits.min()), int(hits.max())]
        desc["threshold_mev"] = sorted({round(float(t), 6) for t in cells.threshold_mev})
    return desc


def format_points_inspection(desc: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`inspect_points_file` output."""
    mean, lo, hi = desc["points_per_shower"]
    lines = [
        f"file        {desc['file']}",
        f"showers     {desc['n_showers']} point clouds, {desc['n_points']} points (x, y mm; layer; energy MeV)",
        f"points      {mean:.1f} per shower (min {lo}, max {hi})",
        f"geometry    {desc['geometry']}: {desc['readout']}",
        f"stack       {desc['stack']}",
    ]
    e_lo, e_hi = desc["incident_energy_mev"]
    if e_lo is not None:
        m, sd = desc["visible_over_incident"]
        lines.append(f"E_inc       {e_lo / 1e3:.4g} - {e_hi / 1e3:.4g} GeV")
        lines.append(f"E_vis/E_inc {m:.5f} +- {sd:.5f} (mean +- std; visible energy in the sensors)")
    if "cells_above_threshold" in desc:
        cm, clo, chi = desc["cells_above_threshold"]
        thr = ", ".join(f"{t:g}" for t in desc["threshold_mev"])
        lines.append(f"cells       {cm:.1f} above threshold per shower (min {clo}, max {chi}; threshold {thr} MeV)")
    for k, v in desc["attributes"].items():
        lines.append(f"{k:<11} {v}")
    for e in desc.get("errors", []):
        lines.append(f"ERROR: {e}")
    lines.append("checks      " + ("passed" if desc["ok"] else f"FAILED ({len(desc['errors'])} problems)"))
    return "\n".join(lines)
