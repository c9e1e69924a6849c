"""The shipped point-cloud surrogates (ild-photon and its 1-step student): safe loading, physical
point clouds, Geant4's visible-energy response, the command line by name; the student keeps its
teacher's shower flow, so the same seed draws the same summaries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import showerforge as sf
from showerforge.data.points import PointClouds, read_points
from showerforge.runs.shipped import pretrained_checkpoint, shipped_models

NAME = "ild-photon"
FAST = "ild-photon-1step"
# the model card's reference values are measured on the Geant4 test file; a correct model is well inside
RESPONSE_TOLERANCE = 0.03  # relative, on the mean E_vis / E_inc over 10-90 GeV
# showers per model: the mean response over the spectrum has a 9 % spread per shower, so the
# 3 % tolerance is 4.3 standard errors with 160 showers and 8.7 with 640 (measured: -0.9 %)
SHOWERS = {"ild-photon": 160, "ild-photon-1step": 640}
SPREAD_RANGE = (0.7, 1.5)  # generated / Geant4 standard deviation of E_vis / E_inc


def _response(clouds: PointClouds) -> np.ndarray:
    e = np.bincount(clouds.event_index(), weights=clouds.points[:, 3].astype(np.float64), minlength=len(clouds))
    return e / clouds.incident_mev


@pytest.fixture(scope="module", params=[NAME, FAST])
def shipped(request):
    cards = shipped_models()
    assert request.param in cards, f"{request.param} is not installed with the package"
    return request.param, cards[request.param]


def test_checkpoint_is_tensors_and_json_only(shipped):
    name, card = shipped
    path = pretrained_checkpoint(name)
    assert path.stat().st_size <= 10 * 2**20
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no code runs on load
    assert ckpt["model_name"] == "cfm-points" == card["model"]["name"] and "optimizer" not in ckpt
    assert ckpt["data_kind"] == "calo-points"
    for key in ("reference", "training", "fidelity"):
        assert key in card
    assert card["reference"]["physics_data"] in ("approximate", "official")
    pre = ckpt["preprocessing"]
    pre = json.loads(pre) if isinstance(pre, str) else pre
    occupancy = pre["occupancy"]  # the point-count correction is part of the sampler
    assert len(occupancy["log_ratio"]) == 30 and any(len(r) > 1 for r in occupancy["log_ratio"])
    assert pre["occupancy_target"]["threshold_mip"] == 0.5


def test_physical_point_clouds_with_geant4_response(shipped):
    name, card = shipped
    torch.set_num_threads(1)
    model = sf.load(name)
    assert model.geometry.name == "ild-ecal" and model.geometry.n_layers == 30
    n = SHOWERS[name]
    inc = np.random.default_rng(0).uniform(10e3, 90e3, n)
    clouds = model.sample(inc, seed=1)
    assert len(clouds) == n and np.isfinite(clouds.points).all()
    assert (clouds.points[:, 3] > 0).all()
    layers = clouds.points[:, 2]
    assert np.array_equal(layers, np.rint(layers)) and layers.min() >= 0 and layers.max() <= 29
    half = 0.5 * model.geometry.readout[0].n_crystals * model.geometry.readout[0].crystal_mm
    assert np.abs(clouds.points[:, :2]).max() <= half + 1e-3  # inside the calorimeter's face
    ratio = _response(clouds)
    ref = card["reference"]
    assert ratio.mean() == pytest.approx(ref["evis_over_einc_mean"], rel=RESPONSE_TOLERANCE)
    lo, hi = SPREAD_RANGE
    assert lo * ref["evis_over_einc_std"] < ratio.std() < hi * ref["evis_over_einc_std"]


def test_student_draws_its_teachers_summaries():
    """Known answer: distillation changes the point flow only, so with the same seed the student
    draws its teacher's summaries: the same energy in every layer (its own occupancy calibration
    may give a layer another number of points)."""
    torch.set_num_threads(1)
    inc = np.asarray([12e3, 47e3, 85e3])
    teacher, student = sf.load(NAME), sf.load(FAST)
    drawn_t, drawn_s = teacher._summaries(inc, 5, occupancy=False)[1], student._summaries(inc, 5, occupancy=False)[1]
    assert np.array_equal(drawn_t.counts, drawn_s.counts)

    def per_layer(c: PointClouds) -> np.ndarray:
        key = c.event_index() * 30 + c.points[:, 2].astype(np.int64)
        return np.bincount(key, weights=c.points[:, 3].astype(np.float64), minlength=len(c) * 30).reshape(-1, 30)

    want = drawn_t.energies
    np.testing.assert_allclose(per_layer(teacher.sample(inc, seed=5)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(per_layer(student.sample(inc, seed=5)), want, rtol=1e-5, atol=1e-6)


def test_generate_by_name_from_the_command_line(tmp_path: Path):
    out = tmp_path / "x.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "showerforge", "generate", "--model", FAST, "--energy", "10:90GeV", "--n", "12"]
        + ["--seed", "3", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    clouds = read_points(out)
    assert len(clouds) == 12 and clouds.geometry is not None and clouds.geometry.name == "ild-ecal"
    assert 10e3 <= clouds.incident_mev.min() and clouds.incident_mev.max() <= 90e3
