"""CaloChallenge files: round trip, streaming, validation and the one-line errors of `inspect`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from showerforge.cli import cli
from showerforge.data.calo import CaloFileError, open_showers, validate_file, write_showers
from showerforge.data.io import OutputPathError, atomic_output, check_writable
from showerforge.geometry import PRESETS

MINI = PRESETS["mini"]


def _showers(n: int, geo=MINI, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inc = np.exp(rng.uniform(np.log(1e3), np.log(1e4), n))
    sh = rng.exponential(1.0, (n, geo.n_voxels)) * (rng.random((n, geo.n_voxels)) < 0.3)
    sh *= (inc / sh.sum(axis=1))[:, None]  # E_dep = E_inc
    return inc, sh


@pytest.fixture
def good(tmp_path) -> Path:
    inc, sh = _showers(50)
    return write_showers(tmp_path / "good.h5", inc, sh, MINI, {"particle": "e-", "seed": 1})


def _raw(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


def test_round_trip_and_streaming(good):
    inc, sh = _showers(50)
    with open_showers(good) as f:
        assert len(f) == 50 and f.geometry == MINI and f.geometry_source == "attribute"
        got_inc, got_sh = f.read()
        chunks = list(f.iter_chunks(7))
    assert np.array_equal(got_sh, sh.astype(np.float32)) and np.array_equal(got_inc, inc.astype(np.float32))
    assert len(chunks) == 8 and np.array_equal(np.concatenate([c[1] for c in chunks]), got_sh)


def test_foreign_file_without_attributes_is_accepted(tmp_path):
    """A file from another tool (CaloChallenge layout, no attributes) is read by its voxel count."""
    inc, sh = _showers(20, PRESETS["ds2"])
    path = _raw(
        tmp_path / "foreign.h5", incident_energies=inc.reshape(-1, 1).astype(np.float32), showers=sh.astype(np.float32)
    )
    rep = validate_file(path)
    assert rep.ok and rep.geometry == "ds2" and rep.geometry_source == "voxel count"
    assert rep.stats["mean_etot_over_einc"] == pytest.approx(1.0, rel=1e-5)


def test_dataset1_file_found_by_voxel_count(tmp_path):
    inc, sh = _showers(10, PRESETS["mini"])
    sh = np.zeros((10, 368), np.float32)
    path = _raw(tmp_path / "ds1.h5", incident_energies=inc.reshape(-1, 1), showers=sh)
    with open_showers(path) as f:
        assert f.geometry.n_voxels == 368 and not f.geometry.is_regular


@pytest.mark.parametrize(
    "case,field,match",
    [
        ("not_hdf5", None, "not a readable HDF5"),
        ("truncated", None, "not a readable HDF5"),
        ("missing_key", "showers", "missing dataset"),
        ("wrong_rows", "showers", "rows"),
        ("wrong_voxels", "showers", "voxels"),
        ("int_dtype", "incident_energies", "floating"),
        ("geometry_mismatch", "geometry", "readout"),
    ],
)
def test_structural_errors_name_file_and_field(tmp_path, good, case, field, match):
    path = tmp_path / f"{case}.h5"
    inc, sh = _showers(10)
    geometry = None
    if case == "not_hdf5":
        path.write_text("incident_energies,showers\n1,2\n")
    elif case == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "missing_key":
        _raw(path, incident_energies=inc.reshape(-1, 1))
    elif case == "wrong_rows":
        _raw(path, incident_energies=inc.reshape(-1, 1), showers=sh[:5])
    elif case == "wrong_voxels":
        write_showers(path, inc, sh, MINI)
        geometry = "ds2"
        match = "voxel"
    elif case == "int_dtype":
        _raw(path, incident_energies=np.ones((10, 1), np.int32), showers=sh)
    elif case == "geometry_mismatch":
        import dataclasses

        other = dataclasses.replace(
            MINI,
            name="mini-wide",
            readout=tuple(type(layer)(tuple(2 * e for e in layer.r_edges_mm), layer.n_alpha) for layer in MINI.readout),
        )
        write_showers(path, inc, sh, other)
        geometry = "mini"
    with pytest.raises(CaloFileError, match=match) as err:
        open_showers(path, geometry).close()
    assert str(path) in str(err.value)
    if field and case != "wrong_voxels":
        assert f"[{field}]" in str(err.value)


@pytest.mark.parametrize(
    "defect,field", [("nan", "showers"), ("negative", "showers"), ("neg_energy", "incident_energies")]
)
def test_value_errors_found_while_streaming(tmp_path, defect, field):
    inc, sh = _showers(30)
    if defect == "nan":
        sh[17, 3] = np.nan
    elif defect == "negative":
        sh[29, 0] = -1.0
    else:
        inc[4] = -5.0
    path = write_showers(tmp_path / "x.h5", inc, sh, MINI)
    rep = validate_file(path, chunk=8)
    assert not rep.ok and rep.errors[0].startswith(field)
    row = {"nan": 17, "negative": 29, "neg_energy": 4}[defect]
    assert f"row {row}" in rep.errors[0]


def test_units_plausibility_warns_for_gev(tmp_path):
    inc, sh = _showers(10)
    path = write_showers(tmp_path / "gev.h5", inc / 1e6, sh / 1e6, MINI)
    rep = validate_file(path)
    assert rep.ok and any("GeV" in w for w in rep.warnings)


def test_cli_inspect_ok_and_errors(tmp_path, good):
    runner = CliRunner()
    res = runner.invoke(cli, ["inspect", str(good)])
    assert res.exit_code == 0, res.output
    assert "mini" in res.output and "checks      passed" in res.output
    bad = tmp_path / "bad.h5"
    bad.write_text("nope")
    res = runner.invoke(cli, ["inspect", str(bad)])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and str(bad) in res.stderr
    assert "Traceback" not in res.output
    inc, sh = _showers(10)
    sh[2, 2] = np.nan
    nan = write_showers(tmp_path / "nan.h5", inc, sh, MINI)
    res = runner.invoke(cli, ["inspect", str(nan)])
    assert res.exit_code == 1 and "NaN" in res.stderr


def test_cli_inspect_real_process_no_traceback(tmp_path):
    """The installed console script: one line on stderr, exit code 2."""
    missing = tmp_path / "missing.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "showerforge.cli", "inspect", str(missing)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {missing}: file not found"


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert not target.exists() and os.listdir(tmp_path) == []


def test_unwritable_output_fails_early(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions
            target = tmp_path / "file-not-dir" / "out.h5"
            (tmp_path / "file-not-dir").write_text("x")
        else:
            target = ro / "out.h5"
        with pytest.raises(OutputPathError, match="output"):
            check_writable(target)
    finally:
        ro.chmod(0o700)


def test_foreign_geometry_note_is_ignored_not_fatal(tmp_path):
    inc, sh = _showers(5, PRESETS["ds2"])
    path = _raw(tmp_path / "par04.h5", incident_energies=inc.reshape(-1, 1), showers=sh)  # float64 too
    with h5py.File(path, "a") as f:
        f.attrs["geometry"] = "Par04 SiW cylinder"
    rep = validate_file(path)
    assert rep.ok and rep.geometry == "ds2" and any("not a showerforge geometry" in w for w in rep.warnings)
