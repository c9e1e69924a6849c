"""Tiny end-to-end runs: train -> checkpoint -> resume -> load (weights_only) -> generate."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch

from showerforge.data.calo import CaloFile, validate_file, write_showers
from showerforge.generate import energies_from, generate_showers, sample_array
from showerforge.generate.calo_voxels import load_model
from showerforge.geometry import PRESETS
from showerforge.runs import CheckpointError, file_sha256, read_checkpoint, save_checkpoint
from showerforge.training import TrainError, TrainingData, lr_at, train_model

torch.set_num_threads(1)

TINY = {"d_model": 16, "n_blocks": 1, "n_heads": 2, "steps": 2}
KW = dict(
    batch_size=64, lr=1e-3, val_fraction=0.1, seed=0, device="cpu", progress=False, config_overrides=TINY, num_threads=1
)


def toy_showers(n, geometry=PRESETS["mini"], seed=0):
    """EM-like toy showers in MeV: gamma longitudinal profile, exponential radial profile, hits."""
    rng = np.random.default_rng(seed)
    n_l, n_a, n_r = geometry.shape
    dr = geometry.readout[0].r_edges_mm[1]
    inc = np.exp(rng.uniform(math.log(1e3), math.log(1e4), n))
    showers = np.zeros((n, n_l * n_a * n_r))
    for i, e in enumerate(inc):
        hits = max(5, rng.poisson(e / 25.0))
        depth = rng.gamma(2.0 + 0.4 * math.log(e / 8.0), 1.0, hits)
        layer = np.clip(depth.astype(int), 0, n_l - 1)
        r = rng.exponential(6.0, hits) * (1 + 0.15 * layer)
        idx = (layer * n_a + rng.integers(0, n_a, hits)) * n_r + np.minimum((r / dr).astype(int), n_r - 1)
        w = rng.exponential(1.0, hits)
        np.add.at(showers[i], idx[r < n_r * dr], (w / w.sum())[r < n_r * dr] * 0.95 * e)
    return inc.astype(np.float32), showers.astype(np.float32)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toy_mini.h5"
    inc, sh = toy_showers(300)
    write_showers(path, inc, sh, PRESETS["mini"], {"particle": "e-", "spectrum": "log-uniform 1-10 GeV"})
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_file):
    out = tmp_path_factory.mktemp("runs") / "run"
    train_model(data_file, "cfm-voxel", out, epochs=2, **KW)
    return out


def test_checkpoint_layout(run_dir, data_file):
    ckpt = read_checkpoint(run_dir)
    assert ckpt["epoch"] == 2 and ckpt["model_name"] == "cfm-voxel"
    assert ckpt["model_config"]["d_model"] == 16 and ckpt["model_config"]["token_sizes"] == [49] * 12
    assert ckpt["provenance"]["sha256"] == file_sha256(data_file)
    assert ckpt["provenance"]["n_train"] + ckpt["provenance"]["n_val"] == 300
    assert ckpt["geometry"]["name"] == "mini" and ckpt["preprocessing"]["kind"] == "calo-factorised"
    assert len(ckpt["history"]) == 2 and all(np.isfinite(h["val_loss"]) for h in ckpt["history"])
    for key in ("model", "ema", "optimizer"):
        assert isinstance(ckpt[key], dict)
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model"] == ckpt["model_config"] and cfg["train"]["epochs"] == 2
    assert not list(run_dir.glob("*.part"))


def test_resume_after_interruption_matches_uninterrupted(tmp_path, data_file, run_dir, monkeypatch):
    out = tmp_path / "resumed"
    real_epoch = TrainingData.epoch

    def interrupted(self, epoch, batch_size):
        if epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C at the start of the second epoch
        return real_epoch(self, epoch, batch_size)

    monkeypatch.setattr(TrainingData, "epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_model(data_file, "cfm-voxel", out, epochs=2, **KW)
    assert read_checkpoint(out)["epoch"] == 1
    monkeypatch.setattr(TrainingData, "epoch", real_epoch)
    second = train_model(data_file, "cfm-voxel", out, epochs=2, **KW)
    assert second.epochs_run == 1 and second.epochs_completed == 2
    assert [h["epoch"] for h in second.history] == [1, 2]
    a, b = read_checkpoint(out), read_checkpoint(run_dir)
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    again = train_model(data_file, "cfm-voxel", out, epochs=2, **KW)  # nothing left to do
    assert again.epochs_run == 0 and again.epochs_completed == 2
    longer = train_model(data_file, "cfm-voxel", out, epochs=3, **KW)  # extend a finished run
    assert longer.epochs_run == 1 and read_checkpoint(out)["epoch"] == 3


def test_resume_refuses_changed_settings(tmp_path, data_file, run_dir):
    with pytest.raises(TrainError, match="train.lr"):
        train_model(data_file, "cfm-voxel", run_dir, epochs=3, **{**KW, "lr": 5e-4})
    with pytest.raises(TrainError, match="resume=True"):
        train_model(data_file, "cfm-voxel", run_dir, epochs=3, **{**KW, "resume": False})


def test_max_minutes_stops_early(tmp_path, data_file):
    kw = {**KW, "progress": True}
    res = train_model(data_file, "cfm-voxel", tmp_path / "short", epochs=50, max_minutes=1e-4, **kw)
    assert res.stopped_early and res.epochs_completed == 1


def test_generate_file_and_attributes(tmp_path, run_dir, data_file):
    inc = energies_from(data_file)[:40]
    assert inc.shape == (40,) and (inc > 1e3).all()
    out = generate_showers(run_dir, inc, tmp_path / "gen.h5", batch_size=16, seed=7, steps=3, solver="rk4")
    assert validate_file(out).ok
    with CaloFile.open(out) as f:
        got_inc, showers = f.read()
        attrs = f.attrs
        assert f.geometry.same_readout(PRESETS["mini"])
    np.testing.assert_allclose(got_inc, inc)
    assert showers.shape == (40, 576) and (showers >= 0).all() and showers.sum() > 0
    assert attrs["model"] == "cfm-voxel" and attrs["checkpoint_sha256"] == file_sha256(run_dir / "checkpoint.pt")
    assert attrs["solver"] == "rk4" and attrs["steps"] == 3 and attrs["nfe"] == 12 and attrs["seed"] == 7
    assert attrs["particle"] == "e-" and attrs["training_data_sha256"] == file_sha256(data_file)
    # seeded: same file contents again; another seed differs
    again = generate_showers(run_dir, inc, tmp_path / "gen2.h5", batch_size=16, seed=7, steps=3, solver="rk4")
    other = generate_showers(run_dir, inc, tmp_path / "gen3.h5", batch_size=16, seed=8, steps=3, solver="rk4")
    with h5py.File(again) as f2, h5py.File(other) as f3:
        np.testing.assert_array_equal(f2["showers"][...], showers)
        assert not np.array_equal(f3["showers"][...], showers)


def test_sample_array_defaults_and_raw_weights(run_dir):
    sur = load_model(run_dir, "cpu")
    assert sur.name == "cfm-voxel" and sur.epoch == 2 and sur.geometry.name == "mini"
    inc = np.array([2000.0, 5000.0, 9000.0])
    a = sample_array(sur, inc, seed=1)
    assert a.shape == (3, 576) and (a >= 0).all()
    assert np.array_equal(a, sample_array(sur, inc, seed=1))
    raw = sample_array(load_model(run_dir / "checkpoint.pt", ema=False), inc, seed=1)
    assert raw.shape == a.shape
    with pytest.raises(ValueError, match="> 0 MeV"):
        sample_array(sur, np.array([-1.0]))


class _Payload:
    """An arbitrary class: pickling it would let a checkpoint run code on load."""


def test_pickled_objects_are_refused(tmp_path, run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    ckpt["extra"] = _Payload()
    bad = tmp_path / "bad.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_model(bad)
    not_ours = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(1)}, not_ours)
    with pytest.raises(CheckpointError, match="not a showerforge checkpoint"):
        read_checkpoint(not_ours)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_save_checkpoint_is_atomic(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"model_config": {"name": "x"}, "w": torch.ones(2)})
    assert read_checkpoint(path)["model_config"] == {"name": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_streaming_matches_in_memory(data_file):
    kw = dict(val_fraction=0.2, seed=3, device=torch.device("cpu"))
    mem = TrainingData(data_file, **kw)
    stream = TrainingData(data_file, preprocessing=mem.preprocessing, max_memory_gb=0.0, **kw)
    assert mem.in_memory and not stream.in_memory
    assert torch.equal(mem.val[0], stream.val[0])
    rows = [torch.cat([x for x, _ in d.epoch(0, 50)]) for d in (mem, stream)]
    assert rows[0].shape == rows[1].shape == (240, mem.preprocessing.n_features)
    key = lambda t: t[torch.argsort(t[:, 1] * 1e3 + t[:, 2])]  # noqa: E731
    assert torch.allclose(key(rows[0]), key(rows[1]))
    assert mem.batches_per_epoch(50) == len(list(stream.epoch(1, 50))) == 5


def test_learning_rate_schedule():
    assert lr_at(0, 100, 1e-3, "constant", 10) == pytest.approx(1e-4)
    assert lr_at(50, 100, 1e-3, "constant", 10) == pytest.approx(1e-3)
    assert lr_at(50, 100, 1e-3, "cosine", 10) == pytest.approx(5e-4)
    assert lr_at(100, 100, 1e-3, "cosine", 10) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_at(0, 1, 1e-3, "step", 0)


def test_run_saved_before_x_gain_resumes_with_its_architecture(tmp_path, data_file):
    tiny = {"d_model": 16, "n_blocks": 1, "n_heads": 2, "energy_width": 16, "energy_blocks": 1, "energy_steps": 2}
    kw = {**KW, "config_overrides": {**tiny, "x_gain": False}}
    out = tmp_path / "old"
    train_model(data_file, "cfm-factorised", out, epochs=1, **kw)
    # rewrite the checkpoint as a release without the x_gain hyperparameter saved it
    path = out / "checkpoint.pt"
    raw = torch.load(path, weights_only=True)
    cfg = json.loads(raw["model_config"])
    del cfg["x_gain"]
    raw["model_config"] = json.dumps(cfg)
    torch.save(raw, path)
    kw["config_overrides"] = tiny
    res = train_model(data_file, "cfm-factorised", out, epochs=2, **kw)
    assert res.epochs_run == 1 and read_checkpoint(out)["model_config"]["x_gain"] is False
    with pytest.raises(TrainError, match="model.x_gain: False -> True"):
        train_model(data_file, "cfm-factorised", out, epochs=3, **{**kw, "config_overrides": {**tiny, "x_gain": True}})


def test_unknown_option_is_refused_before_any_work(tmp_path, data_file, run_dir):
    """A misspelt keyword (``epoch`` for ``epochs``) is a TypeError, not silently ignored."""
    with pytest.raises(TypeError, match="epoch"):
        train_model(data_file, "cfm-voxel", tmp_path / "typo", epoch=3, **KW)
    assert not (tmp_path / "typo").exists()
    with pytest.raises(TypeError, match="n_steps"):
        generate_showers(run_dir, np.full(3, 5e3), tmp_path / "g.h5", n_steps=4)
    assert not (tmp_path / "g.h5").exists()
