"""Highly granular calorimeters: Geant4 point clouds, their file layout and the conversions.

Real Geant4 (ild-ecal photons, a few seconds); the cell file and the point file of one seed come
from the same showers, so the projection of the points must give the simulator's cells exactly.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from showerforge.data.points import (
    PointClouds,
    PointsFileError,
    cells_to_points,
    points_to_cells,
    read_points,
    write_points,
)
from showerforge.geometry import PRESETS, Geometry, GeometryError

ILD = ["simulate", "calo", "--geometry", "ild-ecal", "--particle", "gamma", "--energy", "5:15GeV"]
ILD += ["--spectrum", "uniform", "--n", "40", "--seed", "11", "--workers", "1", "--shard-size", "20"]


@pytest.fixture(scope="module")
def points_file(simulated) -> Path:
    return simulated(*ILD, "--points")


@pytest.fixture(scope="module")
def cells_file(simulated) -> Path:
    return simulated(*ILD)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "showerforge", *args], capture_output=True, text=True, timeout=600)


# ----------------------------------------------------------------------------- geometry
def test_ild_presets_follow_the_stated_stack() -> None:
    ecal = PRESETS["ild-ecal"]
    assert ecal.n_layers == 30 and ecal.is_crystal and ecal.readout[0].n_crystals >= 30
    assert [s.absorber_mm for s in ecal.stack] == [2.1, 4.2] and [s.n_layers for s in ecal.stack] == [20, 10]
    assert ecal.readout[0].crystal_mm == pytest.approx(5.09) and ecal.readout[0].subcells == 5
    # depth: 20 x 2.625 mm + 10 x 4.725 mm; the last sensor's centre is half a sensor before the back
    assert ecal.sensor_z_mm()[-1] == pytest.approx(20 * 2.625 + 10 * 4.725 - 0.2625)
    # 20 x 2.1 mm + 10 x 4.2 mm of tungsten = 84 mm = 24.0 X0 (X0(W) = 3.504 mm)
    assert sum(s.n_layers * s.absorber_mm for s in ecal.stack) / 3.504 == pytest.approx(23.97, abs=0.01)
    hcal = PRESETS["ild-hcal"]
    assert hcal.n_layers == 48 and hcal.readout[0].crystal_mm == 30.0
    both = PRESETS["ild-ecal-hcal"]
    assert both.n_layers == 78 and not both.is_regular
    assert both.sensor_z_mm()[30] == pytest.approx(ecal.sensor_z_mm()[-1] + 0.2625 + 17.0 + 1.5)
    for name in ("ild-ecal", "ild-hcal", "ild-ecal-hcal"):
        geo = PRESETS[name]
        assert Geometry.from_json(geo.to_json()) == geo


def test_mip_energies_follow_the_landau_most_probable_loss() -> None:
    # PDG eq. 34.12 at beta gamma = 3.6: xi [ln(2 m c^2 b^2 g^2 / I) + ln(xi / I) + 0.2 - b^2 - delta]
    me, bg = 0.51099895, 3.6
    b2 = bg**2 / (1 + bg**2)
    for (material, mm), expected in {("G4_Si", 0.525): 0.143, ("G4_POLYSTYRENE", 3.0): 0.475}.items():
        za, i_ev, rho, delta = {"G4_Si": (0.49848, 173.0, 2.329, 0.42), "G4_POLYSTYRENE": (0.53768, 68.7, 1.06, 0.67)}[
            material
        ]
        xi = 0.5 * 0.307075 * za * rho * mm / 10 / b2
        mpv = xi * (np.log(2 * me * 1e6 * bg**2 / i_ev) + np.log(xi * 1e6 / i_ev) + 0.2 - b2 - delta)
        assert mpv == pytest.approx(expected, rel=0.01)
    assert PRESETS["ild-ecal"].layer_mip_mev()[0] == 0.143


def test_sections_must_cover_the_readout() -> None:
    with pytest.raises(GeometryError, match="sections have 30 layers but the readout has 29"):
        Geometry("bad", PRESETS["ild-ecal"].readout[:29], sections=PRESETS["ild-ecal"].sections)


# ----------------------------------------------------------------------------- Geant4 points
def test_points_project_onto_the_simulators_cells_exactly(points_file: Path, cells_file: Path) -> None:
    clouds = read_points(points_file)
    assert len(clouds) == 40 and clouds.geometry == PRESETS["ild-ecal"].with_sampling_fraction(1.0)
    with h5py.File(cells_file) as f:
        cells = f["showers"][...]
        incident = f["incident_energies"][:, 0]
        thr = np.asarray(__import__("json").loads(f.attrs["threshold_mev"]))
    np.testing.assert_array_equal(clouds.incident_mev, incident)
    hits = points_to_cells(clouds)
    assert np.array_equal(hits.dense(), cells)
    np.testing.assert_allclose(thr, 0.5 * 0.143)
    assert cells[cells > 0].min() >= 0.5 * 0.143  # the threshold was applied
    # every point sits at the centre of a 1.018 mm sub-cell of the 31 x 31 matrix
    sub = 5.09 / 5
    frac = clouds.points[:, :2] / sub + 0.5 * 155
    np.testing.assert_allclose(frac - np.floor(frac), 0.5, atol=1e-3)


def test_clustering_conserves_the_energy_geant4_summed(points_file: Path) -> None:
    clouds = read_points(points_file)
    with h5py.File(points_file) as f:
        per_layer = f["showerforge/layer_visible_mev"][...]  # Geant4's own sum over each sensor layer
    mine = np.zeros_like(per_layer)
    np.add.at(mine, (clouds.event_index(), clouds.points[:, 2].astype(int)), clouds.points[:, 3].astype(np.float64))
    # the only difference: each point's energy is stored as float32 (relative rounding <= 2**-24)
    bound = np.zeros_like(per_layer)
    np.add.at(bound, (clouds.event_index(), clouds.points[:, 2].astype(int)), np.abs(clouds.points[:, 3]) * 2.0**-23)
    assert np.all(np.abs(mine - per_layer) <= bound + 1e-12)
    assert per_layer.sum(axis=1).min() > 0
    # no two points of a shower share a sub-cell, and every point carries energy
    assert clouds.points[:, 3].min() > 0
    for i in range(len(clouds)):
        ev = clouds.event(i)
        assert len(np.unique(ev[:, :3], axis=0)) == len(ev)


def test_photon_showers_are_physical(points_file: Path) -> None:
    clouds = read_points(points_file)
    ratio = clouds.visible_mev() / clouds.incident_mev
    # Si/(W + Si) energy sharing of a 24 X0 Si-W stack: a few per cent, the same at every energy
    assert 0.02 < ratio.mean() < 0.045 and ratio.std() / ratio.mean() < 0.15
    # photons are centred on the beam axis: |mean x|, |mean y| < 4 sigma of the shower-to-shower spread
    hits = points_to_cells(clouds)
    w = np.bincount(hits.event, weights=hits.energy_mev, minlength=len(clouds))
    for coord in (hits.x_mm, hits.y_mm):
        cog = np.bincount(hits.event, weights=hits.energy_mev * coord, minlength=len(clouds)) / w
        assert abs(cog.mean()) < 4 * cog.std(ddof=1) / np.sqrt(len(cog)) + 0.05


def test_same_seed_same_points(simulated, points_file: Path) -> None:
    again = simulated(*ILD, "--points", "--keep-shards")  # another command line, the same showers
    a, b = read_points(points_file), read_points(again)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.offsets, b.offsets)


# ----------------------------------------------------------------------------- conversions
def test_round_trip_cells_points_cells(cells_file: Path, tmp_path: Path) -> None:
    pts, back = tmp_path / "p.h5", tmp_path / "c.h5"
    assert _cli("convert", str(cells_file), "--to", "points", "-o", str(pts)).returncode == 0
    assert _cli("convert", str(pts), "--to", "cells", "-o", str(back)).returncode == 0
    with h5py.File(cells_file) as f, h5py.File(back) as g:
        assert np.array_equal(f["showers"][...], g["showers"][...])
        assert np.array_equal(f["incident_energies"][...], g["incident_energies"][...])


def test_voxels_keep_the_energy_inside_the_radius(points_file: Path) -> None:
    import showerforge as sf

    clouds = read_points(points_file)
    inc, vox = sf.to_voxels(clouds)
    assert vox.shape == (len(clouds), 30 * 50 * 18)
    r = np.hypot(clouds.points[:, 0], clouds.points[:, 1])
    inside = np.bincount(
        clouds.event_index(), weights=np.where(r < 18 * 2.325, clouds.points[:, 3], 0.0), minlength=len(clouds)
    )
    np.testing.assert_allclose(vox.sum(axis=1, dtype=np.float64), inside, rtol=1e-5)
    # a point at a known place lands in the known voxel: layer 3, angle bin of +pi/4, radius bin 2
    one = PointClouds(np.asarray([[5.0, 5.0, 3, 1.5]], np.float32), [0, 1], [1000.0], clouds.geometry)
    _inc, v = sf.to_voxels(one)
    col = 3 * 900 + int((np.pi / 4 + np.pi) / (2 * np.pi) * 50) * 18 + int(np.hypot(5, 5) // 2.325)
    assert np.nonzero(v[0])[0].tolist() == [col] and v[0, col] == np.float32(1.5)


def test_cells_to_points_places_points_at_cell_centres() -> None:
    geo = PRESETS["ild-ecal"]
    sh = np.zeros((2, geo.n_voxels), np.float32)
    middle = 15 * 31 + 15  # row 15, column 15 of layer 0: the cell the beam hits
    sh[0, middle] = 3.0
    sh[1, geo.layer_offsets[29] + 31 + 2] = 0.5  # layer 29, row 1, column 2
    clouds = cells_to_points(sh, np.asarray([1e4, 2e4]), geo)
    np.testing.assert_allclose(clouds.event(0), [[0.0, 0.0, 0, 3.0]])
    np.testing.assert_allclose(clouds.event(1), [[(2 - 15) * 5.09, (1 - 15) * 5.09, 29, 0.5]], rtol=1e-6)
    assert np.array_equal(points_to_cells(clouds, threshold_mip=0).dense(), sh)
    # the threshold: 0.5 MeV passes 0.5 MIP (0.0715 MeV); at 4 MIP (0.572 MeV) it is removed
    assert points_to_cells(clouds, threshold_mip=4).dense()[1].sum() == 0


def test_cells_centre_of_gravity_is_energy_weighted_at_cell_centres() -> None:
    """Points at 1 mm and 4 mm in the central cell, 3 MeV and 1 MeV, and 2 MeV one cell to the
    right: cog x = 2 x 5.09 / 6 mm (the points' own offsets do not show); a shower without cells: NaN."""
    geo = PRESETS["ild-ecal"]
    pts = np.array([[1.0, 0.0, 0, 3.0], [2.0, 1.0, 0, 1.0], [5.5, 0.0, 3, 2.0]], np.float32)
    clouds = PointClouds(pts, np.array([0, 3, 3]), np.array([1e4, 2e4]), geo)
    cog = points_to_cells(clouds, threshold_mip=0).centre_of_gravity()
    np.testing.assert_allclose(cog[0], [2 * 5.09 / 6, 0.0], rtol=1e-6)
    assert np.isnan(cog[1]).all()


# ----------------------------------------------------------------------------- bad input
def _copy_with(src: Path, dst: Path, fn) -> Path:
    clouds = read_points(src)
    fn(clouds)
    write_points(dst, clouds)
    return dst


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.points.__setitem__((3, 3), np.nan), "NaN or infinite"),
        (lambda c: c.points.__setitem__((5, 3), -1.0), "negative energy"),
        (lambda c: c.points.__setitem__((7, 2), 31.0), "readout layer indices 0..29"),
    ],
)
def test_bad_point_clouds_are_refused_in_one_line(points_file: Path, tmp_path: Path, change, message) -> None:
    bad = _copy_with(points_file, tmp_path / "bad.h5", change)
    with pytest.raises(PointsFileError, match=message):
        read_points(bad)
    out = tmp_path / "out.h5"
    proc = _cli("convert", str(bad), "--to", "cells", "-o", str(out))
    assert proc.returncode == 2 and message.split()[0] in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]


def test_conversion_mistakes_exit_2_and_write_nothing(points_file: Path, cells_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    cases = [
        (["convert", str(cells_file), "--to", "voxels", "-o", str(out)], "converts a point-cloud file"),
        (["convert", str(points_file), "--to", "points", "-o", str(out)], "already a point-cloud file"),
        (["convert", str(points_file), "--to", "voxels", "--geometry", "ds2", "-o", str(out)], "45 layers"),
        (["convert", str(points_file), "--to", "voxels", "--geometry", "ild-hcal", "-o", str(out)], "cell matrix"),
        (["convert", str(points_file), "--to", "cells", "-o", str(points_file)], "overwrite the input"),
        (["convert", str(tmp_path / "none.h5"), "--to", "cells", "-o", str(out)], "not found"),
        (["inspect", str(tmp_path)], "folder"),
        (["convert", str(points_file), "--to", "cells", "-o", str(points_file / "x.h5")], "not writable"),
    ]
    for args, message in cases:
        proc = _cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_points_need_a_geometry_with_subcells(tmp_path: Path) -> None:
    proc = _cli("simulate", "calo", "--geometry", "mini", "--n", "2", "--points", "-o", str(tmp_path / "x.h5"))
    assert proc.returncode == 2 and "sub-cells" in proc.stderr and list(tmp_path.iterdir()) == []


def test_inspect_describes_a_point_file(points_file: Path) -> None:
    proc = _cli("inspect", str(points_file))
    assert proc.returncode == 0, proc.stderr
    assert "40 point clouds" in proc.stdout and "31 x 31 cells of 5.09 mm, 5 x 5 sub-cells" in proc.stdout
    assert "20 x (2.1 mm G4_W + 0.525 mm G4_Si) + 10 x (4.2 mm G4_W" in proc.stdout
    from showerforge.kinds import kind_of_file

    assert kind_of_file(points_file).name == "calo-points"
