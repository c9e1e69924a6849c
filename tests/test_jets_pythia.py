"""Real Pythia8 + FastJet jets: physics sanity, reproducibility and input validation.

Small samples with MPI off (about 1 s per 300 jets on one core). Windows were sized from 8 seeds
of 200 jets each: medians inside the mass window varied by < 3 GeV (t 175.7-178.3, W 82.0-83.1,
Z 92.1-93.1 GeV), well inside the asserted ranges.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from showerforge.simulate.jets import JET_TYPES, JetBatch, JetConfig, simulate_jets  # noqa: E402

N_PEAK = 300
# (mass window for the median, asserted range of the median), GeV
PEAKS = {
    "t": ((140.0, 220.0), (170.0, 185.0)),
    "w": ((60.0, 110.0), (75.0, 90.0)),
    "z": ((65.0, 120.0), (85.0, 100.0)),
}


@pytest.fixture(autouse=True)
def _one_thread():
    """BLAS/OpenMP pools limited to one thread (the suite runs on 2 cores)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def samples() -> dict[str, JetBatch]:
    out = {jt: simulate_jets(JetConfig(jt, mpi=False), N_PEAK, seed=11) for jt in "twz"}
    out.update({jt: simulate_jets(JetConfig(jt, mpi=False), 200, seed=12) for jt in "gq"})
    return out


@pytest.mark.parametrize("jet_type", ["t", "w", "z"])
def test_mass_peak(samples: dict[str, JetBatch], jet_type: str) -> None:
    (lo, hi), (want_lo, want_hi) = PEAKS[jet_type]
    mass = samples[jet_type].jet_features[:, 2]
    inside = mass[(mass > lo) & (mass < hi)]
    assert len(inside) > 0.5 * len(mass)  # most jets contain the whole decay at R = 0.8
    assert want_lo < np.median(inside) < want_hi
    counts, edges = np.histogram(mass, bins=np.arange(lo, hi + 1e-9, 5.0))
    mode = edges[counts.argmax()] + 2.5
    assert want_lo - 5 < mode < want_hi + 5


def test_particle_features_rebuild_jet_mass(samples: dict[str, JetBatch]) -> None:
    """m/pT from the stored coordinates matches the jet mass, up to constituent masses.

    Treating constituents as massless keeps their 3-momenta and lowers their energies, so the
    rebuilt mass can only be smaller than the (E-scheme, massive hadrons) jet mass.
    """
    from showerforge.evaluation.jets.metrics import relative_jet_mass

    b = samples["w"]
    complete = b.jet_features[:, 3] <= 30
    rebuilt = relative_jet_mass(b.particle_features[complete]) * b.jet_features[complete, 0]
    true = b.jet_features[complete, 2]
    assert np.all(rebuilt <= true * 1.001 + 0.1)
    assert np.median(rebuilt / true) > 0.95


def test_gluon_more_constituents_than_quark(samples: dict[str, JetBatch]) -> None:
    n_g = samples["g"].jet_features[:, 3].mean()
    n_q = samples["q"].jet_features[:, 3].mean()
    assert n_g > 1.2 * n_q


@pytest.mark.parametrize("jet_type", JET_TYPES)
def test_layout_and_windows(samples: dict[str, JetBatch], jet_type: str) -> None:
    b = samples[jet_type]
    cfg = JetConfig(jet_type)
    n = len(b)
    assert b.particle_features.shape == (n, cfg.n_particles, 4)
    assert b.particle_features.dtype == np.float32 and b.jet_features.dtype == np.float32
    assert b.jet_type.dtype == np.int8 and np.all(b.jet_type == JET_TYPES.index(jet_type))
    pt, eta = b.jet_features[:, 0], b.jet_features[:, 1]
    assert np.all((pt >= cfg.pt_min_gev) & (pt < cfg.pt_max_gev)) and np.all(np.abs(eta) < 2.5)
    pf = b.particle_features
    mask = pf[..., 3]
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(1), np.minimum(b.jet_features[:, 3], cfg.n_particles))
    assert np.all(np.diff(pf[..., 2], axis=1) <= 0)  # pT-descending, padding last
    assert np.all(pf[mask == 0] == 0)
    assert np.all(np.abs(pf[..., 1]) <= np.pi)
    real = mask == 1
    # anti-kT distances use rapidity: |phi_rel| < R exactly; eta_rel of soft massive hadrons
    # can exceed R
    assert np.abs(pf[..., 1][real]).max() < cfg.radius + 1e-5
    assert np.abs(pf[..., 0][real]).max() < 3.0  # soft massive hadrons: |y| << |eta|
    # scalar pT sum >= vector jet pT when no constituent was truncated
    complete = b.jet_features[:, 3] <= cfg.n_particles
    assert np.all(pf[complete, :, 2].sum(1) >= 1.0 - 1e-4)
    assert b.settings["seed"] in (11, 12) and b.settings["mpi"] is False
    assert b.settings["pythia_version"].startswith("8.3")


def test_same_seed_identical_other_seed_differs() -> None:
    cfg = JetConfig("q", mpi=False, n_particles=20)
    a, b = simulate_jets(cfg, 60, seed=5), simulate_jets(cfg, 60, seed=5)
    c = simulate_jets(cfg, 60, seed=6)
    np.testing.assert_array_equal(a.particle_features, b.particle_features)
    np.testing.assert_array_equal(a.jet_features, b.jet_features)
    assert not np.array_equal(a.jet_features, c.jet_features)


def test_fresh_process_reproduces() -> None:
    """A shard simulated in a fresh interpreter equals the in-process result."""
    code = (
        "import json; from showerforge.simulate.jets import JetConfig, simulate_jets;"
        "b = simulate_jets(JetConfig('w', mpi=False), 25, seed=77);"
        "print('RESULT' + json.dumps(b.jet_features.tolist()))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=120,
    ).stdout
    remote = np.array(json.loads(out.split("RESULT", 1)[1]), dtype=np.float32)
    local = simulate_jets(JetConfig("w", mpi=False), 25, seed=77).jet_features
    np.testing.assert_array_equal(remote, local)


def test_mpi_on_and_progress() -> None:
    seen: list[int] = []
    b = simulate_jets(JetConfig("g", n_particles=150), 20, seed=3, progress=seen.append)
    assert len(b) == 20 and b.particle_features.shape == (20, 150, 4)
    assert seen and seen[-1] == 20 and seen == sorted(seen)
    assert b.settings["mpi"] is True
    assert "PartonLevel:MPI = on" in b.settings["pythia_commands"]


def test_zero_jets() -> None:
    b = simulate_jets(JetConfig("t", mpi=False), 0, seed=1)
    assert b.particle_features.shape == (0, 30, 4) and b.jet_features.shape == (0, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"jet_type": "h"}, "unknown jet_type"),
        ({"jet_type": "g", "n_particles": 0}, "n_particles"),
        ({"jet_type": "g", "n_particles": -3}, "n_particles"),
        ({"jet_type": "g", "pt_min_gev": 900.0, "pt_max_gev": 900.0}, "empty jet pT window"),
        ({"jet_type": "g", "pt_min_gev": 1000.0, "pt_max_gev": 500.0}, "empty jet pT window"),
        ({"jet_type": "g", "radius": 0.0}, "radius"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JetConfig(**kwargs)


def test_bad_call_arguments() -> None:
    cfg = JetConfig("g", mpi=False)
    with pytest.raises(ValueError, match="n_jets"):
        simulate_jets(cfg, -1, seed=1)
    with pytest.raises(ValueError, match="seed"):
        simulate_jets(cfg, 1, seed=-5)
    cfg.jet_type = "x"  # mutated after construction: re-validated at call time
    with pytest.raises(ValueError, match="unknown jet_type"):
        simulate_jets(cfg, 1, seed=1)


def test_extra_pythia_settings_are_read_last_and_recorded() -> None:
    """`pythia=` commands come after showerforge's own (the user's pTHatMin wins) and are in the settings."""
    cfg = JetConfig("g", mpi=False, pythia=("PhaseSpace:pTHatMin = 700",))
    batch = simulate_jets(cfg, 20, seed=3)
    cmds = batch.settings["pythia_commands"]
    assert cmds[-1] == "PhaseSpace:pTHatMin = 700" and "PhaseSpace:pTHatMin = 600" in cmds
    assert len(batch) == 20


@pytest.mark.parametrize(
    ("setting", "expected"),
    [("Tune:pq = 21", "Pythia does not accept it"), ("Tune:pp 21", "expected 'Group:key = value'")],
)
def test_bad_pythia_settings_exit_2_before_the_campaign(tmp_path, setting: str, expected: str) -> None:
    import subprocess
    import sys

    out = tmp_path / "j.h5"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "showerforge",
            "simulate",
            "jets",
            "--type",
            "g",
            "--n",
            "10",
            "--pythia",
            setting,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    assert proc.stdout == "" and not out.exists() and not list(tmp_path.iterdir())
