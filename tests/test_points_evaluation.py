"""Evaluation of point-cloud showers (calo-points) on real Geant4 photon showers in the ILD ECal.

Two independent Geant4 samples A and B (different seeds, 500 photons of 5-15 GeV each); the 3 %
energy scale needs 1000 each to stand > 5 sigma above the statistics of the mean response, whose
relative width here is about 8 %, and runs with the slow tests. Geant4 vs Geant4 must look like its own floor; known distortions of B
(a shift by one cell in x, energies x 1.03, one layer removed) must stand out against the floor
B vs A, which sees the same showers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import showerforge as sf
from showerforge.cli import cli
from showerforge.data.calo import write_showers
from showerforge.data.points import PointClouds, read_points, write_points
from showerforge.evaluation.points.compare import compare_observables
from showerforge.evaluation.points.observables import OBSERVABLES, observe
from showerforge.evaluation.points.report import evaluate_point_files, format_points_summary
from showerforge.geometry import PRESETS

N_SHOWERS = 500
N_LARGE = 1000
CELL_MM = 5.09


def _g4(simulated, seed: int, n: int = N_SHOWERS) -> Path:
    return simulated(
        "simulate", "calo", "--geometry", "ild-ecal", "--particle", "gamma", "--energy", "5:15GeV",
        "--spectrum", "uniform", "--n", str(n), "--points", "--workers", "1",
        "--shard-size", "500", "--seed", str(seed),
    )  # fmt: skip


@pytest.fixture(scope="module")
def g4_a(simulated) -> Path:
    return _g4(simulated, 1)


@pytest.fixture(scope="module")
def g4_b(simulated) -> Path:
    return _g4(simulated, 2)


@pytest.fixture(scope="module")
def clouds(g4_a, g4_b) -> tuple[PointClouds, PointClouds]:
    return read_points(g4_a), read_points(g4_b)


@pytest.fixture(scope="module")
def large_clouds(simulated) -> tuple[PointClouds, PointClouds]:
    return read_points(_g4(simulated, 1, N_LARGE)), read_points(_g4(simulated, 2, N_LARGE))


@pytest.fixture(scope="module")
def large_floor(large_clouds):
    obs_a, obs_b = observe(large_clouds[0]), observe(large_clouds[1])
    return obs_a, compare_observables(obs_a, obs_b, seed=1)


@pytest.fixture(scope="module")
def floor(clouds):
    """The observables of A and B and the floor: W1 x 100 of B against A."""
    obs_a, obs_b = observe(clouds[0]), observe(clouds[1])
    return obs_a, compare_observables(obs_a, obs_b, seed=1)


def _like(c: PointClouds, points: np.ndarray, offsets: np.ndarray | None = None) -> PointClouds:
    return PointClouds(points, c.offsets if offsets is None else offsets, c.incident_mev, c.geometry)


def _z(cand, floor) -> float:
    """How far a candidate value lies above its floor, in combined standard deviations."""
    return (cand.value - floor.value) / math.hypot(cand.error, floor.error)


def _auc_like_half(m: dict) -> None:
    auc = m["classifier"]["auc"]
    assert abs(auc["value"] - 0.5) < 4 * auc["error"] + 0.02, auc


# ----------------------------------------------------------------------------- Geant4 vs Geant4
def test_geant4_vs_geant4_report(g4_a, g4_b, tmp_path) -> None:
    out = tmp_path / "report"
    m = sf.evaluate(g4_a, g4_b, output=out, seed=3)
    assert json.loads((out / "metrics.json").read_text()) == m
    assert (out / "index.html").is_file()
    assert {p["file"] for p in m["plots"]} == {f"plots/{name}.png" for name in OBSERVABLES}
    assert all((out / p["file"]).stat().st_size > 5000 for p in m["plots"])
    assert m["schema"] == "showerforge.evaluation.points/1" and m["geometry"]["name"] == "ild-ecal"
    comp, ref_ref = m["candidate_vs_reference"], m["reference_vs_reference"]
    assert comp["n_showers"] == ref_ref["n_showers"] == [N_SHOWERS // 2, N_SHOWERS // 2]
    for block in (comp, ref_ref):
        _auc_like_half(block)
        assert set(block["w1x100"]) == set(OBSERVABLES)
        # W1 of two samples of one distribution falls as 1/sqrt(n): below 25 at 500 vs 500
        bound = 25 * math.sqrt(500 / (N_SHOWERS // 2))
        assert all(0 <= w["value"] < bound and w["error"] > 0 for w in block["w1x100"].values()), block["w1x100"]
    c, f = comp["w1x100_mean"], ref_ref["w1x100_mean"]
    assert abs(c["value"] - f["value"]) < 4 * math.hypot(c["error"], f["error"])
    text = format_points_summary(m)
    assert (
        "W1 x 100 cog_x" in text
        and "classifier AUC" in text
        and f"floor ({N_SHOWERS // 2} vs {N_SHOWERS // 2})" in text
    )
    page = (out / "index.html").read_text()
    assert "Point-cloud shower evaluation" in page and "plots/radial_energy.png" in page


# ----------------------------------------------------------------------------- distortions
def test_shift_by_one_cell_in_x(clouds, floor) -> None:
    obs_a, ref_ref = floor
    b = clouds[1]
    pts = b.points.copy()
    pts[:, 0] += CELL_MM
    w1 = compare_observables(obs_a, observe(_like(b, pts)), seed=0)
    assert w1["cog_x"].value > 10 * ref_ref["cog_x"].value and _z(w1["cog_x"], ref_ref["cog_x"]) > 20
    assert abs(_z(w1["cog_y"], ref_ref["cog_y"])) < 1  # the same showers otherwise


@pytest.mark.slow
def test_energy_scale_of_three_percent(large_clouds, large_floor) -> None:
    obs_a, ref_ref = large_floor
    b = large_clouds[1]
    pts = b.points.copy()
    pts[:, 3] *= 1.03
    w1 = compare_observables(obs_a, observe(_like(b, pts)), seed=0)
    cand, base = w1["e_vis_over_e_inc"], ref_ref["e_vis_over_e_inc"]
    assert cand.value > 2 * base.value and _z(cand, base) > 3, (cand, base)
    assert _z(w1["cell_energy"], ref_ref["cell_energy"]) > 3
    assert abs(_z(w1["cog_x"], ref_ref["cog_x"])) < 1


def test_layer_removed(clouds, floor, g4_a, g4_b, tmp_path) -> None:
    """The layer at the shower maximum is emptied: longitudinal profile and classifier catch it."""
    obs_a, _ = floor
    b = clouds[1]
    layer = int(np.argmax(obs_a.layer_energy.sum(axis=0)))
    keep = np.rint(b.points[:, 2]) != layer
    counts = np.bincount(b.event_index()[keep], minlength=len(b))
    cand = write_points(tmp_path / "cand.h5", _like(b, b.points[keep], np.concatenate([[0], np.cumsum(counts)])))
    m = evaluate_point_files(g4_a, cand, tmp_path / "report", floor_reference=g4_b, plots=False, seed=0)
    comp, ref_ref = m["candidate_vs_reference"], m["reference_vs_reference"]
    assert comp["n_showers"] == ref_ref["n_showers"] == [N_SHOWERS, N_SHOWERS]
    c, f = comp["w1x100"]["longitudinal_energy"], ref_ref["w1x100"]["longitudinal_energy"]
    # the floor's W1 falls as 1/sqrt(n), the distortion's does not: judged by its distance to the floor
    assert (c["value"] - f["value"]) > 4 * math.hypot(c["error"], f["error"]), (c, f)
    assert comp["classifier"]["auc"]["value"] > 0.9
    _auc_like_half(ref_ref)
    assert m["plots"] == [] and not (tmp_path / "report" / "plots").exists()


# ----------------------------------------------------------------------------- command line
def _cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["evaluate", *map(str, args)])
    return result.exit_code, result.stderr


def test_cli_evaluates_point_files(g4_a, g4_b, tmp_path) -> None:
    out = tmp_path / "cli"
    code, err = _cli("--reference", g4_a, "--candidate", g4_b, "-o", out, "--max-showers", "100", "--no-plots")
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["candidate_vs_reference"]["n_showers"] == [50, 50] and m["settings"]["max_samples"] == 100


@pytest.fixture(scope="module")
def bad_files(clouds, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_points")
    small = clouds[0].select(np.arange(20))
    for name, (col, value) in {"nan": (3, np.nan), "negative": (3, -1.0)}.items():
        pts = small.points.copy()
        pts[57, col] = value
        write_points(d / f"{name}.h5", _like(small, pts))
    write_points(d / "hcal.h5", PointClouds(small.points, small.offsets, small.incident_mev, PRESETS["ild-hcal"]))
    rng = np.random.default_rng(0)
    write_showers(d / "voxels.h5", np.full(20, 1e4), rng.random((20, PRESETS["mini"].n_voxels)), PRESETS["mini"])
    return d


@pytest.mark.parametrize(
    "name, words",
    [
        ("voxels", ["voxels.h5", "[num_points]", "voxel file"]),
        ("nan", ["nan.h5", "[showers]", "NaN"]),
        ("negative", ["negative.h5", "[showers]", "negative energy"]),
        ("hcal", ["hcal.h5", "[geometry]", "'ild-hcal' differs from 'ild-ecal'"]),
    ],
)
def test_cli_refuses_bad_candidates(g4_a, bad_files, tmp_path, name, words) -> None:
    out = tmp_path / "out"
    code, err = _cli("--reference", g4_a, "--candidate", bad_files / f"{name}.h5", "-o", out)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_refuses_bad_floor_reference(g4_a, g4_b, bad_files, tmp_path) -> None:
    out = tmp_path / "out"
    for floor, words in ((g4_a, ["is the reference file itself"]), (bad_files / "hcal.h5", ["hcal.h5 [geometry]"])):
        code, err = _cli("--reference", g4_a, "--candidate", g4_b, "--floor-reference", floor, "-o", out)
        assert code == 2 and err.count("\n") == 1 and all(w in err for w in words), err
    code, err = _cli("--reference", g4_a, "--candidate", g4_b, "--nplm-toys", "3", "-o", out)
    assert code == 2 and "--nplm-toys" in err, err
    assert not out.exists()


# ----------------------------------------------------------------------------- validation
def test_validate_point_clouds(g4_a, g4_b, tmp_path) -> None:
    """A suite on point clouds: the default analyses, gates on the AUC and the mean W1 x 100 with floors."""
    from showerforge.validate.run import validate_run

    suite = tmp_path / "points.toml"
    suite.write_text(
        f'name = "ild-photons"\ngates = ["auc <= 0.7", "w1x100_mean <= 25", "w1x100_mean_floor <= 25", '
        f"'chi2_ndf(\"e_vis_over_e_inc\") <= 4']\n"
        f'[reference]\nfile = "{g4_a}"\nfloor_file = "{g4_b}"\n[metrics]\nmax_samples = 200\n'
    )
    res = validate_run(suite, g4_b, "v1", output=tmp_path / "v1")
    rec = res.record
    assert {"auc", "auc_floor", "w1x100_mean", "w1x100_mean_floor"} <= set(rec.metrics)
    assert {"e_vis_over_e_inc", "cog_z", "cell_energy", "longitudinal_energy", "radial_energy"} <= set(rec.histograms)
    assert res.passed, [g for g in rec.gates if not g["passed"]]
