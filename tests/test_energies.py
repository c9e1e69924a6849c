"""Energy options: units, forms, spectra."""

from __future__ import annotations

import numpy as np
import pytest

from showerforge.simulate.energies import parse_energy


def test_forms_and_units():
    assert parse_energy("10GeV").values_mev == (10000.0,)
    assert parse_energy("10GeV").spectrum == "fixed"
    assert parse_energy("1,10,100GeV").values_mev == (1e3, 1e4, 1e5)
    assert parse_energy("500MeV:2GeV").values_mev == (500.0, 2000.0)
    assert parse_energy("1:100GeV").spectrum == "log-uniform"
    assert parse_energy("1:100GeV", "uniform").spectrum == "uniform"
    assert parse_energy("250MeV").values_mev == (250.0,)
    assert parse_energy("1,2GeV").values_mev == (1e3, 2e3)  # the last unit applies to all


def test_log_uniform_has_uniform_log():
    spec = parse_energy("1:100GeV")
    e = spec.sample(200_000, np.random.default_rng(1))
    assert e.min() >= 1e3 and e.max() <= 1e5
    # log10(E/MeV) uniform on [3, 5]: mean 4, variance 4/12
    assert np.log10(e).mean() == pytest.approx(4.0, abs=0.01)
    assert np.log10(e).var() == pytest.approx(4 / 12, rel=0.01)


def test_same_seed_same_energies():
    spec = parse_energy("1,10,100GeV")
    a = spec.sample(50, np.random.default_rng(3))
    b = spec.sample(50, np.random.default_rng(3))
    assert np.array_equal(a, b) and set(a) <= {1e3, 1e4, 1e5}


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "empty"),
        ("10 parsecs", "unit"),
        ("5", "no unit"),
        ("1:100", "no unit"),
        ("100:1GeV", "LOW < HIGH"),
        ("0GeV", "> 0"),
        ("abcGeV", "cannot read"),
    ],
)
def test_bad_energies(text, match):
    with pytest.raises(ValueError, match=match):
        parse_energy(text)


def test_spectrum_must_fit_form():
    with pytest.raises(ValueError, match="range"):
        parse_energy("10GeV", "log-uniform")
