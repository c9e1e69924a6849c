"""Bad input, tried as a new user would: one line ``error: FILE [field]: ...``, exit code 2 (inspect: 1),
no traceback, inputs untouched, nothing half-written left behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from functools import partial

import h5py
import numpy as np
import pytest
from test_train_generate import toy_showers

from showerforge.data.calo import write_showers
from showerforge.geometry import PRESETS, Geometry, ReadoutLayer

CLI = [sys.executable, "-m", "showerforge.cli"]
TINY = ["--set", "d_model=16", "--set", "n_blocks=1", "--set", "n_heads=2"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fails(args, words, code=2, timeout=300):
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    err = proc.stderr
    assert proc.returncode == code, (args, err[-2000:])
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, (w, err)
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    inc, sh = toy_showers(120, seed=5)
    write_showers(d / "good.h5", inc, sh, PRESETS["mini"], {"particle": "e-"})
    for name, edit in {
        "nan": lambda s, i: s.__setitem__((37, 4), np.nan),
        "neg": lambda s, i: s.__setitem__((12, 9), -3.0),
        "inf_inc": lambda s, i: i.__setitem__(50, np.inf),
    }.items():
        s, i = sh.copy(), inc.copy()
        edit(s, i)
        write_showers(d / f"{name}.h5", i, s, PRESETS["mini"], {"particle": "e-"})
    write_showers(d / "empty.h5", inc[:0], sh[:0], PRESETS["mini"])
    (d / "notes.txt").write_text("not a checkpoint\n")
    subprocess.run(
        [*CLI, "train", "--data", d / "good.h5", "-o", d / "run", "--epochs", "1", "--device", "cpu", *TINY],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return d


def test_energy_without_unit_is_refused(tmp_path):
    _fails(
        ["simulate", "calo", "--geometry", "mini", "--energy", "5", "--n", "2", "-o", tmp_path / "x.h5"],
        ["'5'", "no unit", "GeV"],
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name,words",
    [
        ("nan", ["[showers]", "first at row 37"]),
        ("neg", ["[showers]", "negative", "first at row 12"]),
        ("inf_inc", ["[incident_energies]", "first at row 50"]),
    ],
)
def test_training_refuses_bad_values(files, tmp_path, name, words):
    before = _sha(files / f"{name}.h5")
    _fails(
        ["train", "--data", files / f"{name}.h5", "-o", tmp_path / "run", "--epochs", "1", *TINY],
        [f"{name}.h5", *words],
    )
    assert _sha(files / f"{name}.h5") == before and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_evaluate_refuses_nan_and_names_the_file(files, tmp_path):
    _fails(
        [
            "evaluate",
            "--reference",
            files / "good.h5",
            "--candidate",
            files / "nan.h5",
            "-o",
            tmp_path / "r",
            "--quick",
        ],
        ["nan.h5", "[showers]", "first at row 37"],
    )


def test_evaluate_output_checked_before_work(files, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _fails(
        ["evaluate", "--reference", files / "good.h5", "--candidate", files / "good.h5", "-o", blocker],
        [str(blocker), "is a file"],
    )


def _refused_input(files, tmp_path, case):
    """A file ``evaluate`` refuses, and a word its error names."""
    if case in ("nan", "neg", "empty"):
        return files / f"{case}.h5", {"nan": "NaN", "neg": "negative", "empty": "0 showers"}[case]
    inc, sh = toy_showers(6, seed=9)
    if case == "one":
        return write_showers(tmp_path / "one.h5", inc[:1], sh[:1], PRESETS["mini"]), "at least 2 showers"
    wide = Geometry("wide", tuple(ReadoutLayer(tuple(10.0 * i for i in range(7)), 8) for _ in range(12)))
    assert wide.n_voxels == PRESETS["mini"].n_voxels  # the same voxel count, another readout
    return write_showers(tmp_path / "wide.h5", inc, sh, wide), "differs from the readout"


@pytest.mark.parametrize("case", ["nan", "neg", "empty", "one", "geometry"])
def test_refused_evaluate_creates_no_output_folder(files, tmp_path, case):
    bad, word = _refused_input(files, tmp_path, case)
    out = tmp_path / "new" / "deeper" / "report"
    _fails(["evaluate", "--reference", files / "good.h5", "--candidate", bad, "-o", out, "--quick"], [bad.name, word])
    assert not (tmp_path / "new").exists()  # neither the folder nor its parents


def test_refused_evaluate_leaves_an_existing_folder_as_it_was(files, tmp_path):
    bad, word = _refused_input(files, tmp_path, "geometry")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    _fails(["evaluate", "--reference", files / "good.h5", "--candidate", bad, "-o", out, "--quick"], [word])
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me\n"


_SMALL_EVALUATION = ["--quick", "--no-plots", "--max-showers", "40"]


def test_evaluate_non_utf8_names(files, tmp_path):
    """File and folder names that are not UTF-8: a whole report, the names shown with U+FFFD on the page."""
    import os
    import shutil

    cand = tmp_path / os.fsdecode(b"cand\xff.h5")
    shutil.copy(files / "good.h5", cand)
    out = tmp_path / os.fsdecode(b"r\xffep")
    args = ["evaluate", "--reference", files / "good.h5", "--candidate", cand, "-o", out, "--nplm-toys", "0"]
    proc = subprocess.run([*CLI, *map(str, args), *_SMALL_EVALUATION], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cand\ufffd.h5" in (out / "index.html").read_text(encoding="utf-8")
    assert json.loads((out / "metrics.json").read_text())["candidate"]["path"] == str(cand)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([cand.name, out.name])  # no staging left


def test_validate_run_non_utf8_names(files, tmp_path):
    """``validate run`` with a candidate and an output folder whose names are not UTF-8: page and history."""
    import os
    import shutil

    suite = tmp_path / "suite.toml"
    suite.write_text(
        f'name = "e"\ngates = ["chi2_ndf_max <= 1000"]\n[reference]\nfile = "{files / "good.h5"}"\n'
        "[metrics]\nenabled = false\n"
    )
    cand = tmp_path / os.fsdecode(b"cand\xff.h5")
    shutil.copy(files / "good.h5", cand)
    out = tmp_path / os.fsdecode(b"v\xffal")
    args = ["validate", "run", "--suite", suite, "--candidate", cand, "--label", "v1", "-o", out]
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cand\ufffd.h5" in (out / "index.html").read_text(encoding="utf-8")
    assert (out / "result.json").is_file()


def test_evaluate_reports_progress_on_stderr(files, tmp_path):
    """Not a terminal: plain lines per step (reading, bootstrap, classifier epochs, NPLM toys)."""
    args = ["evaluate", "--reference", files / "good.h5", "--candidate", files / "good.h5", "-o", tmp_path / "r"]
    proc = subprocess.run(
        [*CLI, *map(str, args), *_SMALL_EVALUATION, "--nplm-toys", "2"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    err = proc.stderr
    for line in (
        "reference: 0/40 showers (0 %)",
        "reference: 40/40 showers (100 %)",
        "candidate: 40/40 showers",
        "bootstrap, candidate: 0/",
        "bootstrap, floor: ",
        "high-level classifier, candidate: 15/15 epochs (100 %)",
        "low-level classifier, floor: ",
        "verdict classifier, floor: 300/300 epochs",
        "NPLM toys: 2/2 toys",
    ):
        assert line in err, (line, err)
    assert "Traceback" not in err and "report: " in proc.stdout


def test_generate_may_not_overwrite_its_input(files):
    before = _sha(files / "good.h5")
    _fails(
        ["generate", "--model", files / "run", "--energies-from", files / "good.h5", "-o", files / "good.h5"],
        ["good.h5", "overwrite the input"],
    )
    assert _sha(files / "good.h5") == before
    assert sorted(p.name for p in files.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("device,words", [("cuda", ["CUDA is not available"]), ("banana", ["banana", "device"])])
def test_unusable_device(files, tmp_path, device, words):
    _fails(["train", "--data", files / "good.h5", "-o", tmp_path / "run", "--device", device, *TINY], words)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_hyperparameter_of_wrong_type(files, tmp_path):
    _fails(
        ["train", "--data", files / "good.h5", "-o", tmp_path / "run", "--set", "d_model=abc"],
        ["d_model", "must be int", "'abc'"],
    )


def test_resume_with_other_settings(files):
    before = _sha(files / "run" / "checkpoint.pt")
    _fails(
        ["train", "--data", files / "good.h5", "-o", files / "run", "--epochs", "1", "--lr", "0.5", *TINY],
        ["cannot resume", "train.lr"],
    )
    assert _sha(files / "run" / "checkpoint.pt") == before


def test_text_file_as_model(files, tmp_path):
    _fails(
        ["generate", "--model", files / "notes.txt", "--energy", "1GeV", "--n", "2", "-o", tmp_path / "x.h5"],
        ["notes.txt", "not a"],
    )
    assert not (tmp_path / "x.h5").exists()


def test_inspect_fails_on_empty_file(files):
    proc = subprocess.run([*CLI, "inspect", files / "empty.h5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "0 showers" in proc.stderr and "checks passed" not in proc.stdout


def test_bad_files_are_untouched_by_inspect(files):
    with h5py.File(files / "nan.h5") as f:
        assert np.isnan(f["showers"][37, 4])


def _jet_file(path, pf, jf, jt):
    with h5py.File(path, "w") as f:
        f["particle_features"], f["jet_features"], f["jet_type"] = pf, jf, jt


@pytest.mark.parametrize(
    "case,words",
    [
        ("neg_pt", ["[particle_features]", "pT_rel (column 2) >= 0"]),
        ("int", ["[particle_features]", "float array", "int64"]),
    ],
)
def test_training_refuses_bad_jets(tmp_path, case, words):
    rng = np.random.default_rng(0)
    pf = np.zeros((20, 5, 4))
    pf[:, :3, :2] = rng.normal(0, 0.1, (20, 3, 2))
    pf[:, :3, 2] = 1 / 3
    pf[:, :3, 3] = 1
    jf = np.stack([np.full(20, 1000.0), np.zeros(20), np.full(20, 50.0), np.full(20, 3.0)], 1)
    if case == "neg_pt":
        pf[7, 1, 2] = -0.2
    else:
        pf = pf.astype(np.int64)
    path = tmp_path / f"{case}.h5"
    _jet_file(path, pf, jf, np.zeros(20, np.int8))
    _fails(["train", "--data", path, "-o", tmp_path / "run", "--epochs", "1"], [f"{case}.h5", *words])
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_missing_optional_package_names_its_extra():
    from showerforge.extras import missing_extra_message

    msg = missing_extra_message(ModuleNotFoundError("No module named 'geant4_pybind'", name="geant4_pybind"))
    assert "showerforge[geant4]" in msg
    assert missing_extra_message(ModuleNotFoundError("x", name="not_an_extra")) is None
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    extras = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    from showerforge.extras import EXTRAS

    for module, extra in EXTRAS.items():
        assert extra in extras, (module, extra)


@pytest.fixture(scope="module")
def top_jets(tmp_path_factory):
    from showerforge.data.jetnet import write_jets

    rng = np.random.default_rng(0)
    pf = np.zeros((40, 5, 4), np.float32)
    pf[:, :3, :2] = rng.normal(0, 0.1, (40, 3, 2))
    pf[:, :3, 2], pf[:, :3, 3] = 1 / 3, 1
    jf = np.stack([np.full(40, 1000.0), np.zeros(40), np.full(40, 50.0), np.full(40, 3.0)], 1).astype(np.float32)
    path = tmp_path_factory.mktemp("jets") / "jets.h5"
    write_jets(path, {"particle_features": pf, "jet_features": jf, "jet_type": np.full(40, 2, np.int8)})
    return path


def test_jet_file_given_to_a_shower_model(top_jets, tmp_path):
    _fails(["train", "--data", top_jets, "--model", "cfm-voxel", "-o", tmp_path / "r"], ["jets.h5", "cfm-set"])


def test_unknown_jet_type_suffix(top_jets, tmp_path):
    _fails(
        ["evaluate", "--reference", f"{top_jets}:x", "--candidate", top_jets, "-o", tmp_path / "r"],
        ["[jet_type]", "unknown jet type 'x'"],
    )


def test_jet_type_absent_from_the_file(top_jets, tmp_path):
    _fails(
        ["train", "--data", f"{top_jets}:q", "-o", tmp_path / "r", "--epochs", "1"],
        ["jets.h5:q", "selects no jets", "t: 40"],
    )
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_second_campaign_on_one_output_is_refused(tmp_path):
    from showerforge.simulate.shards import campaign_lock

    out = tmp_path / "x.h5"
    with campaign_lock(out):
        err = _fails(
            ["simulate", "calo", "--geometry", "mini", "--energy", "1GeV", "--n", "2", "-o", out],
            ["x.h5", "another campaign", f"pid {__import__('os').getpid()}"],
        )
        assert "x.h5.lock" in err
    assert not out.exists() and not (tmp_path / "x.h5.lock").exists()


def test_stale_lock_is_taken_over(tmp_path):
    import json
    import socket

    from showerforge.simulate.shards import campaign_lock

    out = tmp_path / "x.h5"
    (tmp_path / "x.h5.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345}))
    with campaign_lock(out) as lock:
        assert json.loads(lock.read_text())["pid"] == __import__("os").getpid()


def test_internal_value_error_keeps_its_traceback(monkeypatch, tmp_path):
    """A plain ValueError is a failure of showerforge itself: it is not printed as a user error."""
    from click.testing import CliRunner

    import showerforge.api
    from showerforge.cli import cli

    def broken(**kwargs):
        raise ValueError("internal invariant broken")

    monkeypatch.delenv("SHOWERFORGE_DEBUG", raising=False)
    monkeypatch.setattr(showerforge.api, "simulate_jets", broken)
    result = CliRunner().invoke(cli, ["simulate", "jets", "--type", "g", "--n", "1", "-o", str(tmp_path / "j.h5")])
    assert type(result.exception) is ValueError and "internal invariant broken" in str(result.exception)
    assert result.exit_code == 1 and "error:" not in result.output


def test_user_error_is_one_line_with_exit_code_2(monkeypatch, capsys):
    from showerforge.cli import friendly
    from showerforge.errors import UserError

    @friendly
    def command():
        raise UserError("--energy '10': no unit; expected e.g. 10GeV\nmore detail")

    monkeypatch.delenv("SHOWERFORGE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        command()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: --energy '10': no unit; expected e.g. 10GeV\n"


def test_file_and_option_errors_are_user_errors():
    from showerforge.data.calo import CaloFileError
    from showerforge.data.io import OutputPathError
    from showerforge.data.jetnet import JetFileError
    from showerforge.errors import UserError
    from showerforge.geometry import GeometryError
    from showerforge.runs.checkpoint import CheckpointError
    from showerforge.simulate.energies import parse_energy

    for cls in (CaloFileError, JetFileError, GeometryError, OutputPathError, CheckpointError):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError)
    with pytest.raises(UserError, match="no unit"):
        parse_energy("10")


def test_unknown_material_is_refused_before_any_shard(tmp_path):
    geo = PRESETS["mini"].to_dict() | {"name": "bad", "absorber": "G4_NOPE"}
    (tmp_path / "bad.json").write_text(json.dumps(geo))
    _fails(
        [
            "simulate",
            "calo",
            "--geometry",
            tmp_path / "bad.json",
            "--energy",
            "1GeV",
            "--n",
            "2",
            "-o",
            tmp_path / "x.h5",
        ],
        ["'bad'", "[absorber]", "'G4_NOPE'", "NIST material"],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_unreachable_scheduler_fails_fast(tmp_path):
    t0 = time.monotonic()
    _fails(
        ["simulate", "jets", "--type", "t", "--n", "2", "--scheduler", "tcp://127.0.0.1:9", "-o", tmp_path / "j.h5"],
        ["--scheduler tcp://127.0.0.1:9", "cannot connect", "dask scheduler"],
    )
    assert time.monotonic() - t0 < 25  # a refused port is known at once (was a 31 s wait)
    assert list(tmp_path.iterdir()) == []


def test_shard_dir_keeps_only_what_a_resume_can_use(tmp_path):
    from showerforge.simulate.shards import shard_dir

    with pytest.raises(RuntimeError), shard_dir(tmp_path / "a.shards") as d:
        (d / "shard-00000.json").write_text("{}")
        raise RuntimeError("shard failed")
    assert not (tmp_path / "a.shards").exists()  # nothing finished: nothing left
    with pytest.raises(RuntimeError), shard_dir(tmp_path / "b.shards") as d:
        (d / "shard-00000.h5").write_bytes(b"")
        raise RuntimeError("shard 1 failed")
    assert (tmp_path / "b.shards" / "shard-00000.h5").exists()  # a finished shard is kept for the resume
    (tmp_path / "c.shards").mkdir()
    with pytest.raises(RuntimeError), shard_dir(tmp_path / "c.shards"):
        raise RuntimeError("failed")
    assert (tmp_path / "c.shards").is_dir()  # a folder from an earlier run is never removed


def test_option4_without_geant4_data_is_refused_before_any_shard(tmp_path):
    from showerforge.simulate.g4data import geant4_environment

    if geant4_environment()[1]["physics_data"] != "approximate":
        pytest.skip("the real Geant4 data sets are installed here")
    _fails(
        ["simulate", "calo", "--geometry", "mini", "--physics", "option4", "--energy", "1GeV", "--n", "2"]
        + ["-o", tmp_path / "x.h5"],
        ["option4", "GEANT4_DATA_DIR"],
    )
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- export (ONNX)
def _nothing_written(folder, before):
    assert sorted(p.name for p in folder.iterdir()) == before, sorted(p.name for p in folder.iterdir())


def test_export_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notarun").mkdir()
    _fails(["export", "--model", tmp_path / "notarun", "-o", tmp_path / "m.onnx"], ["notarun", "checkpoint.pt"])
    _nothing_written(tmp_path, ["notarun"])


def test_export_refuses_a_file_that_is_not_a_checkpoint(files, tmp_path):
    _fails(
        ["export", "--model", files / "notes.txt", "-o", tmp_path / "m.onnx"], ["notes.txt", "not a torch checkpoint"]
    )
    _nothing_written(tmp_path, [])


@pytest.mark.parametrize(
    "option,value,words",
    [("--layout", "par05", ["--layout", "'par05'", "par04"]), ("--format", "tflite", ["--format", "'tflite'", "onnx"])],
)
def test_export_refuses_an_unknown_layout_or_format(files, tmp_path, option, value, words):
    _fails(["export", "--model", files / "run", option, value, "-o", tmp_path / "m.onnx"], words)
    _nothing_written(tmp_path, [])


def test_export_refuses_a_geometry_par04_cannot_express(files, tmp_path):
    from showerforge.runs.checkpoint import read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(files / "run")
    layers = [
        {"r_edges_mm": [0, 8, 16, 24, 32, 40, 48], "n_alpha": 8},
        {"r_edges_mm": list(range(0, 72, 8)), "n_alpha": 6},
    ]
    ckpt["geometry"] = PRESETS["mini"].to_dict() | {"name": "zigzag", "readout": layers * 6}  # 48 voxels per layer
    save_checkpoint(tmp_path / "zigzag.pt", ckpt)
    _fails(
        ["export", "--model", tmp_path / "zigzag.pt", "--layout", "par04", "-o", tmp_path / "m.onnx"],
        ["'zigzag'", "same binning in every layer", "--layout calochallenge"],
    )
    _nothing_written(tmp_path, ["zigzag.pt"])


def test_export_may_not_overwrite_its_input(files):
    before = _sha(files / "run" / "checkpoint.pt")
    _fails(
        ["export", "--model", files / "run", "-o", files / "run" / "checkpoint.pt"],
        ["checkpoint.pt", "overwrite the input"],
    )
    assert _sha(files / "run" / "checkpoint.pt") == before


def test_export_to_an_unwritable_place(files, tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    _fails(["export", "--model", files / "run", "-o", tmp_path / "plain" / "m.onnx"], ["plain/m.onnx", "not writable"])
    _nothing_written(tmp_path, ["plain"])


def test_generate_refuses_an_unknown_backend(files, tmp_path):
    _fails(
        [
            "generate",
            "--model",
            files / "run",
            "--energy",
            "1GeV",
            "--n",
            "2",
            "--backend",
            "tensorrt",
            "-o",
            tmp_path / "x.h5",
        ],
        ["--backend", "'tensorrt'", "onnxruntime"],
    )
    _nothing_written(tmp_path, [])


# ----------------------------------------------------------------------------- promises kept
# Each test below failed before its fix (data loss with exit 0, a traceback, or a silent or
# misleading answer); see docs/errors.md for the contract they hold the commands to.
def _listing(folder):
    return sorted((p.relative_to(folder).as_posix(), _sha(p) if p.is_file() else "") for p in folder.rglob("*"))


def _refused(args, words):
    """``_fails`` in this process (no interpreter start per command): exit code 2, one line ``error: ...``."""
    from click.testing import CliRunner

    from showerforge.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args])
    err = res.stderr
    assert res.exit_code == 2, (args, res.output[-2000:], res.exception)
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, (w, err)
    return err


@pytest.fixture(scope="module")
def refiner(files):
    from showerforge.refine import fit_refiner

    out = files / "refiner"
    fit_refiner(files / "good.h5", files / "good.h5", out, method="reweight", epochs=1, threads=1)
    return out


@pytest.mark.parametrize("name", ["refiner.pt", "refiner.json", "refined.h5"])
def test_refine_apply_never_writes_into_the_refiner(files, refiner, name):
    before = _listing(refiner)
    _refused(
        ["refine", "apply", "--refiner", refiner, "--input", files / "good.h5", "-o", refiner / name],
        [f"refiner/{name}", "input", "never written into an input's folder"],
    )
    assert _listing(refiner) == before


@pytest.mark.parametrize(
    "command,target",
    [
        (["export"], "config.json"),
        (["export"], "history.json"),
        (["generate", "--energy", "1GeV", "--n", "2"], "config.json"),
        (["generate", "--energy", "1GeV", "--n", "2"], "teacher_trajectories.h5"),
        (["generate", "--energy", "1GeV", "--n", "2"], "new/x.h5"),
    ],
)
def test_outputs_never_go_into_the_run_folder(files, command, target):
    before = _listing(files / "run")
    _refused([*command, "--model", files / "run", "-o", files / "run" / target], [target, "input"])
    assert _listing(files / "run") == before  # nothing overwritten, no folder created
    _refused([*command, "--model", files / "run" / "checkpoint.pt", "-o", files / "run" / target], [target, "input"])
    assert _listing(files / "run") == before


def test_distill_never_writes_into_its_teacher(files):
    before = _listing(files / "run")
    _refused(["distill", "--model", files / "run", "-o", files / "run" / "student"], ["student", "input folder"])
    assert _listing(files / "run") == before


@pytest.mark.parametrize(
    "setting,words",
    [
        ("d_model=-4", ["--set d_model=-4", "d_model >= 1"]),
        ("d_model=0", ["--set d_model=0", "d_model >= 1"]),
        ("n_heads=0", ["--set n_heads=0", "n_heads >= 1"]),
        ("d_model=18", ["--set d_model=18", "multiple of n_heads"]),
    ],
)
def test_model_hyperparameters_are_checked_before_the_run_directory(files, tmp_path, setting, words):
    _refused(["train", "--data", files / "good.h5", "-o", tmp_path / "run", "--epochs", "1", "--set", setting], words)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_an_opset_the_exporter_cannot_write(files, tmp_path):
    from showerforge.deploy.export import supported_opsets

    lo, hi = supported_opsets()
    _refused(
        ["export", "--model", files / "run", "--opset", "99", "-o", tmp_path / "m.onnx"],
        ["--opset 99", f"opsets {lo} to {hi}"],
    )
    _nothing_written(tmp_path, [])


@pytest.mark.parametrize("energy", ["1e-30MeV", "1e30GeV", "1000TeV", "1:20TeV"])
def test_shower_energies_outside_the_physical_range_are_refused(tmp_path, energy):
    _fails(
        ["simulate", "calo", "--geometry", "mini", "--energy", energy, "--n", "2", "-o", tmp_path / "out" / "x.h5"],
        ["--energy", "allowed range 1 MeV to 10 TeV"],
        timeout=60,  # before: a ZeroDivisionError after the campaign, or a campaign without end
    )
    assert list(tmp_path.iterdir()) == []  # no folder, no shards, no lock


@pytest.mark.parametrize(
    "energy,words", [("-5GeV", ["'-5GeV'", "negative"]), ("1:nanGeV", ["'nanGeV'", "not a number"])]
)
def test_energy_messages_say_what_is_wrong(tmp_path, energy, words):
    _refused(
        ["simulate", "calo", "--geometry", "mini", f"--energy={energy}", "--n", "2", "-o", tmp_path / "x.h5"], words
    )
    assert list(tmp_path.iterdir()) == []


def test_jet_labels_without_names_are_read_with_a_warning(tmp_path):
    path = tmp_path / "other.h5"
    pf = np.zeros((6, 3, 4), np.float32)
    pf[:, 0, 2], pf[:, 0, 3] = 1.0, 1.0
    jf = np.tile(np.array([1000.0, 0.0, 50.0, 1.0], np.float32), (6, 1))
    _jet_file(path, pf, jf, np.array([0, 0, 1, 1, 2, 2], np.int8))  # no jet_types attribute
    proc = subprocess.run([*CLI, "inspect", path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "other.h5" in warning[0] and "0=g, 1=q, 2=t, 3=w, 4=z" in warning[0], proc.stderr


def test_a_jet_type_selection_that_selects_nothing_is_refused(top_jets, tmp_path):
    _refused(
        ["refine", "fit", "--source", f"{top_jets}:g", "--target", top_jets, "-o", tmp_path / "r"],
        ["jets.h5:g", "selects no jets", "'g'", "t: 40"],
    )
    assert list(tmp_path.iterdir()) == []


def test_inspect_fails_on_a_file_without_jets(tmp_path):
    path = tmp_path / "none.h5"
    with h5py.File(path, "w") as f:
        f["particle_features"] = np.zeros((0, 5, 4), np.float32)
        f["jet_features"] = np.zeros((0, 4), np.float32)
        f["jet_type"] = np.zeros(0, np.int8)
        f.attrs["jet_types"] = json.dumps(["g", "q", "t", "w", "z"])
    proc = subprocess.run([*CLI, "inspect", path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "0 jets" in proc.stderr and "empty" in proc.stderr, proc.stderr
    assert "checks passed" not in proc.stdout


@pytest.fixture(scope="module")
def jet_run(top_jets):
    from showerforge.training.jet_set import train_jets

    out = top_jets.parent / "jetrun"
    tiny = {"d_model": 8, "d_global": 4, "n_blocks": 1}
    train_jets(top_jets, out, epochs=1, device="cpu", progress=False, num_threads=1, config_overrides=tiny)
    return out


def test_generate_says_which_kind_of_model_it_was_given(files, jet_run, tmp_path):
    _refused(
        ["generate", "--model", jet_run, "--energy", "1GeV", "--n", "2", "-o", tmp_path / "x.h5"],
        ["jetrun", "is a jet model", "use --type and --n instead of --energy"],
    )
    _refused(
        ["generate", "--model", files / "run", "--type", "t", "--n", "2", "-o", tmp_path / "x.h5"],
        ["run", "is a shower model", "instead of --type"],
    )
    _nothing_written(tmp_path, [])


@pytest.mark.parametrize(
    "command",
    [
        ["inspect", "{d}"],
        ["train", "--data", "{d}", "-o", "{t}/run"],
        ["evaluate", "--reference", "{d}", "--candidate", "{d}", "-o", "{t}/r"],
    ],
)
def test_a_folder_given_for_a_file(tmp_path, command):
    (tmp_path / "folder").mkdir()
    args = [a.format(d=tmp_path / "folder", t=tmp_path) for a in command]
    _refused(args, ["folder: is a folder; expected an HDF5 file"])
    _nothing_written(tmp_path, ["folder"])


def test_distill_resumes_with_another_spelling_of_its_teacher(files, tmp_path, monkeypatch):
    from showerforge.generate.distill import distill as distill_with
    from showerforge.kinds import load

    distill = partial(distill_with, load=load)

    common = {"steps": 1, "n_pairs": 8, "batch_size": 8, "device": "cpu", "progress": False, "num_threads": 1}
    monkeypatch.chdir(files)
    distill("run", tmp_path / "s", epochs=1, **common)  # the teacher as a relative folder ...
    # ... then as an absolute path to its checkpoint: the same SHA-256, so the same settings
    assert distill(files.resolve() / "run" / "checkpoint.pt", tmp_path / "s", epochs=2, **common).epochs_completed == 2


def test_distill_refuses_more_steps_than_its_teacher(files, tmp_path):
    _fails(
        ["distill", "--model", files / "run", "--steps", "100000", "-o", tmp_path / "s"],
        ["--steps 100000", "8 midpoint steps", "not faster than its teacher", "--steps 1 to 8"],
        timeout=60,  # before: it ran without end
    )
    _refused(
        ["distill", "--model", files / "run", "--steps", "2", "--trajectory-steps", "64", "-o", tmp_path / "s"],
        ["--trajectory-steps 64", "at most 8"],
    )
    _nothing_written(tmp_path, [])


def test_generate_shows_its_progress(files, tmp_path):
    proc = subprocess.run(
        [*CLI, "generate", "--model", files / "run", "--energy", "1:10GeV", "--n", "40", "-o", tmp_path / "g.h5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()  # not a terminal: plain lines
    assert lines[0].startswith("generating showers: 0/40 showers (0 %)"), proc.stderr
    assert lines[-1].startswith("generating showers: 40/40 showers (100 %)"), proc.stderr


VALIDATION_SUITE = """name = "toy"
gates = ["chi2_ndf_max <= 1000"]
[reference]
file = "good.h5"
[analyses]
use = ["calo_energy"]
bins = 10
[metrics]
enabled = false
"""


@pytest.fixture(scope="module")
def validated(files, tmp_path_factory):
    """A suite with one recorded version, v1."""
    import shutil

    from showerforge.validate.run import validate_run

    d = tmp_path_factory.mktemp("validated")
    shutil.copy(files / "good.h5", d / "good.h5")
    (d / "suite.toml").write_text(VALIDATION_SUITE)
    validate_run(d / "suite.toml", d / "good.h5", "v1")
    return d


def test_validate_history_refuses_an_unknown_metric(validated):
    _fails(
        ["validate", "history", "--suite", validated / "suite.toml", "--metric", "bogus"],
        ["--metric 'bogus'", "suite 'toy'", "known: ", "chi2_ndf_max"],
    )
    ok = subprocess.run(
        [*CLI, "validate", "history", "--suite", validated / "suite.toml", "--metric", "chi2_ndf(etot_over_einc)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "chi2_ndf(etot_over_einc)" in ok.stdout, ok.stderr


def test_validate_run_cleans_up_after_a_run_killed_in_its_commit_window(validated):
    import os
    import shutil
    import socket

    from showerforge.validate.run import validate_run

    folder = validated / "validation" / "toy"
    dead = f"{2**22 + 12345}@{socket.gethostname()}"  # above pid_max: no such process
    alive = f"{os.getpid()}@{socket.gethostname()}"
    # killed after the history recorded v1 and before its page was moved into place
    shutil.move(folder / "v1", folder / f".v1.partial-{dead}-abcdefgh")
    (folder / f".v7.partial-{dead}-abcdefgh").mkdir()  # killed while measuring: nothing recorded
    (folder / f".v7.partial-{dead}-abcdefgh" / "plots").mkdir()
    (folder / f".v8.partial-{alive}-abcdefgh").mkdir()  # a run still going on
    (folder / ".v6.partial-abcd1234").mkdir()  # an older version's folder, a day old
    os.utime(folder / ".v6.partial-abcd1234", (time.time() - 2 * 86400,) * 2)
    (folder / ".v5.partial-abcd5678").mkdir()  # an older version's folder, fresh: maybe still running
    validate_run(validated / "suite.toml", validated / "good.h5", "v2")
    left = sorted(p.name for p in folder.iterdir())
    assert left == [".v5.partial-abcd5678", f".v8.partial-{alive}-abcdefgh", "v1", "v2"], left
    assert json.loads((folder / "v1" / "result.json").read_text())["label"] == "v1"
