"""Geometry: presets, voxel order, coordinates, serialisation round trips, CaloChallenge XML."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from showerforge.geometry import PRESETS, Geometry, GeometryError, ReadoutLayer, get_geometry

SHARED = Path(__file__).resolve().parents[2] / "shared" / "calochallenge"
PACKAGED = Path(__file__).resolve().parents[1] / "src" / "showerforge" / "data" / "binning"


def test_ds2_ds3_sizes_match_calochallenge():
    assert PRESETS["ds2"].n_voxels == 6480 and PRESETS["ds2"].shape == (45, 16, 9)
    assert PRESETS["ds3"].n_voxels == 40500 and PRESETS["ds3"].shape == (45, 50, 18)
    # 2 physical layers of 1.4 mm W + 0.3 mm Si per readout layer
    assert PRESETS["ds2"].layer_thickness_mm == pytest.approx(3.4)
    assert PRESETS["ds2"].readout[0].r_edges_mm[-1] == pytest.approx(9 * 4.65)


def test_radiation_lengths_of_ds2():
    # 1.4 mm / 3.504 mm + 0.3 mm / 93.7 mm per physical layer, two per readout layer
    expected = 2 * (1.4 / 3.504 + 0.3 / 93.70)
    assert PRESETS["ds2"].radiation_lengths_per_layer() == pytest.approx(expected)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name):
    geo = PRESETS[name].with_sampling_fraction(0.0325)
    back = Geometry.from_json(geo.to_json())
    assert back == geo and back.n_voxels == geo.n_voxels and back.sampling_fraction == 0.0325


def test_voxel_order_layer_angle_radius():
    geo = Geometry("t", tuple(ReadoutLayer((0, 1, 2, 3), 4) for _ in range(2)), n_physical_layers=2)
    layer, r, a = geo.voxel_layer(), geo.voxel_r_mm(), geo.voxel_alpha()
    # radius runs fastest, then angle, then layer
    assert list(r[:4]) == [0.5, 1.5, 2.5, 0.5]
    assert a[0] == a[2] and a[3] > a[2] - 1e-12 and a[3] == pytest.approx(-math.pi + 1.5 * math.pi / 2)
    assert list(layer[[0, 11, 12, 23]]) == [0, 0, 1, 1]
    x = np.arange(geo.n_voxels).reshape(geo.shape)
    assert x[1, 2, 0] == 12 + 2 * 3


def test_voxel_areas_sum_to_disc():
    geo = PRESETS["ds2"]
    area = geo.voxel_area_mm2()[geo.layer_slice(0)].sum()
    assert area == pytest.approx(math.pi * 41.85**2)


def test_xy_centres_on_the_right_side():
    geo = PRESETS["mini"]
    x, y = geo.voxel_xy_mm()
    a = geo.voxel_alpha()
    assert np.all(np.sign(np.round(y, 9)) == np.sign(np.round(np.sin(a), 9)))
    assert np.allclose(np.hypot(x, y), geo.voxel_r_mm())


@pytest.mark.parametrize(
    "xml,voxels,name",
    [
        ("binning_dataset_1_photons.xml", 368, None),
        ("binning_dataset_1_pions.xml", 533, None),
        ("binning_dataset_2.xml", 6480, "ds2"),
        ("binning_dataset_3.xml", 40500, "ds3"),
    ],
)
def test_calochallenge_xml(xml, voxels, name):
    path = SHARED / xml if (SHARED / xml).exists() else PACKAGED / xml
    geo = Geometry.from_calochallenge_xml(path)
    assert geo.n_voxels == voxels
    if name:
        assert geo.has_stack and geo.same_readout(PRESETS[name])
    else:
        assert not geo.is_regular and not geo.has_stack


def test_bad_geometries_are_refused():
    with pytest.raises(GeometryError, match="increasing"):
        ReadoutLayer((0, 2, 1), 4)
    with pytest.raises(GeometryError, match="multiple"):
        Geometry("x", (ReadoutLayer((0, 1), 1),) * 3, n_physical_layers=4)
    with pytest.raises(GeometryError, match="unknown geometry"):
        get_geometry("ds9")
    with pytest.raises(GeometryError, match="not valid"):
        Geometry.from_json("{not json")


def test_crystal_matrix_preset():
    g = PRESETS["pbwo4"]
    assert g.is_crystal and g.shape == (10, 5, 5) and g.n_voxels == 250
    # homogeneous: 230 mm of PbWO4 is 25.8 X0 (X0 = 8.903 mm)
    assert g.n_layers * g.radiation_lengths_per_layer() == pytest.approx(230 / 8.903)
    x, y = g.voxel_xy_mm()
    # row-major (row = y, column = x fastest), centred on the beam axis, 22 mm pitch
    assert list(x[:5]) == [-44, -22, 0, 22, 44] and list(y[:6]) == [-44] * 5 + [-22]
    assert x[12] == y[12] == 0 and g.voxel_r_mm()[12] == 0 and np.allclose(g.voxel_area_mm2(), 22.0**2)
    assert Geometry.from_json(g.to_json()) == g and g.same_readout(Geometry.from_json(g.to_json()))
    assert not g.same_readout(PRESETS["mini"])
    with pytest.raises(GeometryError, match="odd n_crystals"):
        ReadoutLayer(crystal_mm=22.0, n_crystals=4)
    with pytest.raises(GeometryError, match="cannot be mixed"):
        Geometry("mix", (ReadoutLayer(crystal_mm=22.0, n_crystals=3), ReadoutLayer((0.0, 5.0), 4)))
