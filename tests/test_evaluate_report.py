"""The evaluation report: files, keys, identical inputs, geometry checks, streaming."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from showerforge.data.calo import CaloFileError, write_showers
from showerforge.evaluation import evaluate_files, format_summary
from showerforge.evaluation.showers.features import PER_LAYER_FEATURES
from showerforge.geometry import PRESETS, Geometry, ReadoutLayer

MINI = PRESETS["mini"]


def _showers(n: int, seed: int, width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Random showers: gamma-distributed voxels on a smooth mean profile, 30 % empty voxels."""
    rng = np.random.default_rng(seed)
    n_l, n_a, n_r = MINI.shape
    inc = 10 ** rng.uniform(3, 4.5, n)
    depth = np.exp(-(((np.arange(n_l) - 5) / 3.0) ** 2))
    radial = np.exp(-np.arange(n_r) / (1.5 * width))
    prof = np.broadcast_to(depth[:, None, None] * radial[None, None, :], (n_l, n_a, n_r)).ravel()
    x = rng.gamma(2.0, 0.5, (n, MINI.n_voxels)) * (prof / prof.sum()) * inc[:, None]
    x[rng.random(x.shape) < 0.3] = 0.0
    return inc, x


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    ref = write_showers(d / "ref.h5", *_showers(400, 1), MINI)
    cand = write_showers(d / "cand.h5", *_showers(300, 2, width=1.3), MINI)
    return d, ref, cand


@pytest.fixture(scope="module")
def report(files):
    d, ref, cand = files
    out = d / "report"
    return out, evaluate_files(ref, cand, out, quick=True, seed=0, threshold_mev=0.01)


def test_report_files_and_keys(report) -> None:
    out, m = report
    assert (out / "metrics.json").is_file() and (out / "index.html").is_file()
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == m
    assert set(m) == {
        "schema",
        "showerforge_version",
        "reference",
        "candidate",
        "geometry",
        "settings",
        "candidate_vs_reference",
        "reference_vs_reference",
    }
    assert m["schema"] == "showerforge.evaluation/1"
    assert m["geometry"]["name"] == "mini" and m["geometry"]["challenge_dataset"] is None
    for block in ("candidate_vs_reference", "reference_vs_reference"):
        b = m[block]
        assert set(b) == {
            "n_showers",
            "separation_power",
            "wasserstein",
            "separation_power_mean",
            "wasserstein_mean",
            "chi2_ndf",
            "chi2_ndf_mean",
            "classifier",
            "classifier_weights",
            "distances",
            "nplm",
        }
        assert set(b["separation_power"]) == {"etot_over_einc", "voxel_energy", *PER_LAYER_FEATURES}
        assert set(b["wasserstein"]) == {"etot_over_einc", *PER_LAYER_FEATURES}
        assert set(b["separation_power"]["center_x"]) == {str(i) for i in range(12)}
        assert set(b["separation_power"]["etot_over_einc"]) == {"value", "error"}
        for kind in ("high_level", "low_level", "verdict"):
            assert set(b["classifier"][kind]["auc"]) == {"value", "error"}
            assert b["classifier"][kind]["skipped"] is None
    # unbiased floor: the candidate meets reference half A at the size of half B
    assert m["candidate_vs_reference"]["n_showers"] == [200, 200]
    assert m["reference_vs_reference"]["n_showers"] == [200, 200]
    assert m["settings"]["low_level_showers_per_class"] == 200
    assert "half" in m["settings"]["floor"]
    # a wider candidate is seen: its radial widths differ more than the reference halves do
    comp, floor = m["candidate_vs_reference"], m["reference_vs_reference"]
    assert comp["separation_power_mean"]["width_r"]["value"] > 3 * floor["separation_power_mean"]["width_r"]["value"]
    assert comp["chi2_ndf_mean"]["width_r"]["value"] > 3 * floor["chi2_ndf_mean"]["width_r"]["value"]
    for key in ("fpd", "kpd"):
        assert comp["distances"][key]["value"] > floor["distances"][key]["value"] + 3 * comp["distances"][key]["error"]
    assert set(comp["distances"]["prdc"]) == {"precision", "recall", "density", "coverage", "n_per_sample"}
    assert comp["nplm"]["n_toys"] == 20 and 0 < comp["nplm"]["p_value"] <= 1


def test_html_references_every_plot(report) -> None:
    out, _ = report
    html = (out / "index.html").read_text()
    pngs = sorted(p.relative_to(out).as_posix() for p in (out / "plots").glob("*.png"))
    expected = {
        "etot_over_einc",
        "voxel_energy",
        "response_vs_einc",
        "mean_images",
        "layer_profile",
        "radial_profile",
        "classifier_weights",
        *PER_LAYER_FEATURES,
    }
    assert {p.split("/")[-1][:-4] for p in pngs} == expected
    for p in pngs:
        assert f'src="{p}"' in html
        assert (out / p).stat().st_size > 1000


def test_summary_table(report) -> None:
    _, m = report
    text = format_summary(m)
    assert "classifier low-level AUC" in text and "reference floor" in text
    assert "W1 center_x [mm]" in text
    assert "\x1b[" not in text  # no colour codes


def test_identical_files_give_zero_distances(files) -> None:
    """Known answers for identical samples: S = W1 = 0, chi2 = 0, FPD ~ 0, KPD ~ 0, PRDC = 1."""
    import shutil

    d, ref, _ = files
    copy = shutil.copy(ref, d / "ref_copy.h5")  # as the floor file: the candidate meets the whole reference
    m = evaluate_files(
        ref,
        ref,
        d / "same",
        floor_reference=copy,
        quick=True,
        classifiers=(),
        plots=False,
        n_bootstrap=3,
        threshold_mev=0.01,
    )
    assert m["settings"]["floor"].startswith("floor reference file")
    for block in ("candidate_vs_reference", "reference_vs_reference"):
        comp = m[block]
        assert comp["n_showers"] == [400, 400]
        assert comp["separation_power"]["etot_over_einc"]["value"] == 0.0
        assert comp["separation_power"]["voxel_energy"]["value"] == 0.0
        assert comp["chi2_ndf"]["etot_over_einc"]["value"] == 0.0
        for name in PER_LAYER_FEATURES:
            for layer, meas in comp["separation_power"][name].items():
                assert meas["value"] == 0.0, (name, layer)
                assert comp["wasserstein"][name][layer]["value"] == 0.0
        assert comp["classifier"] == {}
        dist = comp["distances"]
        assert abs(dist["fpd"]["value"]) < 1e-3 and abs(dist["kpd"]["value"]) < 1e-3
        for key in ("precision", "recall", "coverage"):
            assert dist["prdc"][key]["value"] == 1.0
        assert abs(dist["prdc"]["density"]["value"] - 1.0) < 0.2


def test_floor_reference_must_be_another_file(files, tmp_path) -> None:
    d, ref, cand = files
    with pytest.raises(ValueError, match="reference file itself"):
        evaluate_files(ref, cand, tmp_path / "out", floor_reference=ref)
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_streaming_chunk_size_does_not_change_results(files) -> None:
    d, ref, cand = files
    kw = dict(classifiers=("high_level",), plots=False, n_bootstrap=4, threshold_mev=0.01, quick=True)
    a = evaluate_files(ref, cand, d / "c7", chunk=7, **kw)
    b = evaluate_files(ref, cand, d / "c1000", chunk=1000, **kw)
    for key in ("candidate_vs_reference", "reference_vs_reference"):
        assert a[key] == b[key]


def test_mismatched_geometries_refused(files, tmp_path) -> None:
    d, ref, _ = files
    wide = Geometry("wide", tuple(ReadoutLayer(tuple(10.0 * i for i in range(7)), 8) for _ in range(12)))
    assert wide.n_voxels == MINI.n_voxels
    other = write_showers(tmp_path / "wide.h5", *_showers(20, 3), wide)
    with pytest.raises(CaloFileError) as err:
        evaluate_files(ref, other, tmp_path / "out", plots=False, classifiers=())
    msg = str(err.value)
    assert str(ref) in msg and str(other) in msg and "'wide'" in msg and "'mini'" in msg
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_foreign_file_without_attributes(files, tmp_path) -> None:
    d, ref, _ = files
    inc, sh = _showers(50, 4)
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:  # a CaloChallenge-style file from elsewhere: no attributes
        f.create_dataset("incident_energies", data=inc.reshape(-1, 1).astype(np.float32))
        f.create_dataset("showers", data=sh.astype(np.float32))
    kw = dict(classifiers=(), plots=False, n_bootstrap=2, distances=False)
    m = evaluate_files(ref, path, tmp_path / "out", max_showers=40, **kw)
    assert m["candidate"]["geometry_source"] == "voxel count"
    assert m["candidate"]["n_showers"] == 40 and m["reference"]["n_showers"] == 40
    m2 = evaluate_files(ref, path, tmp_path / "out2", geometry="mini", **kw)
    assert m2["candidate"]["geometry_source"] == "argument"


def test_bad_options(files, tmp_path) -> None:
    d, ref, cand = files
    with pytest.raises(ValueError, match="unknown classifiers"):
        evaluate_files(ref, cand, tmp_path, classifiers=("resnet",))
    with pytest.raises(CaloFileError, match="file not found"):
        evaluate_files(ref, tmp_path / "missing.h5", tmp_path)


def test_irregular_dataset1_readout(tmp_path) -> None:
    from pathlib import Path

    import showerforge.data

    xml = Path(showerforge.data.__file__).parent / "binning" / "binning_dataset_1_photons.xml"
    geo = Geometry.from_calochallenge_xml(xml)
    rng = np.random.default_rng(8)
    paths = []
    for k, scale in enumerate((1.0, 1.2)):
        inc = 2.0 ** rng.integers(8, 16, 150)
        sh = (
            rng.exponential(scale, (150, geo.n_voxels))
            * inc[:, None]
            / geo.n_voxels
            * (rng.random((150, geo.n_voxels)) < 0.5)
        )
        paths.append(write_showers(tmp_path / f"ds1_{k}.h5", inc, sh, geo))
    # the geometry given as the CaloChallenge binning XML file
    m = evaluate_files(
        *paths, tmp_path / "out", geometry=str(xml), quick=True, classifiers=("high_level",), n_bootstrap=3
    )
    assert m["geometry"]["challenge_dataset"] == "1-photons" and not m["geometry"]["is_regular"]
    assert m["settings"]["threshold_mev"] == 1.0
    sep = m["candidate_vs_reference"]["separation_power"]
    with_voxels = [i for i, layer in enumerate(geo.readout) if layer.n_voxels]
    with_alpha = [i for i, layer in enumerate(geo.readout) if layer.n_alpha > 1 and layer.n_voxels]
    assert sorted(map(int, sep["layer_energy"])) == with_voxels
    assert sorted(map(int, sep["center_x"])) == with_alpha
    assert (tmp_path / "out" / "plots" / "center_r.png").is_file()
    assert not (tmp_path / "out" / "plots" / "mean_images.png").exists()


def test_profiles_conserve_the_mean_energy() -> None:
    """Known answer: both profiles add up to the mean total energy; per layer and per ring sums."""
    from showerforge.evaluation.showers.report import _profiles
    from showerforge.geometry import PRESETS

    geo = PRESETS["mini"]
    rng = np.random.default_rng(0)
    ref, cand = rng.exponential(1.0, geo.n_voxels), rng.exponential(2.0, geo.n_voxels)
    (_, layer, _, _), (_, radial, _, _) = _profiles(geo, ref, cand)
    n_l, n_a, n_r = geo.shape
    assert layer.reference.sum() == pytest.approx(ref.sum()) == pytest.approx(radial.reference.sum())
    assert layer.candidate == pytest.approx(cand.reshape(n_l, n_a, n_r).sum(axis=(1, 2)))
    assert radial.edges[-1] == pytest.approx(geo.readout[0].r_edges_mm[-1]) and len(radial.reference) == n_r


def test_bad_floor_reference_and_options_refused_before_work(files, tmp_path) -> None:
    """A missing or NaN floor file, an unknown FPD extrapolation: one clear error, no report written."""
    d, ref, cand = files
    with pytest.raises(CaloFileError, match="missing.h5"):
        evaluate_files(ref, cand, tmp_path / "a", floor_reference=tmp_path / "missing.h5")
    inc, sh = _showers(50, 9)
    sh[3, 5] = np.nan
    bad = write_showers(tmp_path / "nan.h5", inc, sh, MINI)
    with pytest.raises(CaloFileError, match="nan.h5"):
        evaluate_files(ref, cand, tmp_path / "b", floor_reference=bad)
    with pytest.raises(ValueError, match="extrapolation"):
        evaluate_files(ref, cand, tmp_path / "c", fpd_extrapolation="quadratic")
    assert not any((tmp_path / k / "metrics.json").exists() for k in "abc")


def test_cli_published_needs_several_candidates(files, tmp_path) -> None:
    from click.testing import CliRunner

    from showerforge.cli import cli

    d, ref, cand = files
    args = ["evaluate", "--reference", str(ref), "--candidate", str(cand), "-o", str(tmp_path / "o"), "--published"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "--published" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_a_failed_report_leaves_nothing_half_written(files, tmp_path, monkeypatch) -> None:
    """The page fails after metrics.json is written: no new folder (nor parents) stays, and a folder
    that existed keeps exactly its own files; once the page works, the report joins them."""
    import showerforge.evaluation.html

    def broken_page(*args, **kwargs):
        raise RuntimeError("the page failed")

    d, ref, cand = files
    kw = dict(classifiers=(), distances=False, plots=False, nplm_toys=0, n_bootstrap=2, threshold_mev=0.01)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    monkeypatch.setattr(showerforge.evaluation.html, "render_html", broken_page)
    for out in (tmp_path / "new" / "report", mine):
        with pytest.raises(RuntimeError, match="the page failed"):
            evaluate_files(ref, cand, out, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    monkeypatch.undo()
    evaluate_files(ref, cand, mine, **kw)
    assert sorted(p.name for p in mine.iterdir()) == ["index.html", "metrics.json", "notes.txt"]
