"""Sharded simulation campaigns: shards run as separate processes, resume, merge.

A campaign splits N events into shards of ``shard_size`` events. Shard ``i`` gets its own seed
(derived from the campaign seed and ``i``), its own incident energies (drawn from the spectrum with
that seed) and runs as a short-lived subprocess (Geant4 keeps one state per process), launched by
a Dask task (``LocalCluster`` by default, or a remote scheduler). Each shard is written atomically
into ``OUTPUT.shards/``; re-running the same command skips finished shards. The merge streams the
shards, in order, into the output file (atomically).

Same seed and shard layout give identical ``showers`` bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.data.calo import atomic_output, check_writable
from showerforge.errors import UserError
from showerforge.geometry import Geometry
from showerforge.simulate.calo_g4 import HADRONS, PHYSICS_EM, PHYSICS_HADRONIC, preflight
from showerforge.simulate.energies import SHOWER_ENERGY_RANGE_MEV, EnergySpec
from showerforge.simulate.shards import CampaignError, ShardTask, campaign_lock, check_scheduler, run_sharded

__all__ = [
    "simulate_shower_file",
    "CaloCampaign",
    "ShardSpec",
    "run_campaign",
    "CampaignError",
    "shard_seed",
    "merge_shards",
]

SHARD_FORMAT = "showerforge-calo-shard-v1"


def shard_seed(seed: int, index: int) -> int:
    """Seed of shard ``index`` of a campaign with ``seed`` (a 31-bit integer, distinct per shard)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint32)[0] >> 1)


@dataclass
class ShardSpec:
    """Everything one shard subprocess needs (written as JSON next to the shard)."""

    index: int
    geometry_json: str
    particle: str
    energies_mev: list[float]
    seed: int
    physics: str
    production_cut_mm: float
    output: str
    progress_file: str
    campaign_hash: str
    position_mm: tuple[float, float, float | None] = (0.0, 0.0, None)
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass
class CaloCampaign:
    """A Geant4 calorimeter campaign (see module docstring).

    Args:
        geometry: the calorimeter (must have a physical stack and a regular readout).
        particle: ``e-``, ``e+``, ``gamma``; ``pi+``, ``pi-`` with a hadronic ``physics``.
        energy: incident energies (:func:`showerforge.simulate.energies.parse_energy`).
        n: number of showers.
        seed: campaign seed.
        output: final HDF5 file.
        shard_size: events per shard.
        physics: EM physics constructor (``standard``, ``option1`` .. ``option4``) or a Geant4
            hadronic reference list (``FTFP_BERT``, ``QGSP_BERT``; on approximate hadronic data
            without the real Geant4 data sets, :mod:`showerforge.simulate.g4hadronic`).
        production_cut_mm: Geant4 production cut in mm.
        sampling_fraction: divide visible energy by this; None = use the campaign's measurement.
            A geometry of sections (``ild-ecal``, ...) keeps the visible energy (no division).
        points: write a point-cloud file (the non-empty fine squares; geometries with
            ``subcells``) instead of cells.
        threshold_mip: readout threshold of the cells in MIPs of each layer's sensor
            (geometries whose sections state a MIP energy); points are written without one.
    """

    geometry: Geometry
    particle: str
    energy: EnergySpec
    n: int
    seed: int
    output: Path
    shard_size: int = 250
    physics: str = "standard"
    production_cut_mm: float = 0.7
    sampling_fraction: float | None = None
    position_mm: tuple[float, float, float | None] = (0.0, 0.0, None)
    direction: tuple[float, float, float] = (0.0, 0.0, 1.0)
    extra_attrs: dict[str, Any] = field(default_factory=dict)
    points: bool = False
    threshold_mip: float = 0.5

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.n < 1:
            raise UserError(f"--n must be >= 1, got {self.n}")
        if self.shard_size < 1:
            raise UserError(f"--shard-size must be >= 1, got {self.shard_size}")
        if self.particle not in ("e-", "e+", "gamma", *sorted(HADRONS)):
            raise UserError(f"particle {self.particle!r} is not supported; use e-, e+, gamma, pi+ or pi-")
        if self.particle in HADRONS and self.physics in PHYSICS_EM:
            raise UserError(
                f"--particle {self.particle} needs a hadronic physics list, but --physics {self.physics} is "
                f"electromagnetic only: use --physics {' or '.join(PHYSICS_HADRONIC)}"
            )
        if not self.geometry.has_stack:
            raise UserError(f"geometry {self.geometry.name!r} has no materials: it can be read, not simulated")
        if not self.geometry.is_regular and not self.geometry.sections:
            raise UserError(f"geometry {self.geometry.name!r} has an irregular readout: simulation needs a regular one")
        if self.points and not self.geometry.has_subcells:
            raise UserError(
                f"--points needs a geometry whose cells are divided into sub-cells (ild-ecal, ild-hcal, "
                f"ild-ecal-hcal); {self.geometry.name!r} has none"
            )
        if not self.threshold_mip >= 0:
            raise UserError(f"--threshold-mip must be >= 0, got {self.threshold_mip}")
        if self.production_cut_mm <= 0:
            raise UserError(f"--cut must be > 0 mm, got {self.production_cut_mm}")
        self.energy.check_range(*SHOWER_ENERGY_RANGE_MEV)  # before any shard folder or lock

    @property
    def shard_dir(self) -> Path:
        return self.output.with_name(self.output.name + ".shards")

    def shard_sizes(self) -> list[int]:
        full, rest = divmod(self.n, self.shard_size)
        return [self.shard_size] * full + ([rest] if rest else [])

    def config_hash(self) -> str:
        """Hash of everything that determines the shards' content."""
        d = {
            "geometry": self.geometry.to_json(),
            "particle": self.particle,
            "energy": [list(self.energy.values_mev), self.energy.spectrum],
            "n": self.n,
            "seed": self.seed,
            "shard_size": self.shard_size,
            "physics": self.physics,
            "cut": self.production_cut_mm,
            "position": list(self.position_mm),
            "direction": list(self.direction),
        }
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def shard_specs(self) -> list[ShardSpec]:
        specs, h = [], self.config_hash()
        for i, size in enumerate(self.shard_sizes()):
            seed = shard_seed(self.seed, i)
            energies = self.energy.sample(size, np.random.default_rng(seed))
            specs.append(
                ShardSpec(
                    index=i,
                    geometry_json=self.geometry.to_json(),
                    particle=self.particle,
                    energies_mev=[float(e) for e in energies],
                    seed=seed,
                    physics=self.physics,
                    production_cut_mm=self.production_cut_mm,
                    output=str(self.shard_dir / f"shard-{i:05d}.h5"),
                    progress_file=str(self.shard_dir / f"shard-{i:05d}.progress"),
                    campaign_hash=h,
                    position_mm=self.position_mm,
                    direction=self.direction,
                )
            )
        return specs


def shard_is_complete(spec: ShardSpec) -> bool:
    """True when the shard file exists, is readable and belongs to this campaign."""
    path = Path(spec.output)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return (
                f.attrs.get("format") == SHARD_FORMAT
                and f.attrs.get("campaign_hash") == spec.campaign_hash
                and f["incident"].shape[0] == len(spec.energies_mev)
            )
    except (OSError, KeyError):
        return False


def run_campaign(
    campaign: CaloCampaign,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    keep_shards: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) a campaign and merge it into ``campaign.output``.

    Args:
        workers: local processes (ignored with ``scheduler``).
        scheduler: address of a Dask scheduler (``tcp://host:port``); None = a LocalCluster.
        progress: show a progress bar with showers/s.
        keep_shards: keep ``OUTPUT.shards/`` after the merge.
        on_status: callback for one-line status messages.

    Returns:
        The output path.
    """
    check_writable(campaign.output)
    with campaign_lock(campaign.output):
        say = on_status or (lambda msg: None)
        preflight(campaign.geometry, campaign.physics)
        if scheduler:
            check_scheduler(scheduler)
        say(
            f"simulating {campaign.n} {campaign.particle} showers, {campaign.energy.describe()}, "
            f"geometry {campaign.geometry.name}, {len(campaign.shard_sizes())} shards on "
            f"{scheduler or f'{workers} local workers'}"
        )
        specs = campaign.shard_specs()

        def task(s: ShardSpec) -> ShardTask:
            path = Path(s.output).with_suffix(".json")
            path.write_text(json.dumps(asdict(s)))
            Path(s.progress_file).unlink(missing_ok=True)
            return ShardTask(s.index, s.seed, len(s.energies_mev), str(path), s.progress_file)

        run_sharded(
            campaign.shard_dir,
            specs,
            complete=shard_is_complete,
            task=task,
            module="showerforge.simulate.calo_shard",
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            n_total=campaign.n,
            label="simulating showers",
            unit="showers",
            say=say,
        )
        say(f"merging {len(specs)} shards into {campaign.output}")
        merge_shards(campaign, specs)
        if not keep_shards:
            shutil.rmtree(campaign.shard_dir, ignore_errors=True)
        return campaign.output


def merge_shards(campaign: CaloCampaign, specs: list[ShardSpec]) -> Path:
    """Stream the shards, in order, into the final CaloChallenge file (atomically).

    Showers are divided by the sampling fraction: the campaign's ``sampling_fraction`` if set,
    else the one measured on all shards (sum of sensor energy / sum of sensor + absorber energy).
    """
    sens = absb = 0.0
    per_event: list[np.ndarray] = []
    provenance: dict[str, Any] = {}
    for s in specs:
        with h5py.File(s.output, "r") as f:
            vis_tot = _shard_visible(f) + f["sensor_outside"][...]
            ab = f["absorber"][...].astype(np.float64)
            sens += float(vis_tot.sum())
            absb += float(ab.sum())
            per_event.append(vis_tot / np.maximum(vis_tot + ab, 1e-300))
            provenance = json.loads(f.attrs["provenance"])
    fr = np.concatenate(per_event)
    if campaign.sampling_fraction is None and not sens > 0:
        raise UserError(
            f"{campaign.output}: no energy reached the sensors in any of the {campaign.n} showers "
            f"({campaign.energy.describe()}), so the sampling fraction cannot be measured; simulate higher "
            f"energies, or give --sampling-fraction (the finished shards in {campaign.shard_dir.name}/ are reused)"
        )
    sf_measured = sens / (sens + absb) if sens + absb > 0 else 0.0
    sf_error = float(fr.std(ddof=1) / np.sqrt(len(fr))) if len(fr) > 1 else float("nan")
    sf = campaign.sampling_fraction or sf_measured
    if campaign.geometry.sections:
        sf = 1.0  # layers of different sampling fractions: cells and points keep the visible energy
    geo = campaign.geometry.with_sampling_fraction(sf)
    from showerforge._version import __version__

    attrs = {
        **{k: v for k, v in provenance.items() if k not in ("seed", "seeds", "n_events", "geometry", "format")},
        "geometry_name": campaign.geometry.name,
        "particle": campaign.particle,
        "spectrum": campaign.energy.describe(),
        "energy_values_mev": list(campaign.energy.values_mev),
        "energy_spectrum": campaign.energy.spectrum,
        "seed": campaign.seed,
        "shard_size": campaign.shard_size,
        "shard_seeds": [s.seed for s in specs],
        "n_showers": campaign.n,
        "sampling_fraction": sf,
        "sampling_fraction_measured": sf_measured,
        "sampling_fraction_error": sf_error,
        "production_cut_mm": campaign.production_cut_mm,
        "gun_position_mm": list(campaign.position_mm),
        "gun_direction": list(campaign.direction),
        "units": "MeV",
        "package": f"showerforge {__version__}",
        **campaign.extra_attrs,
    }
    if campaign.geometry.sections:
        attrs["energy_scale"] = "visible (energy deposited in the sensors, MeV)"
    if campaign.points:
        return _merge_points(campaign, specs, geo, attrs)
    thresholds = None
    if campaign.geometry.has_subcells:
        from showerforge.data.points import threshold_per_layer

        thresholds = threshold_per_layer(campaign.geometry, campaign.threshold_mip)
        attrs["threshold_mip"] = campaign.threshold_mip
        attrs["threshold_mev"] = [float(t) for t in thresholds]
    out = campaign.output
    with atomic_output(out) as tmp:
        with h5py.File(tmp, "w") as f:
            nvox = geo.n_voxels
            chunk_rows = max(1, min(campaign.n, 2**20 // nvox))
            ds_sh = f.create_dataset(
                "showers", shape=(campaign.n, nvox), dtype=np.float32, compression="gzip", chunks=(chunk_rows, nvox)
            )
            ds_inc = f.create_dataset("incident_energies", shape=(campaign.n, 1), dtype=np.float64, compression="gzip")
            row = 0
            for s in specs:
                with h5py.File(s.output, "r") as sf_:
                    inc = sf_["incident"][...]
                    vis = _shard_cells(sf_, campaign.geometry, inc, thresholds)
                k = len(inc)
                ds_sh[row : row + k] = (vis / sf).astype(np.float32)
                ds_inc[row : row + k, 0] = inc.astype(np.float64)
                row += k
            extra = f.create_group("showerforge")
            extra.attrs["description"] = "per-event Geant4 bookkeeping (MeV, not divided by the sampling fraction)"
            outside = np.concatenate([_read_shard(s, "sensor_outside") for s in specs])
            absorber = np.concatenate([_read_shard(s, "absorber") for s in specs])
            extra.create_dataset("sensor_outside_grid_mev", data=outside.astype(np.float32), compression="gzip")
            extra.create_dataset("absorber_mev", data=absorber.astype(np.float32), compression="gzip")
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
            f.attrs["format"] = "calochallenge"
            f.attrs["geometry"] = geo.to_json()  # last: nothing may overwrite the geometry
            f.attrs["showerforge_version"] = __version__
    return out


def _shard_points(f: h5py.File, geometry: Geometry, incident: np.ndarray) -> Any:
    from showerforge.data.points import PointClouds, fine_hits_to_points

    pts = fine_hits_to_points(
        geometry, f["hits_layer"][...], f["hits_row"][...], f["hits_col"][...], f["hits_mev"][...]
    )
    return PointClouds(pts, f["hits_offsets"][...], incident, geometry)


def _shard_visible(f: h5py.File) -> np.ndarray:
    """Visible energy in the readout of each shard event (MeV)."""
    if "visible" in f:
        return f["visible"][...].sum(axis=1, dtype=np.float64)
    off = f["hits_offsets"][...]
    ev = np.repeat(np.arange(len(off) - 1), np.diff(off))
    return np.bincount(ev, weights=f["hits_mev"][...].astype(np.float64), minlength=len(off) - 1)


def _shard_cells(f: h5py.File, geometry: Geometry, incident: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """(n, n_voxels) float64 visible cell energies of one shard (the fine squares summed per cell, thresholded)."""
    if "visible" in f:
        return f["visible"][...].astype(np.float64)
    from showerforge.data.points import points_to_cells

    cells = points_to_cells(_shard_points(f, geometry, incident), geometry, threshold_mip=0.0)
    out = cells.dense(np.float64)
    if thresholds is not None:
        layer = geometry.voxel_layer()
        out[out < thresholds[layer][None, :]] = 0.0
    return out


def _merge_points(campaign: CaloCampaign, specs: list[ShardSpec], geo: Geometry, attrs: dict[str, Any]) -> Path:
    """Stream the shards' fine squares into a point-cloud file (atomically)."""
    from showerforge.data.points import PointsWriter

    pdg = {"e-": 11, "e+": -11, "gamma": 22, "pi+": 211, "pi-": -211}.get(campaign.particle, 0)
    with PointsWriter(campaign.output, campaign.n, geo, attrs) as w:
        for s in specs:
            with h5py.File(s.output, "r") as f:
                clouds = _shard_points(f, campaign.geometry, f["incident"][...])
                extras = {
                    "layer_visible_mev": f["layer_mev"][...],  # per sensor layer, summed by Geant4 (C++)
                    "sensor_outside_grid_mev": f["sensor_outside"][...],
                    "absorber_mev": f["absorber"][...],
                }
            clouds.pdg = np.full(len(clouds), pdg, np.int32)
            w.add(clouds, extras)
    return campaign.output


def _read_shard(spec: ShardSpec, key: str) -> np.ndarray:
    with h5py.File(spec.output, "r") as f:
        return f[key][...]


def simulate_shower_file(
    *,
    geometry: str = "ds2",
    particle: str = "e-",
    energy: str = "1:100GeV",
    n: int = 1000,
    seed: int = 0,
    output: str | Path,
    spectrum: str | None = None,
    workers: int | None = None,
    shard_size: int = 250,
    physics: str = "standard",
    cut_mm: float = 0.7,
    sampling_fraction: float | None = None,
    scheduler: str | None = None,
    keep_shards: bool = False,
    progress: bool = True,
    on_status: Callable[[str], None] | None = None,
    points: bool = False,
    threshold_mip: float = 0.5,
) -> Path:
    """Geant4 showers into a CaloChallenge-format file (``showerforge simulate calo``).

    Args:
        geometry: preset (``ds2``, ``ds3``, ``mini``) or a JSON geometry file.
        particle: ``e-``, ``e+``, ``gamma``; ``pi+``, ``pi-`` with ``physics="FTFP_BERT"`` or ``"QGSP_BERT"``.
        energy: with units: ``"10GeV"``, ``"1,10,100GeV"``, ``"1:100GeV"``.
        n: showers.
        seed: campaign seed (same seed and shard size -> identical showers).
        output: HDF5 file to write (atomically); an interrupted campaign resumes.
        spectrum: ``fixed``, ``list``, ``uniform``, ``log-uniform`` (default by the form of ``energy``).
        workers: local processes (default: all cores).
        shard_size, physics, cut_mm, sampling_fraction, scheduler, keep_shards: as on the command line.
        progress: progress bar (plain lines when not on a terminal).
        on_status: called with one-line status messages (what runs where, resume, merge).
        points: write a point-cloud file (``ild-ecal``, ``ild-hcal``, ``ild-ecal-hcal``).
        threshold_mip: cell readout threshold in MIPs (cell files of those geometries).

    Returns:
        The output path.
    """
    from showerforge.geometry import get_geometry
    from showerforge.simulate.energies import parse_energy

    campaign = CaloCampaign(  # checks the settings (energy range, particle, geometry) before anything is created
        geometry=get_geometry(geometry),
        particle=particle,
        energy=parse_energy(energy, spectrum),
        n=n,
        seed=seed,
        output=Path(output),
        shard_size=shard_size,
        physics=physics,
        production_cut_mm=cut_mm,
        sampling_fraction=sampling_fraction,
        points=points,
        threshold_mip=threshold_mip,
    )
    check_writable(output)
    n_workers = workers or os.cpu_count() or 1
    say = on_status or (lambda message: None)
    with campaign_lock(output):  # refuse a second campaign on this output before announcing anything
        return run_campaign(
            campaign, workers=n_workers, scheduler=scheduler, progress=progress, keep_shards=keep_shards, on_status=say
        )
