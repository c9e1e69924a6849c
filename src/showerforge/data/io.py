"""Output files written safely: fail before work starts, never leave a half file.

``atomic_output`` writes to a temporary file beside the target and renames it only on success, so
an interrupted run never leaves a file under the final name that looks whole.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from showerforge.errors import UserError

__all__ = [
    "FOLDER_FILES",
    "OutputPathError",
    "check_writable",
    "check_writable_dir",
    "check_not_input",
    "atomic_output",
]


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


#: Files that stand for their folder: a run's checkpoint, a refiner, a shipped model. An input given
#: as one of them makes its folder an input folder.
FOLDER_FILES = ("checkpoint.pt", "refiner.pt", "model.pt")


def _input_path(item: str | Path) -> Path:
    """The path of an input as given (a ``FILE:TYPE`` jet selection stripped)."""
    path = Path(item)
    text = str(item)
    if not path.exists() and ":" in text:
        head = Path(text.rpartition(":")[0])
        if head.exists():
            return head
    return path


def check_not_input(output: str | Path, *inputs: str | Path | None) -> None:
    """Refuse an output that is one of the inputs, or that lies inside an input's folder.

    An input folder is a folder given as an input that holds one of :data:`FOLDER_FILES` (a run
    directory, a refiner folder, a shipped model) or the folder of an input file of such a name
    (``RUN/checkpoint.pt``). Nothing is ever written into an input's folder, so
    ``-o RUN/config.json`` is refused as well as ``-o RUN/checkpoint.pt``. Inputs that do not exist
    (a shipped model's name) are skipped. Call it before anything is created.

    Raises:
        OutputPathError: naming the output and the input it would overwrite or lies in.
    """
    out = Path(output)
    out_abs = out.resolve()
    for item in inputs:
        if item is None:
            continue
        inp = _input_path(item)
        if not inp.exists():
            continue
        if inp.is_file():
            same = out.exists() and os.path.samefile(out, inp)
            if same or out_abs == inp.resolve():
                raise OutputPathError(out, f"the output would overwrite the input {item}; choose another output name")
        if inp.is_dir():  # a run or refiner folder (another folder is a mistake its reader reports)
            folder = inp if any((inp / name).is_file() for name in FOLDER_FILES) else None
        else:
            folder = inp.parent if inp.name in FOLDER_FILES else None
        if folder is None:
            continue
        where = folder.resolve()
        if out_abs == where or where in out_abs.parents:
            rule = "outputs are never written into an input's folder: choose an output outside it"
            if out.exists() and not out.is_dir():
                rel = out_abs.relative_to(where)
                raise OutputPathError(out, f"the output would overwrite the input {item} (its {rel}); {rule}")
            of = "" if inp.is_dir() else f" (of {item})"
            raise OutputPathError(out, f"the output lies inside the input folder {folder}{of}; {rule}")


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


def build_directory_once(root: str | Path, build: Callable[[Path], None], marker: str = "COMPLETE") -> Path:
    """Make the folder ``root`` with ``build(tmp)`` unless it is complete (holds ``marker``).

    ``build`` fills a temporary folder beside ``root`` (and must write ``marker`` last); the folder
    is then renamed onto ``root``, so readers never see a half-built one. A broken earlier attempt
    is replaced; when another process won the race, its folder is kept.
    """
    import shutil

    root = Path(root)
    if (root / marker).is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        build(tmp)
        if root.exists() and not (root / marker).is_file():
            shutil.rmtree(root, ignore_errors=True)  # a broken earlier attempt
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / marker).is_file():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
