"""torchrun + DistributedDataParallel with 2 CPU processes (gloo): loss, rank-0 files, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from test_train_generate import toy_showers

from showerforge.data.calo import write_showers
from showerforge.geometry import PRESETS
from showerforge.runs import read_checkpoint
from showerforge.training import train_model

TINY = '{"d_model": 16, "n_blocks": 1, "n_heads": 2, "steps": 2}'


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "toy_mini.h5"
    inc, sh = toy_showers(400, seed=3)
    write_showers(path, inc, sh, PRESETS["mini"], {"particle": "e-"})
    return path


def _torchrun(data, out, epochs, *extra):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "showerforge.cli",
        "train",
        "--data",
        str(data),
        "-o",
        str(out),
        "--model",
        "cfm-voxel",
        "--epochs",
        str(epochs),
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--threads",
        "1",
        *extra,
    ]
    for kv in json.loads(TINY).items():
        cmd += ["--set", f"{kv[0]}={kv[1]}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def ddp_run(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run2"
    _torchrun(data_file, out, 2)
    return out


def test_two_processes_match_one_on_the_same_global_batch(data_file, ddp_run, tmp_path):
    single = train_model(
        data_file,
        "cfm-voxel",
        tmp_path / "run1",
        epochs=2,
        batch_size=64,
        seed=0,
        device="cpu",
        progress=False,
        config_overrides=json.loads(TINY),
        num_threads=1,
    )
    two = read_checkpoint(ddp_run)
    assert two["epoch"] == 2 and two["step"] == single.history[-1]["epoch"] * -(-360 // 64)
    for a, b in zip(single.history, two["history"]):
        # same weights at the start, same global batches; only the flow-matching noise differs
        assert b["loss"] == pytest.approx(a["loss"], rel=0.03)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=0.03)


def test_rank_zero_alone_writes(ddp_run):
    assert sorted(p.name for p in ddp_run.iterdir()) == ["checkpoint.pt", "config.json", "history.json"]
    assert json.loads((ddp_run / "config.json").read_text())["processes"] == 2


def test_resume_is_bit_identical(data_file, ddp_run, tmp_path):
    out = tmp_path / "resumed"
    _torchrun(data_file, out, 2, "--max-minutes", "1e-9")  # "interrupted" after one epoch
    assert read_checkpoint(out)["epoch"] == 1
    _torchrun(data_file, out, 2)
    a, b = read_checkpoint(out), read_checkpoint(ddp_run)
    assert a["epoch"] == b["epoch"] == 2
    for key in b["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key
