"""The evaluation pages in a real headless browser (Debian's chromium): they render, every image
loads, no console errors. ``make test`` installs chromium where it is missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_evaluate_report import MINI, _showers

from showerforge.data.calo import write_showers
from showerforge.evaluation import evaluate_files

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def _load(page: Path, tmp_path: Path) -> tuple[str, str]:
    """(DOM after load, browser log) of a local page."""
    if BROWSER is None:
        if os.environ.get("SHOWERFORGE_NO_BROWSER"):
            pytest.skip("SHOWERFORGE_NO_BROWSER set and chromium missing")
        pytest.fail("chromium is not installed: run `make test` (it installs it) or apt-get install chromium")
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def test_shower_report_renders_with_every_image(tmp_path: Path) -> None:
    ref = write_showers(tmp_path / "ref.h5", *_showers(200, 1), MINI)
    cand = write_showers(tmp_path / "cand.h5", *_showers(200, 2, width=1.3), MINI)
    out = tmp_path / "report"
    evaluate_files(ref, cand, out, quick=True, threshold_mev=0.01, classifiers=("verdict",), nplm_toys=0)
    dom, log = _load(out / "index.html", tmp_path)
    n_png = len(list((out / "plots").glob("*.png")))
    images = re.search(r'data-images="(\d+)"', dom)
    broken = re.search(r'data-broken-images="(\d+)"', dom)
    assert images and broken, "the load handler did not run"
    assert int(images.group(1)) == n_png + _key_count(dom) and n_png > 5  # key plots appear twice
    assert broken.group(1) == "0"
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not console, console
    # the verdict comes first, the per-histogram table is folded away
    assert dom.index("Verdict") < dom.index("Key plots") < dom.index("All metrics") < dom.index("<details")


def _key_count(dom: str) -> int:
    """Images repeated in the key-plot block."""
    block = dom[dom.index('class="keyplots"') : dom.index("All metrics")]
    return block.count("<img")


def test_leaderboard_of_two_candidates(tmp_path: Path) -> None:
    """`evaluate --candidate A --candidate B`: one report each, the closer candidate first, a page that loads."""
    from click.testing import CliRunner

    from showerforge.cli import cli

    ref = write_showers(tmp_path / "ref.h5", *_showers(300, 1), MINI)
    near = write_showers(tmp_path / "near.h5", *_showers(150, 2, width=1.02), MINI)
    far = write_showers(tmp_path / "far.h5", *_showers(150, 3, width=1.6), MINI)
    out = tmp_path / "board"
    args = ["evaluate", "--reference", str(ref), "--candidate", str(far), "--candidate", str(near)]
    res = CliRunner().invoke(cli, [*args, "-o", str(out), "--quick", "--nplm-toys", "0"])
    assert res.exit_code == 0, res.output
    board = json.loads((out / "leaderboard.json").read_text())
    assert [c["name"] for c in board["candidates"]] == ["near", "far"]  # sorted: the closer one first
    assert board["sorted_by"] == "verdict AUC" and (out / "near" / "metrics.json").is_file()
    assert "near:" in res.output and "floor:" in res.output
    dom, log = _load(out / "index.html", tmp_path)
    assert re.search(r'data-broken-images="0"', dom) and 'href="near/index.html"' in dom
    assert not [line for line in log.splitlines() if "CONSOLE" in line]


@pytest.mark.filterwarnings("ignore:evaluate_jets.*recommended:UserWarning")
def test_jet_report_renders_with_every_image(tmp_path: Path) -> None:
    from test_evaluate_jet_report import N_JETS, _jets

    from showerforge.data.jetnet import write_jets
    from showerforge.evaluation import evaluate_jet_files

    ref = write_jets(tmp_path / "ref.h5", _jets(N_JETS, 1))
    cand = write_jets(tmp_path / "cand.h5", _jets(N_JETS, 2, eta_shift=0.05))
    evaluate_jet_files(str(ref), str(cand), tmp_path / "report", seed=0, quick=True)
    dom, log = _load(tmp_path / "report" / "index.html", tmp_path)
    n_png = len(list((tmp_path / "report" / "plots").glob("*.png")))
    assert re.search(rf'data-images="{n_png}"', dom) and n_png >= 5
    assert re.search(r'data-broken-images="0"', dom)
    assert not [line for line in log.splitlines() if "CONSOLE" in line]
    assert dom.index("Verdict") < dom.index("<h2>Plots")
