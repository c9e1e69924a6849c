"""Shared by the generator-settings benchmarks: one `showerforge validate run` per candidate,
reused when its result exists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def validated(suite: Path, candidate: Path, label: str, store: Path, target: Path) -> dict:
    """``result.json`` of validating ``candidate`` against ``suite`` into ``target`` (run once)."""
    if not (target / "result.json").is_file():
        cmd = [
            sys.executable, "-m", "showerforge", "validate", "run", "--suite", str(suite),
            "--candidate", str(candidate), "--label", label, "--store", str(store), "-o", str(target), "--replace",
        ]  # fmt: skip
        code = subprocess.run(cmd).returncode
        if code not in (0, 1):  # 0: gates pass, 1: a gate fails; anything else is an error
            raise SystemExit(f"validate run failed for {label} ({candidate}), exit {code}")
    return json.loads((target / "result.json").read_text())
