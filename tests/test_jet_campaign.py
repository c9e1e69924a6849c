"""Jet campaigns through the CLI: real Pythia8 + FastJet shards, identical arrays for identical seeds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from showerforge.data.jetnet import read_jets

CLI = [sys.executable, "-m", "showerforge.cli", "simulate", "jets"]
ARGS = ["--type", "w,z", "--n", "20", "--shard-size", "10", "--no-mpi", "--seed", "5"]


def _run(out, *extra):
    proc = subprocess.run([*CLI, *ARGS, *extra, "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return read_jets(out)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("j") / "jets.h5", "--workers", "2")


def test_types_counts_and_masses(first):
    assert len(first) == 40 and first.particle_features.shape == (40, 30, 4)
    assert np.array_equal(np.bincount(first.jet_type, minlength=5), [0, 0, 0, 20, 20])
    mass = first.jet_features[:, 2]
    # hadronic W and Z jets (R = 0.8, no MPI): median mass near the boson mass
    assert 70 < np.median(mass[first.jet_type == 3]) < 95
    assert 80 < np.median(mass[first.jet_type == 4]) < 105


def test_same_seed_same_arrays_any_worker_count(first, tmp_path):
    again = _run(tmp_path / "again.h5", "--workers", "1", "--keep-shards")
    assert np.array_equal(again.particle_features, first.particle_features)
    assert np.array_equal(again.jet_features, first.jet_features)
    shards = list((tmp_path / "again.h5.shards").glob("shard-*.h5"))
    assert len(shards) == 4
    # resume: every shard is already done, nothing is simulated again
    stamps = {p: p.stat().st_mtime_ns for p in shards}
    proc = subprocess.run(
        [*CLI, *ARGS, "--workers", "1", "--keep-shards", "-o", str(tmp_path / "again.h5")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and "4 of 4 shards already done" in proc.stderr
    assert all(p.stat().st_mtime_ns == s for p, s in stamps.items())


def test_bad_inputs_one_line_errors(tmp_path):
    for extra, words in (
        (["--type", "x"], "unknown jet_type"),
        (["--pt", "900:800"], "empty jet pT window"),
        (["--particles", "0"], "--particles"),
    ):
        proc = subprocess.run([*CLI, *extra, "-o", str(tmp_path / "x.h5")], capture_output=True, text=True)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_jet_file(first, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "showerforge.cli", "inspect", first.path], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "40 x 30 particles" in proc.stdout and "type w" in proc.stdout and "type z" in proc.stdout
