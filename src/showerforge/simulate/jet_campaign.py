"""Sharded Pythia8 + FastJet campaigns, run like the calorimeter campaigns.

Each jet type is split into shards of ``shard_size`` jets; shard ``i`` (counted over all types)
gets its own seed (derived from the campaign seed and ``i``), runs as its own process through Dask
(:func:`showerforge.simulate.shards.execute_shards`), and is written atomically into
``OUTPUT.shards/``. Re-running the same command skips finished shards; the merge writes the
output atomically. Same seed and shard layout give identical arrays.
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

from showerforge.data.io import check_writable
from showerforge.data.jetnet import merge_jet_files
from showerforge.errors import UserError
from showerforge.simulate.campaign import shard_seed
from showerforge.simulate.shards import ShardTask, campaign_lock, run_sharded

__all__ = ["simulate_jet_file", "JetCampaign", "run_jet_campaign"]

PYTHIA_MAX_SEED = 900_000_000


@dataclass
class JetCampaign:
    """Jets of several types (see module docstring).

    Args:
        configs: one :class:`showerforge.simulate.jets.JetConfig` per jet type.
        n_per_type: jets of each type.
        seed: campaign seed.
        output: final JetNet-format HDF5 file.
        shard_size: jets per shard.
    """

    configs: list[Any]
    n_per_type: int
    seed: int
    output: Path
    shard_size: int = 2000
    extra_attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        if self.n_per_type < 1:
            raise UserError(f"--n must be >= 1 jets per type, got {self.n_per_type}")
        if self.shard_size < 1:
            raise UserError(f"--shard-size must be >= 1, got {self.shard_size}")
        if not self.configs:
            raise UserError("no jet type given; use --type g,q,t,w,z or a subset")

    @property
    def shard_dir(self) -> Path:
        return self.output.with_name(self.output.name + ".shards")

    def config_hash(self) -> str:
        d = {
            "configs": [asdict(c) for c in self.configs],
            "n": self.n_per_type,
            "seed": self.seed,
            "shard_size": self.shard_size,
        }
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def shard_specs(self) -> list[dict[str, Any]]:
        specs, h, index = [], self.config_hash(), 0
        full, rest = divmod(self.n_per_type, self.shard_size)
        sizes = [self.shard_size] * full + ([rest] if rest else [])
        for cfg in self.configs:
            for size in sizes:
                out = self.shard_dir / f"shard-{index:05d}-{cfg.jet_type}.h5"
                specs.append(
                    {
                        "index": index,
                        "config": asdict(cfg),
                        "n_jets": size,
                        "seed": shard_seed(self.seed, index) % PYTHIA_MAX_SEED,
                        "output": str(out),
                        "progress_file": str(out.with_suffix(".progress")),
                        "campaign_hash": h,
                    }
                )
                index += 1
        return specs


def _complete(spec: dict[str, Any]) -> bool:
    path = Path(spec["output"])
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("campaign_hash")
            return (
                stored in (spec["campaign_hash"], json.dumps(spec["campaign_hash"]))
                and f["jet_type"].shape[0] == spec["n_jets"]
            )
    except (OSError, KeyError):
        return False


def run_jet_campaign(
    campaign: JetCampaign,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    keep_shards: bool = False,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) a jet campaign and merge it into ``campaign.output``."""
    check_writable(campaign.output)
    with campaign_lock(campaign.output):
        say = on_status or (lambda msg: None)
        specs = campaign.shard_specs()

        def task(s: dict[str, Any]) -> ShardTask:
            path = Path(s["output"]).with_suffix(".json")
            path.write_text(json.dumps(s))
            return ShardTask(s["index"], s["seed"], s["n_jets"], str(path), s["progress_file"])

        run_sharded(
            campaign.shard_dir,
            specs,
            complete=_complete,
            task=task,
            module="showerforge.simulate.jet_shard",
            workers=workers,
            scheduler=scheduler,
            progress=progress,
            n_total=campaign.n_per_type * len(campaign.configs),
            label="simulating jets",
            unit="jets",
            say=say,
        )
        say(f"merging {len(specs)} shards into {campaign.output}")
        merge_jet_files(
            [s["output"] for s in specs],
            campaign.output,
            attrs={
                "campaign_seed": campaign.seed,
                "shard_size": campaign.shard_size,
                "n_per_type": campaign.n_per_type,
                **campaign.extra_attrs,
            },
        )
        if not keep_shards:
            shutil.rmtree(campaign.shard_dir, ignore_errors=True)
        return campaign.output


def simulate_jet_file(
    *,
    types: str | list[str] = "g,q,t,w,z",
    n: int = 1000,
    seed: int = 0,
    output: str | Path,
    particles: int = 30,
    pt_gev: tuple[float, float] = (800.0, 1600.0),
    eta_max: float = 2.5,
    radius: float = 0.8,
    mpi: bool = True,
    pythia: tuple[str, ...] | list[str] = (),
    workers: int | None = None,
    shard_size: int = 2000,
    scheduler: str | None = None,
    keep_shards: bool = False,
    progress: bool = True,
    on_status: Callable[[str], None] | None = None,
) -> Path:
    """Pythia8 + FastJet jets into a JetNet-format file (``showerforge simulate jets``).

    Args:
        types: jet types, ``"t"``, ``"g,q"`` or a list.
        n: jets per type.
        seed: campaign seed.
        output: HDF5 file to write (atomically); an interrupted campaign resumes.
        particles: highest-pT constituents kept per jet (zero-padded).
        pt_gev: jet pT window in GeV.
        eta_max, radius, mpi: jet |eta| cut, anti-kT R, multiparton interactions.
        pythia: further Pythia settings, ``"Key = value"`` (a tune, ``PhaseSpace:pTHatMin``, ...),
            read after showerforge's own, so they win; checked before the campaign starts.
        workers, shard_size, scheduler, keep_shards, progress: as on the command line.
        on_status: called with one-line status messages.
    """
    from showerforge.simulate.jets import JetConfig, check_pythia_settings
    from showerforge.simulate.shards import check_scheduler

    check_writable(output)
    names = [t.strip().lower() for t in (types.split(",") if isinstance(types, str) else types) if t.strip()]
    configs = [
        JetConfig(
            t,
            n_particles=particles,
            pt_min_gev=pt_gev[0],
            pt_max_gev=pt_gev[1],
            eta_max=eta_max,
            mpi=mpi,
            radius=radius,
            pythia=tuple(pythia),
        )
        for t in names
    ]
    check_pythia_settings(configs[0].pythia if configs else ())
    campaign = JetCampaign(configs, n, seed, Path(output), shard_size=shard_size)
    n_workers = workers or os.cpu_count() or 1
    say = on_status or (lambda message: None)
    with campaign_lock(output):
        if scheduler:
            check_scheduler(scheduler)
        say(
            f"simulating {n} jets of each type {','.join(names)}, pT {pt_gev[0]:g}-{pt_gev[1]:g} GeV, R = {radius:g}, "
            f"MPI {'on' if mpi else 'off'}{''.join('; ' + c for c in configs[0].pythia) if configs else ''}, "
            f"on {scheduler or f'{n_workers} local workers'}"
        )
        return run_jet_campaign(
            campaign, workers=n_workers, scheduler=scheduler, progress=progress, keep_shards=keep_shards, on_status=say
        )
