"""The jet evaluation report: files, keys, identical and shifted inputs, type handling, format detection."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from showerforge.data.calo import write_showers
from showerforge.data.jetnet import JET_TYPES, JetFileError, write_jets
from showerforge.errors import UserError
from showerforge.evaluation.jets.report import JET_SCHEMA, evaluate_jet_files, format_jet_summary
from showerforge.geometry import PRESETS

# every evaluation here uses far fewer jets than the recommended 50,000
pytestmark = pytest.mark.filterwarnings("ignore:.*recommended:UserWarning")

N_JETS = 1200
N_PART = 30
METRICS = ("W1M", "W1P", "W1EFP", "W1EFP_per_efp", "FPD", "KPD", "n_jets")


def _jets(
    n: int, seed: int, *, n_part: int = N_PART, eta_shift: float = 0.0, jet_type: str | np.ndarray = "t"
) -> dict[str, np.ndarray]:
    """Random valid clouds: multiplicity 5..n, Gaussian eta/phi, exponential pT normalised, pT-sorted."""
    rng = np.random.default_rng(seed)
    mult = rng.integers(5, n_part + 1, size=n)
    real = np.arange(n_part)[None, :] < mult[:, None]
    pt = -np.sort(-rng.exponential(1.0, (n, n_part)) * real, axis=1)
    pt /= pt.sum(axis=1, keepdims=True)
    pf = np.zeros((n, n_part, 4), np.float32)
    pf[..., 0] = np.where(real, rng.normal(0.0, 0.1, (n, n_part)) + eta_shift, 0.0)
    pf[..., 1] = np.where(real, rng.normal(0.0, 0.1, (n, n_part)), 0.0)
    pf[..., 2] = pt
    pf[..., 3] = real
    jf = np.stack([rng.uniform(800, 1200, n), rng.normal(0, 1, n), rng.gamma(5.0, 20.0, n), mult], axis=1)
    types = (np.full(n, JET_TYPES.index(jet_type)) if isinstance(jet_type, str) else jet_type).astype(np.int8)
    return {"particle_features": pf, "jet_features": jf.astype(np.float32), "jet_type": types}


@pytest.fixture(scope="module")
def ref_file(tmp_path_factory):
    return write_jets(tmp_path_factory.mktemp("jets") / "ref.h5", _jets(N_JETS, 1))


@pytest.fixture(scope="module")
def identical(ref_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("report_same")
    return out, evaluate_jet_files(str(ref_file), str(ref_file), out, seed=0, quick=True)


def test_report_files_and_keys(identical) -> None:
    out, m = identical
    assert json.loads((out / "metrics.json").read_text()) == m
    assert m["schema"] == JET_SCHEMA
    assert set(m) == {
        "schema",
        "showerforge_version",
        "reference",
        "candidate",
        "settings",
        "candidate_vs_reference",
        "truth_vs_truth",
        "target",
        "plots",
        "warnings",
    }
    for block in ("candidate_vs_reference", "truth_vs_truth"):
        b = m[block]
        assert set(b) == set(METRICS)
        assert set(b["W1P"]) == {"eta_rel", "phi_rel", "pt_rel", "mean"}
        assert len(b["W1EFP_per_efp"]) == 5
        for meas in (b["W1M"], b["W1EFP"], b["FPD"], b["KPD"], *b["W1P"].values()):
            assert set(meas) == {"value", "error"} and np.isfinite([meas["value"], meas["error"]]).all()
    assert m["candidate_vs_reference"]["n_jets"] == [N_JETS // 2, N_JETS]
    assert m["truth_vs_truth"]["n_jets"] == [N_JETS // 2, N_JETS // 2]
    info = m["reference"]
    assert info["n_jets"] == info["n_jets_in_file"] == N_JETS and info["n_particles"] == N_PART
    assert info["types"] == {"t": N_JETS} and info["type_selection"] == "none"
    assert m["settings"]["seed"] == 0 and m["settings"]["quick"] is True
    # jetnet's conventions by default: EFPs of the stored pT_rel, bounded curve_fit for FPD
    assert m["settings"]["efp_normed"] is False and m["settings"]["fpd_extrapolation"] == "jetnet"
    assert "pT_rel as stored" in m["settings"]["efp_features"]
    assert any("recommended" in w for w in m["warnings"])
    # plots exist and the page shows them
    names = {p["file"] for p in m["plots"]}
    assert names == {
        f"plots/{n}.png"
        for n in (
            "particle_eta_rel",
            "particle_phi_rel",
            "particle_pt_rel",
            "relative_mass",
            "multiplicity",
            "jet_mass",
        )
    }
    html = (out / "index.html").read_text()
    assert "Jet evaluation" in html and "metrics.json" in html
    assert "jetnet extrapolation" in html and "stored pT_rel, not normalised" in html
    for name in names:
        assert (out / name).stat().st_size > 1000
        assert f'src="{name}"' in html
    # same look as the shower report
    from showerforge.evaluation.html import PAGE_STYLE

    assert PAGE_STYLE in html


def test_identical_files_match_truth(identical) -> None:
    """The candidate is the reference itself: every metric at the truth-vs-truth floor, FPD/KPD ~ 0."""
    _, m = identical
    comp, truth = m["candidate_vs_reference"], m["truth_vs_truth"]
    for key in ("FPD", "KPD"):
        v, e = comp[key]["value"], comp[key]["error"]
        assert v - 3 * e <= 1e-3, (key, v, e)
    for key in ("W1M", "W1EFP"):
        assert comp[key]["value"] < 3 * truth[key]["value"] + 3 * truth[key]["error"], key
    assert comp["W1P"]["mean"]["value"] < 3 * truth["W1P"]["mean"]["value"]
    assert comp["W1P"]["eta_rel"]["value"] < 0.01  # sigma = 0.1: a few per cent of it at most
    assert m["target"]["all_within"] is True
    text = format_jet_summary(m)
    for label in ("W1M", "W1P eta_rel", "W1EFP", "FPD", "KPD", "ratio", "truth vs truth"):
        assert label in text
    assert re.search(r"W1M \(m/pT\)\s*│\s*[-\d.e]+ ± [\d.e-]+", text)
    assert "every metric within 3x of truth vs truth" in text
    assert "EFPs: stored pT_rel (jetnet); FPD extrapolation: jetnet" in text


def test_normed_efps_and_lsq_are_recorded(ref_file, tmp_path) -> None:
    m = evaluate_jet_files(
        str(ref_file), str(ref_file), tmp_path, quick=True, plots=False, efp_normed=True, fpd_extrapolation="lsq"
    )
    assert m["settings"]["efp_normed"] is True and m["settings"]["fpd_extrapolation"] == "lsq"
    assert "pT/sum(pT)" in m["settings"]["efp_features"]
    assert "EFPs: pT/sum(pT) (normed); FPD extrapolation: lsq" in format_jet_summary(m)
    html = (tmp_path / "index.html").read_text()
    assert "lsq extrapolation" in html and "pT normalised to the jet" in html
    with pytest.raises(UserError, match="extrapolation"):
        evaluate_jet_files(str(ref_file), str(ref_file), tmp_path / "x", quick=True, fpd_extrapolation="exact")


def test_shifted_candidate(ref_file, tmp_path) -> None:
    """A candidate with every eta shifted by 0.05: W1P(eta) equals the shift; the target is missed."""
    shift = 0.05
    cand = write_jets(tmp_path / "cand.h5", _jets(800, 2, eta_shift=shift))
    m = evaluate_jet_files(f"{ref_file}:t", cand, tmp_path / "out", seed=3, quick=True, plots=False)
    w = m["candidate_vs_reference"]["W1P"]["eta_rel"]
    assert w["value"] == pytest.approx(shift, abs=max(0.01, 3 * w["error"]))
    assert m["truth_vs_truth"]["W1P"]["eta_rel"]["value"] < 0.01
    assert m["target"]["within"]["W1P_eta_rel"] is False and m["target"]["all_within"] is False
    assert m["target"]["ratio"]["W1P_eta_rel"] > 5
    assert m["reference"]["type_selection"] == "spec" and m["candidate"]["n_jets"] == 800
    assert m["plots"] == [] and not (tmp_path / "out" / "plots").exists()
    assert "beyond 3x" in format_jet_summary(m)


def test_mismatched_particle_count_refused(ref_file, tmp_path) -> None:
    cand = write_jets(tmp_path / "cand150.h5", _jets(20, 2, n_part=50))
    with pytest.raises(JetFileError, match=r"n = 50.*ref\.h5.*n = 30"):
        evaluate_jet_files(ref_file, cand, tmp_path / "out", quick=True)
    assert not (tmp_path / "out").exists()


def test_type_resolution(tmp_path) -> None:
    """Mixed reference vs single-type candidate: automatic selection; differing types refused."""
    types = np.repeat([JET_TYPES.index("g"), JET_TYPES.index("t")], 40)
    ref = write_jets(tmp_path / "mixed.h5", _jets(80, 4, jet_type=types))
    cand_t = write_jets(tmp_path / "t.h5", _jets(30, 5, jet_type="t"))
    cand_q = write_jets(tmp_path / "q.h5", _jets(30, 6, jet_type="q"))
    m = evaluate_jet_files(ref, cand_t, tmp_path / "auto", quick=True, plots=False)
    assert m["reference"]["selected_type"] == "t" and m["reference"]["type_selection"] == "automatic"
    assert m["reference"]["n_jets"] == 40 and m["reference"]["types_in_file"] == {"g": 40, "t": 40}
    with pytest.raises(JetFileError, match=r"no jets of type 'q'.*g: 40, t: 40"):
        evaluate_jet_files(ref, cand_q, tmp_path / "x", quick=True, plots=False)
    with pytest.raises(ValueError, match=r"jet types differ.*FILE\.h5:TYPE"):
        evaluate_jet_files(f"{ref}:g", cand_t, tmp_path / "x", quick=True, plots=False)
    with pytest.raises(ValueError, match=r"jet types differ"):
        evaluate_jet_files(cand_t, ref, tmp_path / "x", quick=True, plots=False)


def test_kind_of_file(ref_file, tmp_path) -> None:
    from showerforge.kinds import kind_of_file

    mini = PRESETS["mini"]
    calo = write_showers(tmp_path / "showers.h5", np.full(3, 1000.0), np.ones((3, mini.n_voxels)), mini)
    assert kind_of_file(calo).name == "calo-voxels"
    assert kind_of_file(ref_file).name == "jet-set"
    assert kind_of_file(f"{ref_file}:t").name == "jet-set"
    with pytest.raises(ValueError, match="holds showers"):
        kind_of_file(f"{calo}:t")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        kind_of_file(text)
    with pytest.raises(ValueError, match="is a folder"):
        kind_of_file(tmp_path)
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="neither a shower file.*'x'"):
        kind_of_file(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError):
        kind_of_file(tmp_path / "missing.h5")
