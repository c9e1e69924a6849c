"""JetNet-format HDF5 I/O: round trips, public-release variants, validation, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import showerforge
from showerforge.data.jetnet import (
    JETNET_LOADER_TYPE_ORDER,
    JetData,
    JetFileError,
    merge_jet_files,
    parse_spec,
    read_jets,
    write_jets,
)
from showerforge.simulate.jets import JET_TYPES, JetBatch


def _batch(n: int = 40, n_particles: int = 30, seed: int = 0, types: tuple[int, ...] = (0, 2)) -> JetBatch:
    rng = np.random.default_rng(seed)
    mult = rng.integers(1, n_particles + 10, size=n)
    pf = np.zeros((n, n_particles, 4), np.float32)
    for i, m in enumerate(np.minimum(mult, n_particles)):
        pf[i, :m, :2] = rng.normal(0, 0.2, (m, 2))
        pf[i, :m, 2] = np.sort(rng.random(m))[::-1] / m
        pf[i, :m, 3] = 1
    jf = np.stack([rng.uniform(800, 1600, n), rng.uniform(-2.5, 2.5, n), rng.uniform(0, 250, n), mult], axis=1).astype(
        np.float32
    )
    jt = np.asarray(rng.choice(types, size=n), np.int8)
    return JetBatch(pf, jf, jt, settings={"seed": seed, "mpi": False, "processes": ["x = on"]})


def test_round_trip_identical(tmp_path: Path) -> None:
    b = _batch()
    path = write_jets(tmp_path / "jets.h5", b, attrs={"campaign": {"shard": 3}})
    d = read_jets(path)
    np.testing.assert_array_equal(d.particle_features, b.particle_features)
    np.testing.assert_array_equal(d.jet_features, b.jet_features)
    np.testing.assert_array_equal(d.jet_type, b.jet_type)
    assert d.particle_features.dtype == np.float32 and d.jet_type.dtype == np.int8
    assert d.type_column_found is False and d.attrs["jet_type_source"] == "jet_type"
    assert d.attrs["format"] == "jetnet"
    assert d.attrs["showerforge_version"] == showerforge.__version__
    assert d.attrs["settings"]["seed"] == 0 and d.attrs["seeds"] == 0
    assert d.attrs["campaign"] == {"shard": 3}
    assert d.attrs["jet_types"] == list(JET_TYPES)
    with h5py.File(path) as f:  # attributes are JSON strings in the file
        assert json.loads(f.attrs["settings"])["mpi"] is False
    assert not [p for p in tmp_path.iterdir() if p.name != "jets.h5"]  # no temp files left


def test_round_trip_150_and_mapping(tmp_path: Path) -> None:
    b = _batch(n=7, n_particles=150)
    arrays = {
        "particle_features": b.particle_features,
        "jet_features": b.jet_features,
        "jet_type": b.jet_type,
    }
    d = read_jets(write_jets(tmp_path / "j150.h5", arrays))
    assert d.n_particles == 150 and len(d) == 7
    np.testing.assert_array_equal(d.particle_features, b.particle_features)


def test_select_type_with_spec(tmp_path: Path) -> None:
    b = _batch(types=(0, 2, 4))
    path = write_jets(tmp_path / "jets.h5", b)
    d = read_jets(f"{path}:t")
    assert d.selected_type == "t" and len(d) == int((b.jet_type == 2).sum()) > 0
    assert np.all(d.jet_type == JET_TYPES.index("t"))
    np.testing.assert_array_equal(d.jet_features, b.jet_features[b.jet_type == 2])
    assert parse_spec("a/b.h5:z") == (Path("a/b.h5"), "z")
    assert parse_spec("a/b.h5") == (Path("a/b.h5"), None)
    assert len(read_jets(path, jet_type="g")) == int((b.jet_type == 0).sum())


def test_five_column_type_in_column_0(tmp_path: Path) -> None:
    """jetnet-loader export: jet_features = [type, pT, eta, mass, n], type in jetnet order."""
    b = _batch(types=(0, 1, 2, 3, 4))
    loader_index = np.array([JETNET_LOADER_TYPE_ORDER.index(JET_TYPES[t]) for t in b.jet_type])
    path = tmp_path / "export.hdf5"
    with h5py.File(path, "w") as f:
        f["particle_features"] = b.particle_features
        f["jet_features"] = np.concatenate([loader_index[:, None], b.jet_features], 1)
    d = read_jets(path)
    assert d.type_column_found is True
    assert d.attrs["jet_type_source"] == "jet_features[:, 0]"
    np.testing.assert_array_equal(d.jet_type, b.jet_type)  # remapped to JET_TYPES order
    np.testing.assert_array_equal(d.jet_features, b.jet_features)
    assert len(read_jets(f"{path}:w")) == int((b.jet_type == 3).sum())


def test_public_release_file_type_from_name(tmp_path: Path) -> None:
    b = _batch()
    path = tmp_path / "t150.hdf5"
    with h5py.File(path, "w") as f:  # the Zenodo files: two keys, no type
        f["particle_features"] = b.particle_features.astype(np.float64)
        f["jet_features"] = b.jet_features.astype(np.float64)
    d = read_jets(path)
    assert d.type_column_found is False and d.attrs["jet_type_source"] == "file name"
    assert np.all(d.jet_type == JET_TYPES.index("t"))


def _write_raw(path: Path, **arrays: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
    return path


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"particle_features": None}, "particle_features", "missing key"),
        ({"jet_features": None}, "jet_features", "missing key"),
        ({"particle_features": np.zeros((40, 30, 3), np.float32)}, "particle_features", "shape"),
        ({"jet_features": np.zeros((39, 4), np.float32)}, "jet_features", "rows"),
        ({"jet_features": np.zeros((40, 6), np.float32)}, "jet_features", "shape"),
        ({"jet_features": np.full((40, 4), b"x")}, "jet_features", "dtype"),
        ({"jet_type": np.full(40, 9, np.int8)}, "jet_type", "unknown type"),
        ({"jet_type": np.zeros(41, np.int8)}, "jet_type", "shape"),
    ],
)
def test_malformed_files(tmp_path: Path, change: dict, field: str, message: str) -> None:
    b = _batch()
    arrays = {
        "particle_features": b.particle_features,
        "jet_features": b.jet_features,
        "jet_type": b.jet_type,
    }
    arrays.update(change)
    path = _write_raw(tmp_path / "bad.h5", **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(JetFileError, match=message) as err:
        read_jets(path)
    assert err.value.field == field and str(path) in str(err.value) and field in str(err.value)


def test_nan_and_mask_errors(tmp_path: Path) -> None:
    b = _batch()
    pf = b.particle_features.copy()
    pf[3, 2, 1] = np.nan
    path = _write_raw(tmp_path / "nan.h5", particle_features=pf, jet_features=b.jet_features, jet_type=b.jet_type)
    with pytest.raises(JetFileError, match=r"NaN.*\(3, 2, 1\)"):
        read_jets(path)
    pf = b.particle_features.copy()
    pf[5, 0, 3] = 0.5
    path = _write_raw(tmp_path / "mask.h5", particle_features=pf, jet_features=b.jet_features, jet_type=b.jet_type)
    with pytest.raises(JetFileError, match="mask"):
        read_jets(path)
    with pytest.raises(JetFileError, match="mask"):  # the writer validates too
        write_jets(
            tmp_path / "out.h5",
            {"particle_features": pf, "jet_features": b.jet_features, "jet_type": b.jet_type},
        )
    assert not (tmp_path / "out.h5").exists()


def test_not_hdf5_and_missing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(JetFileError, match="HDF5"):
        read_jets(junk)
    with pytest.raises(FileNotFoundError):
        read_jets(tmp_path / "absent.h5")
    with pytest.raises(JetFileError, match="jet_type"):  # no type anywhere
        read_jets(
            _write_raw(
                tmp_path / "jets_misc.h5",
                particle_features=np.zeros((2, 3, 4)),
                jet_features=np.zeros((2, 4)),
            )
        )
    with pytest.raises(ValueError, match="unknown jet type"):
        read_jets(tmp_path / "absent.h5", jet_type="h")


def test_failed_write_keeps_existing_file(tmp_path: Path) -> None:
    path = write_jets(tmp_path / "jets.h5", _batch(seed=1))
    before = path.read_bytes()
    with pytest.raises(TypeError, match="JSON"):  # fails after the arrays went to the temp file
        write_jets(path, _batch(seed=2), attrs={"bad": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["jets.h5"]


def test_merge(tmp_path: Path) -> None:
    a, b = _batch(n=10, seed=1), _batch(n=15, seed=2)
    pa, pb = write_jets(tmp_path / "a.h5", a), write_jets(tmp_path / "b.h5", b)
    merged = read_jets(merge_jet_files([pa, pb], tmp_path / "all.h5"))
    assert len(merged) == 25
    np.testing.assert_array_equal(merged.particle_features[10:], b.particle_features)
    np.testing.assert_array_equal(merged.jet_type[:10], a.jet_type)
    assert merged.attrs["seeds"] == [1, 2]
    assert [s["n_jets"] for s in merged.attrs["settings"]["merged_from"]] == [10, 15]
    pc = write_jets(tmp_path / "c.h5", _batch(n=3, n_particles=150))
    with pytest.raises(JetFileError, match="particles per jet"):
        merge_jet_files([pa, pc], tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()
    with pytest.raises(ValueError):
        merge_jet_files([], tmp_path / "none.h5")


def test_jetdata_writes_back(tmp_path: Path) -> None:
    d = read_jets(write_jets(tmp_path / "a.h5", _batch()))
    assert isinstance(d, JetData)
    d2 = read_jets(write_jets(tmp_path / "b.h5", d))
    np.testing.assert_array_equal(d2.particle_features, d.particle_features)
    assert d2.attrs["settings"]["seed"] == 0
