"""The command line end to end on a tiny real sample: simulate -> train -> generate -> evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import h5py
import numpy as np
import pytest

CLI = [sys.executable, "-m", "showerforge.cli"]


def _ok(*args, timeout=600):
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    _ok(
        "simulate",
        "calo",
        "--geometry",
        "mini",
        "--energy",
        "1:5GeV",
        "--n",
        "160",
        "--seed",
        "3",
        "--shard-size",
        "80",
        "--workers",
        "2",
        "-o",
        d / "ref.h5",
    )
    _ok(
        "train",
        "--data",
        d / "ref.h5",
        "-o",
        d / "run",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--set",
        "d_model=16",
        "--set",
        "n_blocks=1",
    )
    _ok("generate", "--model", d / "run", "--energies-from", d / "ref.h5", "--steps", "2", "-o", d / "gen.h5")
    return d


def test_generated_file_is_calochallenge_and_named(chain):
    with h5py.File(chain / "ref.h5", "r") as r, h5py.File(chain / "gen.h5", "r") as g:
        assert g["showers"].shape == r["showers"].shape and g["showers"].dtype == np.float32
        assert np.array_equal(g["incident_energies"][...], r["incident_energies"][...])
        assert (g["showers"][...] >= 0).all()
        assert g.attrs["model"] == "cfm-voxel" and len(g.attrs["checkpoint_sha256"]) == 64
        assert g.attrs["solver"] and int(g.attrs["steps"]) == 2
    cfg = json.loads((chain / "run" / "config.json").read_text())
    assert "d_model" in json.dumps(cfg) and (chain / "run" / "checkpoint.pt").exists()


def test_same_seed_same_file(chain, tmp_path):
    _ok(
        "generate",
        "--model",
        chain / "run",
        "--energies-from",
        chain / "ref.h5",
        "--steps",
        "2",
        "-o",
        tmp_path / "again.h5",
    )
    with h5py.File(chain / "gen.h5", "r") as a, h5py.File(tmp_path / "again.h5", "r") as b:
        assert np.array_equal(a["showers"][...], b["showers"][...])


def test_evaluate_prints_summary_and_writes_report(chain):
    proc = _ok(
        "evaluate",
        "--reference",
        chain / "ref.h5",
        "--candidate",
        chain / "gen.h5",
        "--quick",
        "--no-plots",
        "-o",
        chain / "report",
    )
    assert "classifier high-level AUC" in proc.stdout and "report:" in proc.stdout
    metrics = json.loads((chain / "report" / "metrics.json").read_text())
    assert {"candidate_vs_reference", "reference_vs_reference"} <= set(metrics)


def test_user_errors_are_one_line(chain, tmp_path):
    cases = [
        (["generate", "--model", chain / "run", "-o", tmp_path / "x.h5"], "--energies-from"),
        (["generate", "--model", tmp_path / "nope", "--energy", "1GeV", "--n", "2", "-o", tmp_path / "x.h5"], "nope"),
        (["train", "--data", chain / "ref.h5", "-o", chain / "run", "--set", "d_model"], "KEY=VALUE"),
        (["train", "--data", chain / "ref.h5", "--model", "no-such-model", "-o", tmp_path / "r"], "unknown model"),
        (
            ["evaluate", "--reference", chain / "ref.h5", "--candidate", tmp_path / "missing.h5", "-o", tmp_path / "r"],
            "missing.h5",
        ),
    ]
    for args, words in cases:
        proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr[-1500:])
        assert words in proc.stderr and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_distill_makes_a_one_step_run_that_generates(chain, tmp_path):
    from showerforge.runs import read_checkpoint
    from showerforge.runs.checkpoint import file_sha256

    fast = tmp_path / "fast"
    args = ["distill", "--model", chain / "run", "--steps", "1", "--n-pairs", "64", "--epochs", "1"]
    proc = _ok(*args, "--batch-size", "16", "--trajectory-steps", "2", "-o", fast)
    assert "1-step student" in proc.stdout
    cfg = read_checkpoint(fast)["model_config"]
    assert (cfg["name"], cfg["solver"], cfg["steps"]) == ("cfm-voxel", "euler", 1)
    assert cfg["distillation"]["teacher_sha256"] == file_sha256(chain / "run" / "checkpoint.pt")
    assert cfg["distillation"]["init"] == "teacher" and cfg["distillation"]["n_pairs"] == 64
    _ok("generate", "--model", fast, "--energies-from", chain / "ref.h5", "-o", tmp_path / "g.h5")
    with h5py.File(tmp_path / "g.h5", "r") as g:
        assert int(g.attrs["nfe"]) == 1 and g.attrs["solver"] == "euler"
        assert np.isfinite(g["showers"][...]).all() and (g["showers"][...] >= 0).all()
    # a 2-step student reuses the stored 2-step grid; a 4-step one cannot
    _ok(*args[:3], "--steps", "2", *args[5:], "--trajectories", fast / "teacher_trajectories.h5", "-o", tmp_path / "f2")
    assert read_checkpoint(tmp_path / "f2")["model_config"]["steps"] == 2
    cases = [
        ([*args, "-o", chain / "run"], "teacher's"),
        ([*args[:3], "--steps", "2", *args[5:], "--trajectory-steps", "3", "-o", tmp_path / "x"], "multiple"),
        (
            [
                *args[:3],
                "--steps",
                "4",
                *args[5:],
                "--trajectories",
                fast / "teacher_trajectories.h5",
                "-o",
                tmp_path / "y",
            ],
            "4-step",
        ),
        ([*args[:2], tmp_path / "nothing-here", *args[3:], "-o", tmp_path / "z"], "nothing-here"),
        (
            [
                *args[:2],
                tmp_path / "f2",
                *args[3:],
                "--trajectories",
                fast / "teacher_trajectories.h5",
                "-o",
                tmp_path / "w",
            ],
            "another teacher",
        ),
    ]
    (tmp_path / "a-file").write_text("not a folder")
    cases += [
        ([*args, "--energies-from", tmp_path / "missing.h5", "-o", tmp_path / "v"], "missing.h5"),
        ([*args, "-o", tmp_path / "a-file" / "run"], "a-file"),
    ]
    for case, words in cases:
        p = subprocess.run([*CLI, *map(str, case)], capture_output=True, text=True, timeout=300)
        assert p.returncode == 2, (case, p.stderr[-1500:])
        assert words in p.stderr and "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not any((tmp_path / d).exists() for d in ("x", "y", "w", "v"))  # refused before anything is created
    from showerforge.errors import UserError
    from showerforge.generate.distill import distill as distill_with
    from showerforge.kinds import load

    distill = partial(distill_with, load=load)

    with pytest.raises(UserError, match="finite energies > 0 MeV"):
        distill(chain / "run", tmp_path / "nan", energies_mev=np.array([5e3, np.nan]), progress=False)
    assert not (tmp_path / "nan").exists()
