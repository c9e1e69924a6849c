"""The example of docs/validation.md, run as written: Geant4 on `mini`, three trained versions of a
surrogate, the early one fails its gates (exit 1), the late one passes (exit 0)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "validation.md"


def _example() -> str:
    text = DOC.read_text()
    block = text.split("<!-- validate-example -->", 1)[1]
    return block.split("```bash\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.slow
def test_docs_example_three_versions(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        ["bash", "-c", _example()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    codes = dict(re.findall(r"^(v\d) exit (\d)$", out, re.M))
    assert codes["v1"] == "1" and codes["v3"] == "0", out
    assert "mini-electron v1: FAIL" in out and "mini-electron v3: PASS" in out
    # history: the three versions in order, with their verdicts
    hist = out[out.index("suite mini-electron: 3 version(s)") :].splitlines()
    assert [line.split()[0] for line in hist[2:5]] == ["v1", "v2", "v3"]
    assert "FAIL" in hist[2] and "PASS" in hist[4]
    # compare names the histograms that changed, with the metrics' shifts
    assert "histograms that changed most from v1 to v3" in out and "auc_high:" in out
    # the pages, the cached reference, the history and the dashboard are where the docs say
    for label in ("v1", "v2", "v3"):
        run = tmp_path / "validation" / "mini-electron" / label
        assert (run / "index.html").is_file() and (run / "histograms.root").is_file()
    assert (tmp_path / "validation.db").is_file() and list(tmp_path.glob(".mini.reference-*.h5"))
    assert (tmp_path / "validation" / "mini-electron" / "dashboard" / "index.html").is_file()
