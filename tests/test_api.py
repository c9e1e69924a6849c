"""The README's notebook example, run as written (real Geant4 on `mini`, real Pythia8, one epoch)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import showerforge as sf
from showerforge.generate import energies_from


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("api")


def test_top_level_names():
    names = {
        "simulate_showers",
        "simulate_jets",
        "train",
        "distill",
        "load",
        "evaluate",
        "fit_refiner",
        "apply_refiner",
    }
    assert names <= set(sf.__all__)
    # the subpackages of the same stem do not shadow the functions
    import showerforge.evaluation  # noqa: F401
    import showerforge.training  # noqa: F401

    assert callable(sf.train) and callable(sf.evaluate)


def test_notebook_example(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    e = sf.simulate_showers(
        geometry="mini", particle="e-", energy="1:10GeV", n=200, seed=1, output="e.h5", workers=1, progress=False
    )
    t = sf.simulate_jets(types="t", n=500, seed=1, output="t.h5", workers=1, progress=False)
    run = sf.train(
        e,
        model="cfm-voxel",
        output="run/",
        epochs=1,
        progress=False,
        num_threads=1,
        config={"d_model": 16, "n_blocks": 1, "n_heads": 2},
    )
    model = sf.load(run)
    showers = model.sample(energies=np.full(100, 5000.0), seed=3)
    assert showers.shape == (100, 576) and showers.dtype == np.float32 and (showers >= 0).all()
    assert np.array_equal(showers, sf.load(run).sample(energies=np.full(100, 5000.0), seed=3))
    jetrun = sf.train(t, model="cfm-set", output="jetrun/", epochs=1, progress=False, num_threads=1)
    jets = sf.load(jetrun).sample(n=100, jet_type="t", seed=3)
    assert jets["particle_features"].shape == (100, 30, 4) and (jets["jet_type"] == 2).all()
    assert (jets["particle_features"][..., 2] >= 0).all() and (jets["jet_features"][:, 0] > 0).all()
    inc = energies_from(e)
    sf.generate_file(run, output="gen.h5", energies_from="e.h5", seed=4)  # the file of model.sample
    with h5py.File("gen.h5") as f:
        assert np.array_equal(f["showers"][...], model.sample(energies=inc, seed=4))
        assert np.array_equal(f["incident_energies"][:, 0], inc) and f.attrs["seed"] == 4
    result = sf.evaluate("e.h5", "gen.h5", output="report/", quick=True, plots=False)
    auc = result["candidate_vs_reference"]["classifier"]["high_level"]["auc"]
    assert 0.5 <= auc["value"] <= 1.0 and auc["error"] > 0
    fast = sf.distill(run, output="fast/", steps=1, n_pairs=200, epochs=1, progress=False, num_threads=1)
    assert sf.load(fast).model.default_sampler == {"solver": "euler", "steps": 1}
    assert sf.load(fast).sample(energies=np.full(10, 5000.0), seed=3).shape == (10, 576)
    Path("suite.toml").write_text(
        'name = "e"\ngates = ["chi2_ndf_max <= 1000"]\n[reference]\nfile = "e.h5"\n[metrics]\nenabled = false\n'
    )
    res = sf.validate_run("suite.toml", "gen.h5", label="v1")
    trend = sf.validation_history("suite.toml")
    assert [r.label for r in trend] == ["v1"] and trend[0].verdict == res.record.verdict
    assert res.exit_code == (0 if res.passed else 1) and "etot_over_einc" in trend[0].histograms
    assert (workdir / "validation" / "e" / "v1" / "index.html").is_file()
    ref = sf.fit_refiner("gen.h5", "e.h5", "refiner/", method="fm", inputs="layers", epochs=2)
    out = sf.apply_refiner("refiner/", "gen.h5", "gen_refined.h5")
    assert ref.blocks == ["layers"] and out["showers"].shape == (200, 576) and (out["showers"] >= 0).all()
    assert Path("gen_refined.h5").is_file() and Path("refiner/fit.png").is_file()


def test_energies_outside_training_range_warn(workdir):
    model = sf.load(workdir / "run")
    assert model.energy_range_mev[0] >= 1000 and model.energy_range_mev[1] <= 10000
    with pytest.warns(UserWarning, match="outside the training range"):
        model.sample(energies=np.array([5000.0, 1e6]), seed=0)


def test_load_refuses_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="shipped"):
        sf.load("no-such-model")
