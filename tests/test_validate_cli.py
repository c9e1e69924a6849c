"""`showerforge validate` on generated shower files: exit codes, pages, history, files, bad input."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_evaluate_report import MINI, _showers
from test_report_browser import _load

from showerforge.cli import cli
from showerforge.data.calo import write_showers
from showerforge.validate.histio import read_histograms
from showerforge.validate.store import open_store

SUITE = """name = "toy"
gates = ['chi2_ndf("etot_over_einc") <= 4', "chi2_ndf_max <= 6", "ks_p_min >= 0.0001"]

[reference]
file = "ref.h5"

[analyses]
use = ["calo_energy", "calo_profiles"]
bins = 20

[metrics]
enabled = false
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("validate")
    write_showers(d / "ref.h5", *_showers(2000, 1), MINI)
    write_showers(d / "same.h5", *_showers(2000, 2), MINI)  # same parent distribution
    write_showers(d / "wide.h5", *_showers(2000, 3, width=1.6), MINI)  # broader showers
    (d / "suite.toml").write_text(SUITE)
    return d


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.stdout, res.stderr


def _validate(d: Path, cand: str, label: str, *extra: str) -> tuple[int, str, str]:
    return _run(
        "validate", "run", "--suite", str(d / "suite.toml"), "--candidate", str(d / cand), "--label", label, *extra
    )


def test_versions_pass_fail_history_compare_dashboard(toy: Path, tmp_path: Path) -> None:
    code, out, err = _validate(toy, "wide.h5", "v1")
    assert code == 1, err
    assert "FAIL" in out and "toy v1: FAIL" in out
    code, out, err = _validate(toy, "same.h5", "v2")
    assert code == 0, out + err
    assert "toy v2: PASS (3/3 gates" in out
    page = toy / "validation" / "toy" / "v2" / "index.html"
    assert page.is_file()

    # the history: two versions in order, gated values, verdicts
    code, out, _ = _run("validate", "history", "--suite", str(toy / "suite.toml"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "suite toy: 2 version(s)" and "chi2_ndf(etot_over_einc)" in lines[1]
    assert lines[2].split()[0] == "v1" and "FAIL" in lines[2] and lines[3].split()[0] == "v2" and "PASS" in lines[3]
    code, out, _ = _run("validate", "history", "--suite", str(toy / "suite.toml"), "--json")
    rows = json.loads(out)
    assert [r["verdict"] for r in rows] == ["fail", "pass"]

    # compare: the radial profile (what the width changes) heads the list; it moved towards the reference
    code, out, _ = _run("validate", "compare", "--suite", str(toy / "suite.toml"), "v1", "v2", "--top", "3")
    assert code == 0
    first = out.splitlines()[2].split()
    assert first[0] == "radial_profile" and first[-1] == "better"
    code, out, _ = _run("validate", "compare", "--suite", str(toy / "suite.toml"), "v2", "v1", "--top", "3")
    assert out.splitlines()[2].split()[-1] == "worse"

    # histogram files are read back, in both formats, and compared file against file
    v1 = toy / "validation" / "toy" / "v1"
    root = {h.name: h for h in read_histograms(v1 / "histograms.root")}
    yoda = {h.name: h for h in read_histograms(v1 / "histograms.yoda")}
    assert set(root) == set(yoda) and "candidate/etot_over_einc" in root and "reference/radial_profile" in root
    assert np.allclose(root["candidate/etot_over_einc"].values, yoda["candidate/etot_over_einc"].values)
    code, out, _ = _run(
        "validate", "compare", str(v1 / "histograms.root"), str(toy / "validation/toy/v2/histograms.yoda"), "--top", "2"
    )
    assert code == 0 and "radial_profile" in out and "A = " in out

    # the result file holds every gate and histogram comparison
    result = json.loads((v1 / "result.json").read_text())
    assert result["verdict"] == "fail" and len(result["gates"]) == 3
    assert result["histograms"]["radial_profile"]["band"] == "bad"

    # dashboard: trend plots, gates, the regression alarm after a passing version fails again
    code, out, err = _validate(toy, "wide.h5", "v3")
    assert code == 1
    dash = tmp_path / "dash"
    code, out, err = _run("validate", "dashboard", "--suite", str(toy / "suite.toml"), "-o", str(dash))
    assert code == 0, err
    html = (dash / "index.html").read_text()
    assert "Regression alarm" in html and "passed in v2, fails in v3" in html
    code, out, _ = _run("validate", "history", "--suite", str(toy / "suite.toml"), "--fail-on-regression")
    assert code == 1 and "REGRESSION: " in out
    assert len(list(dash.glob("trend_*.png"))) >= 3
    dom, log = _load(dash / "index.html", tmp_path)
    assert re.search(r'data-broken-images="0"', dom) and re.search(r'data-images="[3-9]', dom)
    assert not [line for line in log.splitlines() if "CONSOLE" in line]
    dom, log = _load(page, tmp_path)
    assert re.search(r'data-broken-images="0"', dom) and "PASS" in dom


def test_a_label_is_not_recorded_twice(toy: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "h.db")
    assert _validate(toy, "same.h5", "x1", "--store", store, "-o", str(tmp_path / "o1"))[0] == 0
    code, _, err = _validate(toy, "same.h5", "x1", "--store", store, "-o", str(tmp_path / "o2"))
    assert code == 2 and "already has a run labelled 'x1'" in err and err.count("\n") == 1
    assert not (tmp_path / "o2").exists()
    assert _validate(toy, "wide.h5", "x1", "--store", store, "-o", str(tmp_path / "o2"), "--replace")[0] == 1
    runs = open_store(store).runs_of("toy")
    assert [(r.label, r.verdict) for r in runs] == [("x1", "fail")]


BAD_SUITES = {
    "not toml": ("name = [", "not valid TOML"),
    "gates under a table": ('[reference]\nfile = "ref.h5"\ngates = ["n_bad <= 0"]\n', "belongs at the top"),
    "two references": ('[reference]\nfile = "ref.h5"\nsimulate = {n = 10}\n', "exactly one of"),
    "unknown key": ('[reference]\nfile = "ref.h5"\n[metrics]\nquik = true\n', "unknown key(s) quik"),
    "bad gate": ('gates = ["auc_high == 0.6"]\n[reference]\nfile = "ref.h5"\n', "is not a gate"),
    "unknown metric": ('gates = ["auc_hihg <= 0.6"]\n[reference]\nfile = "ref.h5"\n', "unknown metric 'auc_hihg'"),
    "metric not computed": (
        'gates = ["auc_high <= 0.6"]\n[reference]\nfile = "ref.h5"\n[metrics]\nenabled = false\n',
        "needs the evaluation metrics",
    ),
    "histogram not booked": (
        'gates = [\'chi2_ndf("etot_over_eninc") <= 4\']\n[reference]\nfile = "ref.h5"\n[metrics]\nenabled = false\n',
        "no histogram 'etot_over_eninc' is booked",
    ),
    "missing reference": ('[reference]\nfile = "nope.h5"\n', "no such file"),
    "unknown analysis": (
        '[reference]\nfile = "ref.h5"\n[analyses]\nuse = ["jet_substructure"]\n',
        "is a jets analysis",
    ),
    "missing module": ('[reference]\nfile = "ref.h5"\n[analyses]\nmodules = ["mine.py:f"]\n', "no file"),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_suites_exit_2_with_one_line_and_record_nothing(toy: Path, tmp_path: Path, case: str) -> None:
    text, expected = BAD_SUITES[case]
    suite = toy / f"bad_{re.sub(r'[^a-z]', '_', case)}.toml"
    suite.write_text(text)
    store = tmp_path / "h.db"
    res = CliRunner().invoke(
        cli,
        ["validate", "run", "--suite", str(suite), "--candidate", str(toy / "same.h5"), "--label", "v1", "--store", str(store), "-o", str(tmp_path / "out")],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    last = res.stderr.splitlines()[-1]
    assert last.startswith("error: ") and res.stderr.count("error:") == 1 and expected in last, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "out").exists()
    assert not store.exists() or open_store(store).runs_of(suite.stem) == []


@pytest.mark.parametrize(
    ("candidate", "label", "expected"),
    [
        ("missing.h5", "v1", "not a shower/jet file, a run folder or a shipped model"),
        ("same.h5", "v 1", "--label 'v 1'"),
        ("suite.toml", "v1", "not a shower/jet file"),
    ],
)
def test_bad_candidates_and_labels(toy: Path, tmp_path: Path, candidate: str, label: str, expected: str) -> None:
    code, _, err = _validate(toy, candidate, label, "--store", str(tmp_path / "h.db"), "-o", str(tmp_path / "o"))
    last = err.splitlines()[-1]
    assert code == 2 and expected in last and last.startswith("error: ") and err.count("error:") == 1, err


def test_a_jet_file_against_a_shower_suite(toy: Path, tmp_path: Path) -> None:
    from showerforge.data.jetnet import write_jets

    rng = np.random.default_rng(0)
    pf = np.zeros((10, 30, 4), np.float32)
    pf[:, :5] = [0.01, 0.02, 0.2, 1.0]
    jets = write_jets(
        tmp_path / "jets.h5",
        {
            "particle_features": pf,
            "jet_features": rng.random((10, 4)).astype(np.float32),
            "jet_type": np.zeros(10, np.int8),
        },
    )
    code, _, err = _validate(toy, str(jets), "v1", "--store", str(tmp_path / "h.db"), "-o", str(tmp_path / "o"))
    assert code == 2 and "holds jets, the suite's reference holds showers" in err


MORE_BAD_SUITES = {
    "seed not an integer": ('[reference]\nfile = "ref.h5"\n[candidate]\nseed = "one"\n', "seed must be an integer"),
    "enabled as a string": ('[reference]\nfile = "ref.h5"\n[metrics]\nenabled = "false"\n', "must be true or false"),
    "classifier typo": (
        '[reference]\nfile = "ref.h5"\n[metrics]\nclassifiers = ["hgh_level"]\n',
        "unknown ['hgh_level']",
    ),
    "use as a string": ('[reference]\nfile = "ref.h5"\n[analyses]\nuse = "calo_energy"\n', "must be a list of strings"),
    "max_samples negative": (
        '[reference]\nfile = "ref.h5"\n[metrics]\nmax_samples = -1\n',
        "max_samples must be an integer >= 4",
    ),
    "missing floor file": ('[reference]\nfile = "ref.h5"\nfloor_file = "nofloor.h5"\n', "floor_file"),
}


@pytest.mark.parametrize("case", sorted(MORE_BAD_SUITES))
def test_suite_values_of_the_wrong_type(toy: Path, tmp_path: Path, case: str) -> None:
    text, expected = MORE_BAD_SUITES[case]
    suite = toy / f"typed_{re.sub(r'[^a-z]', '_', case)}.toml"
    suite.write_text(text)
    code, _, err = _run("validate", "run", "--suite", str(suite), "--candidate", str(toy / "same.h5"), "--label", "v1",
                        "--store", str(tmp_path / "h.db"), "-o", str(tmp_path / "out"))  # fmt: skip
    assert code == 2 and expected in err.splitlines()[-1] and "Traceback" not in err, err
    assert not (tmp_path / "h.db").exists() and not (tmp_path / "out").exists()


def test_inputs_checked_before_any_work(toy: Path, tmp_path: Path) -> None:
    # a binary file as the suite
    code, _, err = _run("validate", "run", "--suite", str(toy / "ref.h5"), "--candidate", "x", "--label", "v1")
    assert code == 2 and "not a text (TOML) file" in err
    # a candidate with NaN voxels, and one of another readout
    inc, x = _showers(50, 9)
    x[3, 7] = np.nan
    write_showers(tmp_path / "nan.h5", inc, x, MINI)
    code, _, err = _validate(toy, str(tmp_path / "nan.h5"), "v1", "--store", str(tmp_path / "h.db"))
    assert code == 2 and "nan.h5" in err and "finite" in err.splitlines()[-1]
    from showerforge.geometry import PRESETS

    ds2 = PRESETS["ds2"]
    write_showers(tmp_path / "ds2.h5", np.full(4, 1e4), np.ones((4, ds2.n_voxels), np.float32), ds2)
    code, _, err = _validate(toy, str(tmp_path / "ds2.h5"), "v1", "--store", str(tmp_path / "h.db"))
    assert code == 2 and "readout ds2 (6480 voxels), the suite's reference has mini (576 voxels)" in err
    # a read-only history fails before the work, an output folder holding other files is refused
    db = tmp_path / "ro.db"
    assert _validate(toy, "same.h5", "v1", "--store", str(db), "-o", str(tmp_path / "o1"))[0] == 0
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    code, _, err = _validate(toy, "same.h5", "v2", "--store", read_only, "-o", str(tmp_path / "o2"))
    assert code == 2 and "read-only" in err and not (tmp_path / "o2").exists()


def test_output_folder_of_other_files_is_refused(toy: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("my page")
    code, _, err = _validate(toy, "same.h5", "v1", "--store", str(tmp_path / "h.db"), "-o", str(mine))
    assert code == 2 and "holds other files" in err and (mine / "index.html").read_text() == "my page"


def test_a_failed_replace_keeps_the_recorded_page(toy: Path, tmp_path: Path) -> None:
    """The page moves into place only after the history commit: a run that cannot be recorded
    leaves the recorded run's page as it was."""
    store, out = tmp_path / "h.db", tmp_path / "o"
    assert _validate(toy, "same.h5", "r1", "--store", str(store), "-o", str(out))[0] == 0
    before = (out / "result.json").read_text()
    holder = sqlite3.connect(store)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, _, err = _validate(
            toy, "wide.h5", "r1", "--store", f"sqlite:///{store}?timeout=0.2", "-o", str(out), "--replace"
        )
    finally:
        holder.rollback()
        holder.close()
    assert code == 2 and "locked" in err
    assert (out / "result.json").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.")]


def test_a_users_analysis_that_raises_is_one_line(toy: Path, tmp_path: Path) -> None:
    (toy / "boom.py").write_text("def boom(sample):\n    raise ValueError('no such feature: foo')\n")
    suite = toy / "boom.toml"
    suite.write_text(
        '[reference]\nfile = "ref.h5"\n[analyses]\nuse = ["calo_energy"]\nmodules = ["boom.py:boom"]\n[metrics]\nenabled = false\n'
    )
    code, _, err = _run("validate", "run", "--suite", str(suite), "--candidate", str(toy / "same.h5"), "--label", "v1",
                        "--store", str(tmp_path / "h.db"))  # fmt: skip
    assert code == 2 and "analysis boom.py:boom raised ValueError: no such feature: foo" in err.splitlines()[-1]


def test_reading_commands_do_not_create_a_history(toy: Path, tmp_path: Path) -> None:
    code, _, err = _run("validate", "history", "--suite", str(toy / "suite.toml"), "--store", str(tmp_path / "typo.db"))
    assert code == 2 and "no such file" in err and not (tmp_path / "typo.db").exists()
