"""Showers at many designs: Geant4 campaigns (one shard per design, Dask, resumable) or a toy.

``geant4``: every design is one shard of the campaign machinery
(:func:`showerforge.simulate.shards.run_sharded` running ``showerforge.simulate.calo_shard``), a
subprocess with its own geometry and seed, on a Dask ``LocalCluster`` or a remote scheduler;
finished shards are kept, so a killed iteration resumes. The engine keeps, per shower, the
visible energy of each layer's active slab and the absorbers' total (MeV).

``toy``: a closed-form stand-in for tests and for problems with a known optimum: a Gamma
longitudinal profile (Longo and Sestili) in radiation lengths whose shape parameter fluctuates
from shower to shower (leakage), the active slabs' share of it seen with a Gaussian sampling
fluctuation that grows with each layer's absorber share. Not a physics model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.geometry import RADIATION_LENGTH_MM
from showerforge.optimisation.config import OptConfig
from showerforge.optimisation.design import Design, DesignSpace

__all__ = ["EventBatch", "simulate_designs", "read_batch", "write_batch", "check_engine", "provenance_summary"]

SUMMARY_KEYS = (
    "engine",
    "geant4_version",
    "physics_list",
    "particle",
    "production_cut_mm",
    "physics_data",
    "hadronic_data",
)
"""The provenance entries an iteration record and a verified design keep (the showers' files keep all)."""


@dataclass
class EventBatch:
    """Showers of several designs, one row per shower.

    Attributes:
        design_index: (N,) int, which design (row of the iteration's design table).
        incident_mev: (N,) primary kinetic energy, MeV.
        layer_mev: (N, L) visible energy of each layer's active slab, MeV.
        absorber_mev: (N,) energy deposited in all absorbers, MeV.
        provenance: how the showers were made (engine; for Geant4 its version, physics list, particle,
            production cut and data sets, as the shards record them, less the per-shard seeds).
    """

    design_index: np.ndarray
    incident_mev: np.ndarray
    layer_mev: np.ndarray
    absorber_mev: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.incident_mev.shape[0])


def provenance_summary(provenance: dict[str, Any]) -> dict[str, Any]:
    """The entries of :data:`SUMMARY_KEYS` that ``provenance`` has (engine, Geant4 version, physics list, data sets)."""
    return {k: provenance[k] for k in SUMMARY_KEYS if k in provenance}


def check_engine(cfg: OptConfig, space: DesignSpace, say: Callable[[str], None]) -> None:
    """Check that the engine can simulate every material of the config (before any shower).

    Geant4: one :func:`~showerforge.simulate.calo_g4.preflight` of a geometry holding every
    candidate material (Geant4 is asked in a child process). Toy: radiation lengths tabulated.
    """
    names = sorted({m for lay in cfg.layers for key in ("absorber", "sensor") for m in _as_tuple(getattr(lay, key))})
    if cfg.engine == "toy":
        missing = [m for m in names if m not in RADIATION_LENGTH_MM]
        if missing:
            raise UserError(f"{cfg.path} [simulation] engine = 'toy': no radiation length for {missing[0]!r}")
        return
    from showerforge.simulate.calo_g4 import preflight

    probe = Design((1.0,) * len(names), (1.0,) * len(names), tuple(names), tuple(names))
    say(f"checking the Geant4 set-up for {', '.join(names)}")
    preflight(space.geometry(probe, "optimise-check"), cfg.physics)


def _as_tuple(value: object) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, tuple) else (str(value),)


def simulate_designs(
    cfg: OptConfig,
    space: DesignSpace,
    designs: list[Design],
    energies: list[np.ndarray],
    seeds: list[int],
    folder: Path,
    *,
    scheduler: str | None = None,
    progress: bool = False,
    say: Callable[[str], None] = lambda m: None,
) -> EventBatch:
    """Simulate ``energies[i]`` (MeV) at ``designs[i]`` with seed ``seeds[i]``; shards under ``folder``."""
    if cfg.engine == "toy":
        parts = [_toy(d, e, s) for d, e, s in zip(designs, energies, seeds)]
        provenance: dict[str, Any] = {"engine": "toy", "particle": cfg.particle}
    else:
        parts, provenance = _geant4(cfg, space, designs, energies, seeds, folder, scheduler, progress, say)
    idx = np.concatenate([np.full(len(e), i, dtype=np.int64) for i, e in enumerate(energies)])
    return EventBatch(
        design_index=idx,
        incident_mev=np.concatenate([p[0] for p in parts]),
        layer_mev=np.concatenate([p[1] for p in parts]),
        absorber_mev=np.concatenate([p[2] for p in parts]),
        provenance=provenance,
    )


def _geant4(
    cfg: OptConfig,
    space: DesignSpace,
    designs: list[Design],
    energies: list[np.ndarray],
    seeds: list[int],
    folder: Path,
    scheduler: str | None,
    progress: bool,
    say: Callable[[str], None],
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], dict[str, Any]]:
    from showerforge.simulate.campaign import ShardSpec, shard_is_complete
    from showerforge.simulate.shards import ShardTask, run_sharded

    specs = []
    for i, (d, e, s) in enumerate(zip(designs, energies, seeds)):
        geo = space.geometry(d, f"design-{i}")
        h = json.dumps({"design": d.to_dict(), "e": [float(x) for x in e], "seed": s, "physics": cfg.physics})
        specs.append(
            ShardSpec(
                index=i,
                geometry_json=geo.to_json(),
                particle=cfg.particle,
                energies_mev=[float(x) for x in e],
                seed=int(s),
                physics=cfg.physics,
                production_cut_mm=cfg.cut_mm,
                output=str(folder / f"design-{i:04d}.h5"),
                progress_file=str(folder / f"design-{i:04d}.progress"),
                campaign_hash=_hash(h),
            )
        )

    def task(s: ShardSpec) -> ShardTask:
        path = Path(s.output).with_suffix(".json")
        path.write_text(json.dumps(asdict(s)))
        return ShardTask(s.index, s.seed, len(s.energies_mev), str(path), s.progress_file)

    run_sharded(
        folder,
        specs,
        complete=shard_is_complete,
        task=task,
        module="showerforge.simulate.calo_shard",
        workers=cfg.workers,
        scheduler=scheduler,
        progress=progress,
        n_total=sum(len(e) for e in energies),
        label="Geant4 showers",
        unit="showers",
        say=say,
    )
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    provenance: dict[str, Any] = {}
    for spec in specs:
        with h5py.File(spec.output, "r") as f:
            out.append((f["incident"][...], f["layer_mev"][...].astype(np.float64), f["absorber"][...]))
            provenance = provenance or json.loads(f.attrs.get("provenance", "{}"))
    return out, {k: v for k, v in provenance.items() if k not in _PER_SHARD}


_PER_SHARD = ("seed", "engine_seeds", "geometry")


def _hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _toy(design: Design, energies_mev: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form showers (module docstring): per-layer visible MeV of each energy."""
    from scipy.special import gammainc

    rng = np.random.default_rng(seed)
    e = np.asarray(energies_mev, dtype=np.float64)
    b = 0.5
    a = 1.0 + b * (np.log(e / 10.0) - 0.5)
    a = np.maximum(a * (1.0 + 0.1 * rng.standard_normal(len(e))), 1.05)
    x0a = np.asarray([a_mm / RADIATION_LENGTH_MM[m] for a_mm, m in zip(design.absorber_mm, design.absorber)])
    x0s = np.asarray([s_mm / RADIATION_LENGTH_MM[m] for s_mm, m in zip(design.sensor_mm, design.sensor)])
    edges = np.cumsum(np.stack([x0a, x0s], axis=1).reshape(-1))
    cdf = gammainc(a[:, None], b * np.concatenate([[0.0], edges])[None, :])
    frac = np.diff(cdf, axis=1)  # (n, 2L): absorber, sensor, absorber, ...
    dep = e[:, None] * frac
    share = x0a / np.maximum(x0a + x0s, 1e-12)
    rel = np.sqrt(0.02**2 + 0.1**2 * share)[None, :] / np.sqrt(dep[:, 1::2] / 1000.0 + 1e-6)
    visible = np.maximum(dep[:, 1::2] * (1.0 + rel * rng.standard_normal(dep[:, 1::2].shape)), 0.0)
    return e, visible, dep[:, 0::2].sum(axis=1)


def write_batch(path: Path, batch: EventBatch, u: np.ndarray, choices: np.ndarray, designs: list[Design]) -> None:
    """The iteration's showers with their designs, atomically (``docs/optimise.md``, file layout)."""
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("design_u", data=u)
        f.create_dataset("design_choice", data=choices)
        f.create_dataset("design_index", data=batch.design_index)
        f.create_dataset("incident_energies", data=batch.incident_mev[:, None])
        f.create_dataset("layer_visible_mev", data=batch.layer_mev, compression="gzip")
        f.create_dataset("absorber_mev", data=batch.absorber_mev, compression="gzip")
        f.attrs["designs"] = json.dumps([d.to_dict() for d in designs])
        f.attrs["provenance"] = json.dumps(batch.provenance, sort_keys=True, default=str)
        f.attrs["units"] = "MeV, mm"


def read_batch(path: Path) -> tuple[EventBatch, np.ndarray, np.ndarray]:
    """Inverse of :func:`write_batch`: ``(batch, u, choices)``."""
    with h5py.File(path, "r") as f:
        batch = EventBatch(
            f["design_index"][...],
            f["incident_energies"][:, 0],
            f["layer_visible_mev"][...],
            f["absorber_mev"][...],
            json.loads(f.attrs.get("provenance", "{}")),
        )
        return batch, f["design_u"][...], f["design_choice"][...]
