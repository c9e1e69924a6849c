"""Output files written safely: fail before work starts, never leave a half file.

``atomic_output`` writes to a temporary file beside the target and renames it only on success, so
an interrupted run never leaves a file under the final name that looks whole.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from showerforge.errors import UserError

__all__ = ["OutputPathError", "check_writable", "check_writable_dir", "check_not_input", "atomic_output"]


class OutputPathError(UserError):
    """An output path cannot be written; the message names it and says why."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{path}: {message}")


def check_writable(path: str | Path) -> Path:
    """Fail early (before any simulation) if ``path`` cannot be written.

    Raises:
        OutputPathError: the directory does not exist or is not writable, or path is a directory.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputPathError(path, "output path is a directory; give a file name such as out.h5")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputPathError(path, f"cannot create output directory ({err.strerror})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".sf-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputPathError(path, f"output directory is not writable ({err.strerror})") from None
    return path


def check_writable_dir(path: str | Path) -> Path:
    """Fail early if the output folder ``path`` cannot be created or written (it is created).

    Raises:
        OutputPathError: ``path`` is a file, or it (or its parent) is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(path, "output folder is an existing file; give a folder name")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(path, f"cannot create the output folder ({err.strerror})") from None
    check_writable(path / "probe")
    return path


def check_not_input(output: str | Path, *inputs: str | Path | None) -> None:
    """Refuse an output that would overwrite one of the inputs (same file, any spelling).

    Raises:
        OutputPathError: naming the output and the input it would overwrite.
    """
    out = Path(output)
    for item in inputs:
        if item is None:
            continue
        inp = Path(str(item).split(":")[0]) if not Path(str(item)).exists() else Path(item)
        if inp.is_dir():
            inp = inp / "checkpoint.pt"
        same = out.exists() and inp.exists() and os.path.samefile(out, inp)
        if same or out.resolve() == inp.resolve():
            raise OutputPathError(out, f"the output would overwrite the input {item}; choose another output name")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    An interrupted write never leaves a half file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
