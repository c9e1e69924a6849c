"""The report folder of an evaluation: checked before work, written whole or not at all.

Shared by the shower report, the jet report and the leaderboard:

* :func:`check_output_dir` refuses an output folder that cannot be created or written, without
  creating anything (a refused run leaves nothing behind);
* :func:`report_folder` hands out an empty staging folder beside the output; when the block
  succeeds its content moves into place (a new folder by one rename, an existing one file by
  file), when it fails every folder this run created is removed again, and a pre-existing folder
  keeps its files;
* :func:`write_json` and :func:`write_page` write ``metrics.json`` and ``index.html``, each
  atomically; :func:`page_text` makes the names of non-UTF-8 files printable on a page.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from showerforge.data.io import OutputPathError, atomic_output

__all__ = ["check_output_dir", "report_folder", "write_json", "write_page", "page_text"]

_SURROGATES = re.compile("[\ud800-\udfff]")


def _existing_ancestor(path: Path) -> Path:
    """The nearest folder above ``path`` (or ``path`` itself) that exists."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse an output folder that cannot be created or written; creates nothing.

    Args:
        path: the output folder (it may exist, or be created later with its parents).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: ``path`` is an existing file, a parent is a file, or the folder (or the
            nearest existing parent) is not writable.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputPathError(out, "output folder is an existing file; give a folder name")
    base = _existing_ancestor(out)
    if not base.is_dir():
        raise OutputPathError(out, f"cannot create the output folder ({base} is a file)")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "output folder is not writable" if base == out.absolute() else f"cannot create it in {base}"
        raise OutputPathError(out, f"{what} (permission denied)")
    return out


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    created = []
    probe = folder.absolute()
    while not probe.exists():
        created.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _merge(stage: Path, out: Path, moved: list[Path]) -> None:
    """Move the content of ``stage`` into the existing folder ``out`` (``metrics.json`` last).

    Paths that did not exist before are appended to ``moved`` (so that a failure can remove them).
    """
    entries = sorted(stage.iterdir(), key=lambda p: (p.name == "metrics.json", p.name))
    for entry in entries:
        target = out / entry.name
        if entry.is_dir() and target.is_dir():
            _merge(entry, target, moved)
            continue
        if not target.exists():
            moved.append(target)
        os.replace(entry, target)


def _remove(moved: list[Path], parents: list[Path]) -> None:
    """Undo a failed run: the files and folders it moved in, then the (empty) parents it created."""
    for path in reversed(moved):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for folder in parents:  # deepest first; never one that holds something else now
        with contextlib.suppress(OSError):
            folder.rmdir()


def _move_into_place(stage: Path, out: Path, moved: list[Path]) -> None:
    """Rename ``stage`` to a new ``out``, or merge it into an ``out`` that exists by now."""
    if not out.is_dir():
        try:
            os.replace(stage, out)
            moved.append(out)
            return
        except OSError:
            if not out.is_dir():
                raise
    _merge(stage, out, moved)


@contextlib.contextmanager
def report_folder(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """A staging folder whose content becomes ``out_dir`` when the block succeeds.

    A new ``out_dir`` appears by one rename, with every file in it; an existing one receives the
    files one by one (``metrics.json`` last) and keeps the files it had. When the block (or the
    move) fails, the staging folder, the parents created for it and every file moved in that did
    not exist before are removed; a folder or file that existed before is never removed.

    Args:
        out_dir: the report folder.

    Yields:
        The empty staging folder (a hidden folder beside ``out_dir``, or inside it when it exists).
    """
    out = Path(out_dir)
    existed = out.is_dir()
    parents = [] if existed else _make_parents(out.parent)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name or 'report'}.partial-", dir=out if existed else out.parent))
    moved: list[Path] = []
    try:
        yield stage
        _move_into_place(stage, out, moved)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove(moved, parents)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (one space, a final newline), atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


def page_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8.

    File names that are not UTF-8 reach Python as lone surrogates (:func:`os.fsdecode`'s
    ``surrogateescape``); on a page they show as the replacement character, as ``ls`` shows them.
    """
    return _SURROGATES.sub("\ufffd", text)


def write_page(path: Path, html: str) -> None:
    """Write an HTML page as UTF-8, atomically; names of non-UTF-8 files go through :func:`page_text`."""
    with atomic_output(path) as tmp:
        tmp.write_text(page_text(html), encoding="utf-8")
