"""Detector optimisation (showerforge.optimisation): surrogate gradients on a known optimum, costs and
constraints, resume after kill -9, bad configs refused before any Geant4, one tiny Geant4 run."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from showerforge.errors import UserError
from showerforge.optimisation import DesignSpace, descend, load_config, parse_config
from showerforge.optimisation.loop import run_loop
from showerforge.optimisation.surrogate import train_surrogate

SRC = str(Path(__file__).resolve().parents[1] / "src")

ONE_LAYER = {
    "seed": 1,
    "beam": {"particle": "e-", "energy": "2:10GeV"},
    "design": {"n_layers": 1, "absorber_mm": 0.0, "sensor_mm": [20.0, 300.0], "absorber": "G4_Pb"},
    "simulation": {"engine": "toy", "iterations": 6, "designs_per_iteration": 6, "showers_per_design": 100},
    "optimiser": {"trust_radius": 0.15, "steps_per_iteration": 30, "learning_rate": 0.02},
    "surrogate": {"epochs": 15, "width": 32, "noise_draws": 32},
}


def _toml(d: dict, path: Path) -> Path:
    lines = []

    def value(v: object) -> str:
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    for k, v in d.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {value(vv)}" for kk, vv in v.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(**sections: dict) -> dict:
    d = json.loads(json.dumps(ONE_LAYER))
    for key, table in sections.items():
        d[key] = {**d.get(key, {}), **table}
    return d


# ------------------------------------------------------------------------ the gradient


def test_gradient_through_surrogate_points_to_the_known_optimum() -> None:
    """Residuals r ~ N(0, s(u)) with s(u) = 0.05 + 0.5 (u - 0.7)^2: the loss E[r^2] is least at u = 0.7."""
    cfg = parse_config(_cfg(), "toy")
    space = DesignSpace(cfg)
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, 6000)
    resid = (0.05 + 0.5 * (u - 0.7) ** 2) * rng.standard_normal(len(u))
    energies = rng.uniform(2000, 10000, len(u))
    settings = {**cfg.surrogate, "epochs": 30}
    sur, history = train_surrogate(u[:, None], energies, resid, settings, seed=3)
    assert history[-1] < history[0]
    e, noise = sur.grid(np.linspace(2000, 10000, 8), seed=1)

    def grad(at: float) -> float:
        x = torch.tensor([at], dtype=torch.float32, requires_grad=True)
        sur.expected_loss(x, e, noise).backward()
        assert x.grad is not None
        return float(x.grad[0])

    assert grad(0.2) < 0 < grad(0.98)  # downhill is towards 0.7 from both sides
    grid = np.linspace(0, 1, 21)
    with torch.no_grad():
        pred = [float(sur.expected_loss(torch.tensor([g], dtype=torch.float32), e, noise)) for g in grid]
    assert abs(grid[int(np.argmin(pred))] - 0.7) <= 0.15
    truth = (0.05 + 0.5 * (grid - 0.7) ** 2) ** 2
    assert np.corrcoef(pred, truth)[0, 1] > 0.9
    # Adam through the surrogate moves towards the optimum and stays inside the trust region
    u1, _, info = descend(sur, space, np.asarray([0.3]), [], seed=2)
    assert 0.3 < u1[0] <= 0.3 + cfg.trust_radius + 1e-6
    assert info["surrogate_loss_after"] < info["surrogate_loss_before"]


class _PreferFirstMaterial:
    """A stand-in surrogate whose loss falls as the first material's probability rises."""

    def grid(self, energies_mev: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(1), torch.zeros(1, 1)

    def expected_loss(self, design: torch.Tensor, energies: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return (1.0 - design[-2]) ** 2


def test_material_probabilities_move_within_the_logit_radius() -> None:
    d = _cfg(design={"sensor": ["G4_PbWO4", "G4_POLYSTYRENE"]}, optimiser={"logit_radius": 0.5})
    space = DesignSpace(parse_config(d, "logits"))
    u1, logits1, _ = descend(_PreferFirstMaterial(), space, np.asarray([0.5]), [np.asarray([0.0, 1.0])], seed=0)  # type: ignore[arg-type]
    assert logits1[0][0] == pytest.approx(0.5, abs=1e-6) and logits1[0][1] == pytest.approx(0.5, abs=1e-6)


# ------------------------------------------------------------------ costs, constraints


def test_length_and_cost_closed_form() -> None:
    d = {
        "design": {
            "n_layers": 2,
            "transverse_half_mm": 50.0,
            "absorber_mm": [0.0, 10.0],
            "sensor_mm": 20.0,
            "absorber": "G4_Pb",
            "sensor": ["G4_PbWO4", "G4_POLYSTYRENE"],
        },
        "materials": {"G4_Pb": {"cost_per_cm3": 1.0}},
        "simulation": {"engine": "toy"},
    }
    space = DesignSpace(parse_config(d, "costs"))
    design = space.design(np.asarray([0.5, 1.0]), [0, 1])  # 5 mm, 10 mm Pb; PbWO4 then polystyrene
    length, cost = space.design_length_cost(design)
    area = 10.0 * 10.0  # cm^2
    assert length == pytest.approx(5 + 20 + 10 + 20)
    assert cost == pytest.approx(area * (0.5 * 1.0 + 2.0 * 2.5 + 1.0 * 1.0 + 2.0 * 0.05))
    # a material still chosen by probabilities costs its expectation; the gradient is d cost / d u
    u = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([0.25, 0.75], dtype=torch.float64)
    t_len, t_cost = space.length_cost(u, [p, p])
    assert float(t_len.detach()) == pytest.approx(length)
    expect = area * (1.5 * 1.0 + 2 * 2.0 * (0.25 * 2.5 + 0.75 * 0.05))
    assert float(t_cost.detach()) == pytest.approx(expect)
    t_cost.backward()
    assert u.grad is not None
    assert u.grad.tolist() == pytest.approx([area * 1.0 * 1.0, area * 1.0 * 1.0])  # 10 mm range = 1 cm of Pb


def test_penalty_is_averaged_over_concrete_material_choices() -> None:
    """Two layers, PbWO4 or polystyrene each: the penalty is the probability-weighted sum over the 4 designs."""
    design: dict[str, object] = {"n_layers": 2, "transverse_half_mm": 50.0, "absorber_mm": [0.0, 10.0]}
    design |= {"sensor_mm": 40.0, "sensor": ["G4_PbWO4", "G4_POLYSTYRENE"]}
    d = {
        "design": design,
        "constraints": {"max_cost": 1000.0, "penalty_weight": 1.0},
        "simulation": {"engine": "toy"},
    }
    space = DesignSpace(parse_config(d, "penalty"))
    u = np.asarray([0.0, 0.0])
    probs = [np.asarray([0.3, 0.7]), np.asarray([0.6, 0.4])]
    brute = 0.0
    for a in (0, 1):
        for b in (0, 1):
            brute += probs[0][a] * probs[1][b] * space.design_penalty(space.design(u, [a, b]))
    got = space.expected_penalty(torch.tensor(u), [torch.tensor(p) for p in probs])
    assert float(got) == pytest.approx(brute)
    of_mean = space.penalty(*space.length_cost(torch.tensor(u), [torch.tensor(p) for p in probs]))
    assert float(got) > float(of_mean)  # one crystal layer (1000 CU) is at the limit, two break it


def test_loop_finds_the_constrained_optimum_of_a_toy(tmp_path: Path) -> None:
    """One PbWO4 block: deeper contains more of the shower, so the optimum is the length limit, 150 mm.

    With the sign of the surrogate's gradient flipped the loop walks to the 20 mm end of the range."""
    d = _cfg(constraints={"max_length_mm": 150.0, "penalty_weight": 100.0}, design={"start": {"sensor_mm": [60.0]}})
    cfg = parse_config(d, str(tmp_path / "toy.toml"))
    res = run_loop(cfg, tmp_path / "out", say=lambda m: None)
    depth = [r["design"]["sensor_mm"][0] for r in res.records] + [res.final.sensor_mm[0]]
    assert depth[0] == pytest.approx(60.0)
    # the optimum of loss + penalty lies within 1 mm beyond 150 mm (the loss falls by < 1e-3 per mm
    # there, the penalty rises by 100 x 2 x (t / 150 - 1) / 150 per mm); found within 5 mm
    assert abs(depth[-1] - 150.0) <= 5.0, depth
    assert res.records[-1]["geant4_loss"] < res.records[0]["geant4_loss"]
    steps = np.abs(np.diff(depth))
    assert np.all(steps <= cfg.trust_radius * 280.0 + 1e-6)  # trust region, in mm of the 20-300 mm range
    assert (tmp_path / "out" / "index.html").is_file() and (tmp_path / "out" / "path.png").is_file()


class _DeeperIsBetter:
    """A stand-in surrogate whose loss is ``1 - u``: the deeper the block, the better."""

    def grid(self, energies_mev: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(1), torch.zeros(1, 1)

    def expected_loss(self, design: torch.Tensor, energies: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return 1.0 - design[0]


@pytest.mark.parametrize("limit", ["max_length_mm", "max_cost"])
def test_descend_stops_where_the_penalty_balances_the_loss(limit: str) -> None:
    """Loss 1 - u with u = (t - 20 mm) / 280 mm; a limit at t = 150 mm (length, or the cost of 150 mm of
    PbWO4): d/du [1 - u + w (t / 150 - 1)^2] = 0 at t* = 150 (1 + 150 / (2 w 280)) = 150.40 mm for w = 100."""
    area_cm2 = 30.0 * 30.0
    value = 150.0 if limit == "max_length_mm" else 15.0 * area_cm2 * 2.5
    d = _cfg(
        constraints={limit: value, "penalty_weight": 100.0},
        optimiser={"trust_radius": 1.0, "steps_per_iteration": 800, "learning_rate": 0.002},
    )
    space = DesignSpace(parse_config(d, "limit"))
    u1, _, info = descend(_DeeperIsBetter(), space, np.asarray([0.1]), [], seed=0)  # type: ignore[arg-type]
    depth = 20.0 + 280.0 * float(u1[0])
    assert depth == pytest.approx(150.0 * (1 + 150.0 / (2 * 100.0 * 280.0)), abs=0.6)
    assert info["objective_after"] < info["objective_before"] and info["penalty_after"] < 1e-3


# ---------------------------------------------------------------------------- resume


def test_resume_after_kill_9_continues_the_same_path(tmp_path: Path) -> None:
    config = _toml(_cfg(simulation={"iterations": 3}, constraints={"max_length_mm": 200.0}), tmp_path / "opt.toml")
    ref = run_loop(load_config(config), tmp_path / "ref", say=lambda m: None)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "showerforge", "optimise", "--config", str(config), "-o", str(tmp_path / "b")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "b" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["records"]:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(json.loads(state.read_text())["records"])
    assert killed_at < 3, "the run finished before it could be killed"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    def path(folder: Path) -> list[dict]:
        rows = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert path(tmp_path / "b") == path(ref.output)


# ------------------------------------------------------------------------ bad configs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"design": {"sensor": ["G4_PbWO4", "G4_Unobtainium"]}}, "unknown material 'G4_Unobtainium'"),
        ({"design": {"absorber_mm": [-5.0, 10.0]}}, "thickness must be >= 0 mm, got -5"),
        ({"design": {"sensor_mm": -3.0}}, "thickness must be > 0 mm, got -3"),
        ({"design": {"sensor_mm": 50.0}}, "nothing to optimise (empty parameter set)"),
        ({"design": {"absorber_mm": [10.0, 5.0]}}, "needs high > low"),
        ({"simulation": {"engine": "fluka"}}, "engine: expected one of geant4, toy"),
        ({"beam": {"particle": "kaon+"}}, "particle: 'kaon+' is not simulated here"),
        ({"beam": {"particle": "pi+"}, "simulation": {"physics": "standard"}}, "pi+ needs a hadronic reference list"),
        ({"beam": {"particle": "pi-"}, "simulation": {"physics": "ftfp bert"}}, "physics: expected one of standard"),
        ({"beam": {"particle": "pi+"}, "simulation": {"engine": "toy"}}, "the toy engine has electromagnetic showers"),
        ({"simulation": {"baseline_seeds": 0}}, "baseline_seeds: expected an integer >= 1"),
    ],
)
def test_bad_configs_are_refused_in_one_line(tmp_path: Path, change: dict, message: str) -> None:
    change = {**change, "simulation": {"engine": "geant4", **change.get("simulation", {})}}
    d = _cfg(**change)
    config = _toml(d, tmp_path / "bad.toml")
    with pytest.raises(UserError) as err:
        load_config(config)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(config) in str(err.value)


def test_a_pion_beam_defaults_to_ftfp_bert() -> None:
    cfg = parse_config(_cfg(beam={"particle": "pi+"}, simulation={"engine": "geant4"}), "pions")
    assert cfg.physics == "FTFP_BERT"
    assert parse_config(_cfg(), "electrons").physics == "standard"
    assert load_config(Path(__file__).resolve().parents[1] / "examples" / "optimise_pions.toml").particle == "pi+"


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"design": {"sensor": ["G4_PbWO4", "G4_Unobtainium"]}}, "G4_Unobtainium"),
        ({"beam": {"particle": "pi+"}, "simulation": {"physics": "option3"}}, "hadronic reference list"),
    ],
)
def test_bad_config_on_the_command_line_exits_2_before_any_geant4(tmp_path: Path, change: dict, word: str) -> None:
    d = _cfg(**change)
    d["simulation"]["engine"] = "geant4"
    config = _toml(d, tmp_path / "bad.toml")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "showerforge", "optimise", "--config", str(config), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0]
    assert not out.exists()  # nothing created, nothing simulated


def test_a_run_folder_of_another_config_is_refused(tmp_path: Path) -> None:
    run_loop(parse_config(_cfg(simulation={"iterations": 1}), "a.toml"), tmp_path / "out", say=lambda m: None)
    other = parse_config(_cfg(simulation={"iterations": 1}, optimiser={"trust_radius": 0.3}), "b.toml")
    with pytest.raises(UserError, match="holds a run of another config"):
        run_loop(other, tmp_path / "out", say=lambda m: None)


def test_baselines_at_several_seeds_are_summarised_by_their_spread(tmp_path: Path) -> None:
    from showerforge.optimisation.baselines import run_baseline
    from showerforge.optimisation.runner import optimise_and_verify

    d = _cfg(simulation={"iterations": 1, "baseline_seeds": 3}, constraints={"max_length_mm": 200.0})
    config = _toml(d, tmp_path / "opt.toml")
    out = tmp_path / "out"
    res = optimise_and_verify(
        config, out, verify=True, verify_energies="4GeV", verify_n=50, baselines=["random", "tpe"], baseline_seeds=2
    )  # the argument overrides the config's 3
    assert sorted(res.baselines) == ["random", "random-s1", "tpe", "tpe-s1"]
    trials = {n: (out / "baselines" / n / "trials.jsonl").read_text() for n in res.baselines}
    assert trials["random"] != trials["random-s1"] and trials["tpe"] != trials["tpe-s1"]
    cfg = load_config(config)
    again = run_baseline("random", cfg, DesignSpace(cfg), tmp_path / "single")  # one run: seed 0 as before
    assert (tmp_path / "single" / "trials.jsonl").read_text() == trials["random"]
    assert again["objective"] == res.baselines["random"]["objective"]
    doc = json.loads((out / "comparison.json").read_text())
    methods = {m["method"]: m for m in doc["methods"]}
    assert [methods[k]["seeds"] for k in ("start (random)", "surrogate-guided (this loop)", "random", "tpe")] == [
        1,
        1,
        2,
        2,
    ]
    losses = [doc["verification"]["designs"][f"{n}-best"]["loss"] for n in ("random", "random-s1")]
    assert methods["random"]["loss"]["mean"] == pytest.approx(np.mean(losses))
    assert methods["random"]["loss"]["spread"] == pytest.approx(np.std(losses, ddof=1))
    assert methods["surrogate-guided (this loop)"]["loss"]["spread"] is None
    text = (out / "comparison.md").read_text()
    assert "| random | 2 | 600 |" in text and " sd (" in text
    assert "Per method" in (out / "index.html").read_text()


# ---------------------------------------------------------------------------- Geant4


@pytest.mark.slow
def test_one_tiny_geant4_iteration_and_verification(tmp_path: Path) -> None:
    from showerforge.optimisation.runner import optimise_and_verify

    d = {
        "seed": 2,
        "beam": {"particle": "e-", "energy": "1:5GeV"},
        "design": {
            "n_layers": 2,
            "transverse_half_mm": 80.0,
            "absorber_mm": [0.0, 20.0],
            "sensor_mm": [5.0, 30.0],
            "absorber": ["G4_Pb", "G4_Fe"],
            "sensor": "G4_PbWO4",
        },
        "simulation": {"engine": "geant4", "iterations": 1, "designs_per_iteration": 2, "showers_per_design": 10},
        "surrogate": {"epochs": 5, "width": 16},
    }
    res = optimise_and_verify(
        _toml(d, tmp_path / "g4.toml"), tmp_path / "out", verify=True, verify_energies="2,4GeV", verify_n=10
    )
    assert len(res.records) == 1 and res.records[0]["geant4_showers_total"] == 20
    assert res.verification is not None
    rows = res.verification["designs"]["surrogate"]["resolution"]
    assert [r["energy_mev"] for r in rows] == [2000.0, 4000.0]
    assert all(0 < r["resolution"] < 1 for r in rows)
    import h5py

    with h5py.File(tmp_path / "out" / "iterations" / "iter-0000" / "showers.h5", "r") as f:
        assert f["layer_visible_mev"].shape == (20, 2) and f["design_u"].shape == (2, 4)
        assert float(f["layer_visible_mev"][...].sum()) > 0


needs_geant4 = pytest.mark.skipif(
    importlib.util.find_spec("geant4_pybind") is None, reason="geant4-pybind is not installed"
)


@needs_geant4
def test_one_tiny_pion_iteration_records_its_hadronic_physics(tmp_path: Path) -> None:
    """Two designs x 10 pions of 1-5 GeV through FTFP_BERT (approximate hadronic data without the real sets)."""
    d = {
        "seed": 3,
        "beam": {"particle": "pi+", "energy": "1:5GeV"},
        "design": {
            "n_layers": 2,
            "absorber_mm": [10.0, 100.0],
            "sensor_mm": 5.0,
            "absorber": ["G4_Fe", "G4_Pb"],
            "sensor": "G4_POLYSTYRENE",
        },
        "simulation": {"engine": "geant4", "iterations": 1, "designs_per_iteration": 2, "showers_per_design": 10},
        "surrogate": {"epochs": 5, "width": 16},
    }
    res = run_loop(load_config(_toml(d, tmp_path / "pions.toml")), tmp_path / "out", say=lambda m: None)
    (record,) = res.records
    assert record["geant4_showers_total"] == 20 and np.isfinite(record["geant4_loss"])
    prov = record["provenance"]
    assert prov["engine"] == "geant4" and prov["particle"] == "pi+" and prov["physics_list"] == "FTFP_BERT"
    assert prov["hadronic_data"] in ("approximate", "geant4")
    import h5py

    with h5py.File(tmp_path / "out" / "iterations" / "iter-0000" / "showers.h5", "r") as f:
        full = json.loads(f.attrs["provenance"])
        assert full["physics_list"] == "FTFP_BERT" and "geant4_version" in full
        assert float(f["layer_visible_mev"][...].sum()) > 0
    assert "FTFP_BERT" in (tmp_path / "out" / "index.html").read_text()


@needs_geant4
def test_a_hadronic_list_that_needs_the_real_data_is_refused_before_any_shower(tmp_path: Path) -> None:
    from showerforge.simulate.g4data import geant4_environment

    if geant4_environment(True)[1].get("hadronic_data") != "approximate":
        pytest.skip("the real Geant4 hadronic data sets are installed")
    d = _cfg(beam={"particle": "pi+"}, simulation={"engine": "geant4", "physics": "QGSP_BIC_HP"})
    with pytest.raises(UserError) as err:
        run_loop(load_config(_toml(d, tmp_path / "hp.toml")), tmp_path / "out", say=lambda m: None)
    assert "QGSP_BIC_HP" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out" / "iterations").exists()
