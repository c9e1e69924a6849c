"""Entry point of one jet shard: ``python -m showerforge.simulate.jet_shard SPEC.json``."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["run_jet_shard"]


def run_jet_shard(spec_path: str | Path) -> None:
    """Generate the shard's jets with Pythia8 + FastJet and write them atomically."""
    from showerforge.data.jetnet import write_jets
    from showerforge.simulate.jets import JetConfig, simulate_jets
    from showerforge.simulate.shards import write_progress

    spec = json.loads(Path(spec_path).read_text())
    batch = simulate_jets(
        JetConfig(**spec["config"]),
        int(spec["n_jets"]),
        int(spec["seed"]),
        progress=lambda done: write_progress(spec["progress_file"], done),
    )
    write_jets(spec["output"], batch, attrs={"campaign_hash": spec["campaign_hash"]})
    Path(spec["progress_file"]).unlink(missing_ok=True)


def main() -> None:
    """Run the shard named on the command line (see :func:`showerforge.simulate.shards.shard_main`)."""
    from showerforge.simulate.shards import shard_main

    shard_main(run_jet_shard)


if __name__ == "__main__":
    main()
