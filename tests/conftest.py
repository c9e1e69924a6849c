"""Shared test fixtures.

* :func:`simulated`: a real Geant4 / Pythia8 campaign made once per test session and cached in
  pytest's cache folder, keyed by its command and by the source of the code that makes it
  (``simulate/``, ``geometry.py``, ``data/``), so that a change of that code makes it anew. Test
  processes (pytest-xdist workers) share one copy through a file lock. Tests must not modify the
  file: copy it first.
* The ``slow`` marker: long physics checks, left out of ``make test`` and run by ``make test-slow``
  (CI runs both).
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "showerforge"
_SIMULATION_CODE = ("simulate", "geometry.py", "data")


def _code_digest() -> str:
    digest = hashlib.sha256()
    for part in _SIMULATION_CODE:
        path = SRC / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(str(file.relative_to(SRC)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def simulated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``simulated("simulate", "calo", "--geometry", "mini", ...)`` -> the output file of that command.

    The command runs once per code version (``-o`` is added); later calls, in this session or a
    later one, return the cached file. Give ``--workers`` explicitly so that the file does not
    depend on the machine's core count.
    """
    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir("showerforge-simulated")) if cache is not None else tmp_path_factory.getbasetemp().parent
    code = _code_digest()

    def make(*args: str, timeout: float = 900) -> Path:
        key = hashlib.sha256("\0".join((code, *map(str, args))).encode()).hexdigest()[:24]
        out = root / f"{key}.h5"
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not out.exists():
                tmp = root / f"{key}.part.h5"
                proc = subprocess.run(
                    [sys.executable, "-m", "showerforge", *map(str, args), "-o", str(tmp)],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                assert proc.returncode == 0, proc.stderr[-3000:]
                tmp.replace(out)
        return out

    return make
