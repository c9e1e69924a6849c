"""Entry point of one Geant4 shard: ``python -m showerforge.simulate.calo_shard SPEC.json``.

Runs in its own short-lived process (Geant4 keeps one state per process), writes the shard
atomically, then leaves with ``os._exit`` (the interpreter may crash at teardown after Geant4 ran).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["run_shard"]


def run_shard(spec_path: str | Path) -> None:
    """Simulate the shard described by ``spec_path`` and write its HDF5 file atomically."""
    from showerforge.simulate.g4data import ensure_geant4_env

    spec = json.loads(Path(spec_path).read_text())
    ensure_geant4_env()

    import h5py
    import numpy as np

    from showerforge.data.calo import atomic_output
    from showerforge.geometry import Geometry
    from showerforge.simulate.calo_g4 import simulate_showers
    from showerforge.simulate.campaign import SHARD_FORMAT
    from showerforge.simulate.shards import write_progress

    progress_file = Path(spec["progress_file"])

    def progress(done: int) -> None:
        write_progress(progress_file, done)

    geometry = Geometry.from_json(spec["geometry_json"])
    pos = spec.get("position_mm") or (0.0, 0.0, None)
    batch = simulate_showers(
        geometry,
        spec["particle"],
        np.asarray(spec["energies_mev"], dtype=np.float64),
        int(spec["seed"]),
        physics=spec["physics"],
        production_cut_mm=float(spec["production_cut_mm"]),
        position_mm=tuple(pos),
        direction=tuple(spec.get("direction") or (0.0, 0.0, 1.0)),
        progress=progress,
    )
    with atomic_output(spec["output"]) as tmp:
        with h5py.File(tmp, "w") as f:
            if batch.hits is not None:  # fine squares, sparse (the cells are their sums)
                for key, value in batch.hits.items():
                    f.create_dataset(f"hits_{key}", data=value, compression="gzip")
                f.create_dataset("layer_mev", data=batch.layer_mev, compression="gzip")
            else:
                f.create_dataset("visible", data=batch.showers.astype(np.float32), compression="gzip")
            f.create_dataset("incident", data=np.asarray(batch.incident_mev, dtype=np.float64))
            f.create_dataset("sensor_outside", data=np.asarray(batch.sensor_outside_mev, dtype=np.float64))
            f.create_dataset("absorber", data=np.asarray(batch.absorber_mev, dtype=np.float64))
            f.attrs["format"] = SHARD_FORMAT
            f.attrs["campaign_hash"] = spec["campaign_hash"]
            f.attrs["seed"] = int(spec["seed"])
            f.attrs["provenance"] = json.dumps(batch.provenance, sort_keys=True, default=str)
    progress_file.unlink(missing_ok=True)


def main() -> None:
    """Run the shard named on the command line (see :func:`showerforge.simulate.shards.shard_main`)."""
    from showerforge.simulate.shards import shard_main

    shard_main(run_shard)


if __name__ == "__main__":
    main()
