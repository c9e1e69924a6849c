"""A new kind of data plugs in without touching the package: train -> generate -> evaluate -> validate.

The kind (2-D points with a condition, :mod:`toy_kind`) is registered at run time with its own
model; the API and the command line find it through the kinds registry. Known answers: the model
learns the conditional mean (points around (c, -c)), generation follows the conditions asked for,
the evaluation sees a known shift of 0.5 and no shift between two samples of one distribution,
and a validation with the kind's own analysis passes for the model and fails for the shifted file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import toy_kind
from click.testing import CliRunner

import showerforge as sf
from showerforge.cli import cli
from showerforge.errors import UserError
from showerforge.kinds import get_kind, kind_of_checkpoint, kind_of_file

N = 3000


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    kind = toy_kind.install()
    d = tmp_path_factory.mktemp("toy")
    files = {}
    for name, (seed, shift) in {"train": (1, 0.0), "ref": (2, 0.0), "other": (3, 0.0), "shifted": (4, 0.5)}.items():
        files[name] = toy_kind.write_points(d / f"{name}.h5", *toy_kind.make_points(N, seed, shift))
    files["dir"] = d
    run = sf.train(files["train"], output=d / "run", epochs=20, seed=0, progress=False)
    files["run"] = Path(run)
    assert kind_of_checkpoint(files["run"]) is kind
    yield files
    toy_kind.uninstall()


def test_the_registry_finds_the_new_kind(toy: dict[str, Path]) -> None:
    assert kind_of_file(toy["ref"]).name == "toy-points" and get_kind("toy-points").noun == "points"
    with pytest.raises(UserError, match="export"):
        sf.export_onnx(toy["run"], toy["dir"] / "x.onnx")
    with pytest.raises(UserError, match="unknown kind of data 'toy-pointz'"):
        get_kind("toy-pointz")


def test_train_and_generate_through_the_api(toy: dict[str, Path], tmp_path: Path) -> None:
    out = sf.generate_file(toy["run"], output=tmp_path / "gen.h5", energies_from=toy["ref"], seed=5)
    pts, c = toy_kind.read_points(out)
    ref_pts, ref_c = toy_kind.read_points(toy["ref"])
    np.testing.assert_array_equal(c, ref_c)  # generated at the conditions asked for
    # the conditional mean (c, -c): residuals centred on 0 with the data's width 0.3
    res = pts - np.stack([c, -c], axis=1)
    assert np.all(np.abs(res.mean(0)) < 0.05) and np.all(np.abs(res.std(0) - 0.3) < 0.06), (res.mean(0), res.std(0))
    # the same seed gives the same points
    again = sf.generate_file(toy["run"], output=tmp_path / "again.h5", energies_from=toy["ref"], seed=5)
    np.testing.assert_array_equal(toy_kind.read_points(again)[0], pts)
    with pytest.raises(UserError, match="toy model"):
        sf.generate_file(toy["run"], output=tmp_path / "x.h5", types="t", n=3)


def test_evaluate_sees_a_known_shift(toy: dict[str, Path], tmp_path: Path) -> None:
    same = sf.evaluate(toy["ref"], toy["other"], output=tmp_path / "same")["candidate_vs_reference"]["mean_x"]
    shifted = sf.evaluate(toy["ref"], toy["shifted"], output=tmp_path / "shift")["candidate_vs_reference"]["mean_x"]
    assert abs(same["value"]) < 5 * same["error"]
    assert abs(shifted["value"] - 0.5) < 5 * shifted["error"] and shifted["value"] > 20 * shifted["error"]
    assert json.loads((tmp_path / "shift" / "metrics.json").read_text())["n"] == [N, N]


ANALYSIS = '''
import numpy as np
from showerforge.validate.analyses import Observable

def residual(events):
    """x + y: 0 for the toy's conditional mean, 0.5 for the shifted file."""
    return [Observable("x_plus_y", events.points[:, 0] + events.points[:, 1], "x + y", "x + y")]
'''


def test_cli_train_generate_evaluate_validate(toy: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()

    def ok(*args: str) -> str:
        res = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    ok("train", "--data", toy["train"], "-o", tmp_path / "run", "--epochs", "2")
    ok("generate", "--model", toy["run"], "--n", "500", "--seed", "1", "-o", tmp_path / "gen.h5")
    assert toy_kind.read_points(tmp_path / "gen.h5")[0].shape == (500, 2)
    assert "mean_x:" in ok("evaluate", "--reference", toy["ref"], "--candidate", toy["other"], "-o", tmp_path / "r")
    (tmp_path / "toy_analyses.py").write_text(ANALYSIS)
    (tmp_path / "suite.toml").write_text(
        'name = "toy"\ngates = ["chi2_ndf_max <= 4"]\n'
        f'[reference]\nfile = "{toy["ref"]}"\n'
        '[analyses]\nmodules = ["toy_analyses.py:residual"]\n[metrics]\nenabled = false\n'
    )
    suite = tmp_path / "suite.toml"
    assert "PASS" in ok("validate", "run", "--suite", suite, "--candidate", toy["run"], "--label", "v1")
    res = runner.invoke(
        cli, ["validate", "run", "--suite", str(suite), "--candidate", str(toy["shifted"]), "--label", "v2"]
    )
    assert res.exit_code == 1 and "FAIL" in res.output, res.output
