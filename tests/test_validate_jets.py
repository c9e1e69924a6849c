"""`validate` on real Pythia8 jets: identical samples pass with chi2 = 0, a known angular stretch is
caught by the jet mass while N-subjettiness ratios (nearly scale invariant) hardly move; the Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import showerforge as sf
from showerforge.data.jetnet import read_jets, write_jets

SUITE = """name = "pythia-t"
gates = ['chi2_ndf("jet_mass") <= 4', 'chi2_ndf("tau21") <= 4', 'chi2_ndf("tau32") <= 4', "w1m_ratio <= 3"]

[reference]
file = "ref.h5:t"

[analyses]
use = ["jet_substructure", "jet_particles"]

[metrics]
quick = true
"""


@pytest.fixture(scope="module")
def jets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("vjets")
    sf.simulate_jets(types="t", n=400, seed=5, output=d / "ref.h5", mpi=False, workers=1, progress=False)
    data = read_jets(d / "ref.h5")
    pf = data.particle_features.copy()
    pf[..., :2] *= 1.3  # every constituent 1.3x further from the axis: mass x 1.3, tau ratios ~ unchanged
    write_jets(d / "wide.h5", {"particle_features": pf, "jet_features": data.jet_features, "jet_type": data.jet_type})
    (d / "suite.toml").write_text(SUITE)
    return d


def test_identical_jets_pass_with_zero_chi2(jets: Path) -> None:
    res = sf.validate_run(jets / "suite.toml", jets / "ref.h5", "same")
    assert res.passed and res.exit_code == 0
    comps = {k: v["comparison"] for k, v in res.record.histograms.items()}
    assert {"jet_mass", "multiplicity", "tau21", "tau32", "eta_rel", "pt_rel"} <= set(comps)
    assert all(c["chi2"] == 0.0 for c in comps.values())
    assert all(c["ks_p"] == 1.0 for c in comps.values())
    assert res.record.candidate["jet_type"] == "t"  # the reference's type applied to the candidate
    notes = res.record.reference["notes"]
    assert any("the candidate is the reference file itself" in n for n in notes)
    assert any("small samples (reference 400, candidate 400 events)" in n for n in notes)


def test_a_stretched_jet_fails_on_mass_not_on_tau_ratios(jets: Path) -> None:
    res = sf.validate_run(jets / "suite.toml", jets / "wide.h5", "wide")
    assert not res.passed and res.exit_code == 1
    gates = {g["key"]: g for g in res.record.gates}
    assert not gates["chi2_ndf(jet_mass)"]["passed"] and gates["chi2_ndf(jet_mass)"]["value"] > 4
    # tau ratios are invariant under a common stretch up to the E-scheme axes (not exactly linear in eta)
    assert gates["chi2_ndf(tau21)"]["value"] < 0.3 and gates["chi2_ndf(tau32)"]["value"] < 0.3
    assert res.record.metrics["w1m_ratio"]["value"] > 3
    runs = sf.validation_history(jets / "suite.toml")
    assert [(r.label, r.verdict) for r in runs] == [("same", "pass"), ("wide", "fail")]
    hm = runs[1].histograms["jet_mass"]
    ref_mean = np.average(
        0.5 * (hm["reference"].edges[1:] + hm["reference"].edges[:-1]), weights=hm["reference"].values
    )
    cand_mean = np.average(
        0.5 * (hm["candidate"].edges[1:] + hm["candidate"].edges[:-1]), weights=hm["candidate"].values
    )
    assert cand_mean > 1.15 * ref_mean
