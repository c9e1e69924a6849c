"""End to end on real Pythia8 + FastJet jets: train a set model, resume, generate, read back."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from showerforge.data.jetnet import JET_TYPES, read_jets, write_jets
from showerforge.generate.jet_set import generate_jets, load_jet_model
from showerforge.runs import read_checkpoint
from showerforge.simulate.jets import JetConfig, simulate_jets
from showerforge.training import TrainError
from showerforge.training.jet_set import train_jets

torch.set_num_threads(1)

N_PARTICLES = 60  # above the typical multiplicity of these jets, so masks vary
TINY = {"d_model": 16, "d_global": 8, "n_blocks": 1, "steps": 2}
KW = {"batch_size": 32, "seed": 0, "device": "cpu", "progress": False, "num_threads": 1, "config_overrides": TINY}


@pytest.fixture(scope="module")
def jet_file(tmp_path_factory):
    """100 gluon + 100 top jets (MPI off), JetNet format."""
    batches = [
        simulate_jets(JetConfig(t, n_particles=N_PARTICLES, mpi=False), 100, seed=11 + i)
        for i, t in enumerate(("g", "t"))
    ]
    arrays = {
        k: np.concatenate([getattr(b, k) for b in batches]) for k in ("particle_features", "jet_features", "jet_type")
    }
    return write_jets(tmp_path_factory.mktemp("jets") / "jets.h5", arrays)


@pytest.fixture(scope="module")
def run_dir(jet_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    first = train_jets(jet_file, out, epochs=2, max_minutes=1e-9, **KW)  # "interrupted" after one epoch
    assert (first.epochs_run, first.epochs_completed, first.stopped_early) == (1, 1, True)
    second = train_jets(jet_file, out, epochs=2, **KW)
    assert (second.epochs_run, second.epochs_completed) == (1, 2)
    return out


def test_resume_matches_uninterrupted_run(jet_file, run_dir, tmp_path):
    straight = train_jets(jet_file, tmp_path / "straight", epochs=2, **KW)
    a, b = read_checkpoint(run_dir), read_checkpoint(straight.checkpoint)
    assert a["epoch"] == b["epoch"] == 2 and a["data_kind"] == "jet-set"
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_resume_refuses_other_settings(jet_file, run_dir):
    with pytest.raises(TrainError, match="batch_size"):
        train_jets(jet_file, run_dir, epochs=2, **{**KW, "batch_size": 16})
    with pytest.raises(TrainError, match="exists"):
        train_jets(jet_file, run_dir, epochs=2, resume=False, **KW)
    with pytest.raises(TrainError, match="jet-set"):
        train_jets(jet_file, run_dir, model="cfm-voxel", epochs=2, **KW)


def test_generate_reads_back_as_jetnet(run_dir, tmp_path):
    path = generate_jets(run_dir, ["g", "t"], 40, tmp_path / "gen.h5", seed=5, batch_size=25)
    jets = read_jets(path)
    pf, jf = jets.particle_features, jets.jet_features
    assert pf.shape == (80, N_PARTICLES, 4) and jf.shape == (80, 4)
    assert jets.jet_type.tolist() == [JET_TYPES.index("g")] * 40 + [JET_TYPES.index("t")] * 40
    mask = pf[..., 3] > 0
    n_real = mask.sum(1)
    assert np.array_equal(n_real, np.minimum(jf[:, 3], N_PARTICLES))  # masks follow the multiplicity
    assert np.array_equal(mask, np.arange(N_PARTICLES)[None] < n_real[:, None])  # real slots first
    assert (pf[~mask] == 0).all()  # nothing beyond the mask
    assert (np.diff(pf[..., 2], axis=1)[mask[:, 1:]] <= 0).all() and (pf[..., 2][mask] > 0).all()
    assert (jf[:, 0] > 0).all() and (jf[:, 2] >= 0).all() and n_real.min() >= 1
    sur = load_jet_model(run_dir)
    assert jets.attrs["checkpoint_sha256"] == sur.sha256 and jets.attrs["model"] == "cfm-set"
    assert jets.attrs["solver"] == "midpoint" and jets.attrs["steps"] == 2 and jets.attrs["nfe"] == 4
    same = read_jets(generate_jets(run_dir, ["g", "t"], 40, tmp_path / "again.h5", seed=5, batch_size=25))
    assert np.array_equal(same.particle_features, pf) and np.array_equal(same.jet_features, jf)
    other = read_jets(generate_jets(run_dir, "g", 40, tmp_path / "other.h5", seed=6, batch_size=25))
    assert not np.array_equal(other.particle_features, pf[:40])


def test_generate_refuses_untrained_type(run_dir, tmp_path):
    with pytest.raises(ValueError, match="not in the training data"):
        generate_jets(run_dir, "q", 5, tmp_path / "q.h5")
    with pytest.raises(ValueError, match="unknown jet types"):
        generate_jets(run_dir, "b", 5, tmp_path / "b.h5")
    assert not (tmp_path / "q.h5").exists()


def test_type_and_pt_condition(jet_file, tmp_path):
    train_jets(f"{jet_file}:t", tmp_path / "run", condition="type+pt", epochs=1, **KW)
    sur = load_jet_model(tmp_path / "run")
    assert sur.config["n_cond"] == 6 and sur.preprocessing.conditioning.types == ["t"]
    jets = read_jets(generate_jets(tmp_path / "run", "t", 20, tmp_path / "gen.h5", steps=1, solver="euler"))
    assert len(jets) == 20 and jets.attrs["condition"] == "type+pt"


def test_unknown_option_is_refused(jet_file, run_dir, tmp_path):
    with pytest.raises(TypeError, match="batchsize"):
        train_jets(jet_file, tmp_path / "typo", epochs=1, batchsize=8)
    with pytest.raises(TypeError, match="sampler"):
        generate_jets(run_dir, "g", 5, tmp_path / "g.h5", sampler="euler")
    assert not (tmp_path / "typo").exists() and not (tmp_path / "g.h5").exists()


def test_distilled_jet_student_generates_the_trained_mix(run_dir, tmp_path):
    """A 1-step student of the set model: trajectories drawn with the teacher's jet types and
    multiplicities (masks), the student's jets valid JetNet jets with the multiplicity model's counts."""
    import h5py

    from showerforge.generate.distill import distill as distill_with
    from showerforge.kinds import load

    distill = partial(distill_with, load=load)

    out = tmp_path / "fast"
    distill(run_dir, out, steps=1, n_pairs=48, epochs=1, batch_size=16, progress=False, num_threads=1, device="cpu")
    with h5py.File(out / "teacher_trajectories.h5", "r") as f:
        mask, cond = f["mask"][...], f["cond"][...]
        states = f["stage0"][...]
    # conditions as generation draws them: only the trained types (g, t), real particles first
    assert set(np.argmax(cond[:, :5], axis=1)) <= {JET_TYPES.index("g"), JET_TYPES.index("t")}
    assert mask[:, 0].all() and np.all(np.diff(mask.astype(int), axis=1) <= 0)
    assert all((states[:, k][~mask] == 0).all() for k in range(2))  # padding stays zero along the trajectory
    student = load_jet_model(out)
    assert student.model.default_sampler == {"solver": "euler", "steps": 1}
    jets = read_jets(generate_jets(out, "t", 30, tmp_path / "t.h5", seed=2))
    pf, jf = jets.particle_features, jets.jet_features
    assert np.isfinite(pf).all() and ((pf[..., 3] > 0).sum(axis=1) == np.minimum(jf[:, 3], N_PARTICLES)).all()


def test_distill_refuses_incident_energies_for_a_jet_teacher(run_dir, tmp_path):
    from showerforge.errors import UserError
    from showerforge.generate.distill import distill as distill_with
    from showerforge.kinds import load

    distill = partial(distill_with, load=load)

    with pytest.raises(UserError, match="incident energies were given, but this is a jet model"):
        distill(run_dir, tmp_path / "x", energies_mev=np.array([1e4]), progress=False)
    assert not (tmp_path / "x").exists()
