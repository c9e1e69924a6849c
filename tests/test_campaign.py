"""Geant4 campaigns: identical bytes for identical seeds, resume after a kill, early failures."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from showerforge.geometry import PRESETS
from showerforge.simulate.campaign import CaloCampaign, shard_seed
from showerforge.simulate.energies import parse_energy

CLI = [sys.executable, "-m", "showerforge.cli"]
ARGS = [
    "simulate",
    "calo",
    "--geometry",
    "mini",
    "--particle",
    "e-",
    "--energy",
    "1:2GeV",
    "--n",
    "6",
    "--shard-size",
    "2",
    "--seed",
    "11",
    "--workers",
    "1",
]


def _digest(path: Path) -> str:
    with h5py.File(path, "r") as f:
        return hashlib.sha256(f["showers"][...].tobytes() + f["incident_energies"][...].tobytes()).hexdigest()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    proc = subprocess.run([*CLI, *ARGS, "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def test_shard_seeds_distinct():
    seeds = {shard_seed(7, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**31 for s in seeds)


def test_file_layout_and_attributes(reference_run):
    with h5py.File(reference_run, "r") as f:
        assert f["showers"].shape == (6, PRESETS["mini"].n_voxels) and f["showers"].dtype == np.float32
        assert f["incident_energies"].shape == (6, 1)
        assert f["showers"].compression == "gzip"
        for key in (
            "geometry",
            "particle",
            "spectrum",
            "seed",
            "geant4_version",
            "physics_list",
            "physics_data",
            "showerforge_version",
            "sampling_fraction",
        ):
            assert key in f.attrs, key
        from showerforge.geometry import Geometry

        geo = Geometry.from_json(f.attrs["geometry"])  # the full geometry, with the measured sampling fraction
        assert geo.same_readout(PRESETS["mini"]) and geo.sampling_fraction == pytest.approx(
            f.attrs["sampling_fraction"]
        )
        assert 0.005 < geo.sampling_fraction < 0.05
        inc = f["incident_energies"][:, 0]
        assert np.all((inc >= 1000) & (inc <= 2000))
        # divided by the sampling fraction: deposited / incident close to 1 (leakage and grid edge aside)
        ratio = f["showers"][...].sum(axis=1) / inc
        assert np.all((ratio > 0.6) & (ratio < 1.3)), ratio


def test_same_seed_same_bytes(reference_run, tmp_path):
    """Same seed and shard layout -> identical showers (here with 2 workers instead of 1)."""
    out = tmp_path / "again.h5"
    args = list(ARGS)
    args[args.index("--workers") + 1] = "2"
    proc = subprocess.run([*CLI, *args, "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert _digest(out) == _digest(reference_run)


def test_killed_campaign_resumes_without_redoing_shards(reference_run, tmp_path):
    out = tmp_path / "killed.h5"
    shards = Path(str(out) + ".shards")
    proc = subprocess.Popen(
        [*CLI, *ARGS, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (shards / "shard-00000.h5").exists():
        time.sleep(0.1)
    assert (shards / "shard-00000.h5").exists(), "first shard never finished"
    os.killpg(proc.pid, signal.SIGKILL)  # the campaign and its Geant4 subprocess
    proc.wait()
    assert not out.exists()  # no half file under the final name
    done = sorted(shards.glob("shard-*.h5"))
    stamps = {p.name: p.stat().st_mtime_ns for p in done}
    assert 1 <= len(done) < 3
    res = subprocess.run([*CLI, *ARGS, "-o", str(out), "--keep-shards"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "resuming" in res.stderr
    for name, stamp in stamps.items():
        assert (shards / name).stat().st_mtime_ns == stamp  # finished shards were not redone
    assert _digest(out) == _digest(reference_run)


def test_unwritable_output_fails_before_simulating(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    t0 = time.time()
    proc = subprocess.run([*CLI, *ARGS, "-o", str(blocker / "out.h5")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert time.time() - t0 < 30
    assert not list(tmp_path.glob("**/*.shards"))


def test_bad_campaign_inputs():
    geo = PRESETS["mini"]
    with pytest.raises(ValueError, match="particle"):
        CaloCampaign(geo, "proton", parse_energy("1GeV"), 5, 0, Path("x.h5"))
    from showerforge.geometry import Geometry

    xml_geo = Geometry.from_calochallenge_xml(
        Path(__file__).resolve().parents[1] / "src/showerforge/data/binning/binning_dataset_1_photons.xml"
    )
    with pytest.raises(ValueError, match="no materials"):
        CaloCampaign(xml_geo, "gamma", parse_energy("1GeV"), 5, 0, Path("x.h5"))
