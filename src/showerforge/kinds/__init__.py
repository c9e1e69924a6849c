"""The kinds registry: one class per kind of data, looked up by file, checkpoint or name.

Example:
    >>> from showerforge.kinds import kind_of_file, kind_of_checkpoint
    >>> kind_of_file("electrons.h5").name           # 'calo-voxels'
    >>> kind_of_file("jets.h5:t").noun              # 'jets'
    >>> kind_of_checkpoint("ds2-electron").load(...)

A new kind of data is a subclass of :class:`DataKind` registered with :func:`register_kind`
(see ``docs/architecture.md``). No module outside this package branches on the kind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from showerforge.errors import UserError
from showerforge.kinds.base import DataKind, GenerationRequest
from showerforge.kinds.calo_points import CaloPoints
from showerforge.kinds.calo_voxels import CaloVoxels
from showerforge.kinds.jet_set import JetSet

__all__ = [
    "DataKind",
    "GenerationRequest",
    "KINDS",
    "register_kind",
    "unregister_kind",
    "get_kind",
    "kinds",
    "kind_of_file",
    "kind_of_checkpoint",
    "load",
    "LEGACY_DEFAULT",
]

KINDS: dict[str, DataKind] = {}
"""Registered kinds by name."""

LEGACY_DEFAULT = "calo-voxels"
"""The kind of a checkpoint written before checkpoints named their kind."""


def register_kind(kind: DataKind) -> DataKind:
    """Register a kind (its name and aliases must be new). Returns it."""
    if not kind.name:
        raise ValueError(f"{type(kind).__name__}: a kind needs a name")
    taken = {kind.name, *kind.aliases} & ({*KINDS} | {a for k in KINDS.values() for a in k.aliases})
    if taken:
        raise ValueError(f"{type(kind).__name__}: name or alias already registered: {', '.join(sorted(taken))}")
    KINDS[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a registered kind (tests, plug-ins)."""
    KINDS.pop(name, None)


def kinds() -> Iterator[DataKind]:
    """The registered kinds, in registration order."""
    return iter(list(KINDS.values()))


def get_kind(name: str) -> DataKind:
    """The kind of a name or an alias; an unknown one is a one-line error listing the known."""
    key = str(name)
    if key in KINDS:
        return KINDS[key]
    for kind in KINDS.values():
        if key in kind.aliases:
            return kind
    raise UserError(f"unknown kind of data {key!r}; known: {', '.join(KINDS)}")


def _spec_file(spec: str | os.PathLike[str]) -> Path:
    """The file of ``FILE`` or ``FILE:SELECTOR`` (the selector only where FILE exists)."""
    text = os.fspath(spec)
    path = Path(text)
    if not path.exists() and ":" in text:
        head = text.rpartition(":")[0]
        if head and Path(head).exists():
            return Path(head)
    return path


def kind_of_file(spec: str | os.PathLike[str]) -> DataKind:
    """The kind of an HDF5 file (``FILE`` or ``FILE:SELECTOR``), from its top-level keys.

    Raises:
        FileNotFoundError: the file does not exist.
        UserError: a folder, not an HDF5 file, no kind or several kinds match; a selector on a
            kind without selectors.
    """
    import h5py

    path = _spec_file(spec)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected an HDF5 file")
    try:
        with h5py.File(path, "r") as h5:
            keys = set(h5.keys())
    except OSError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: not an HDF5 file ({first}); expected {_expected()}") from None
    found = [k for k in KINDS.values() if k.matches(keys)]
    if len(found) > 1:
        names = " and ".join(k.name for k in found)
        raise UserError(f"{path}: holds the keys of {names} ({sorted(keys)}); cannot tell which it is")
    if not found:
        raise UserError(f"{path}: neither {_expected()}; found keys {sorted(keys)}")
    kind = found[0]
    kind.split_spec(os.fspath(spec))  # refuses a selector the kind does not know
    return kind


def _expected() -> str:
    return " nor ".join(k.description for k in KINDS.values())


def kind_of_checkpoint(checkpoint: str | os.PathLike[str] | Mapping[str, Any]) -> DataKind:
    """The kind of a checkpoint: its ``data_kind`` (a run folder, checkpoint file, shipped name or dict)."""
    if isinstance(checkpoint, Mapping):
        meta = checkpoint
    else:
        from showerforge.runs import read_checkpoint, resolve_model

        meta = read_checkpoint(resolve_model(os.fspath(checkpoint)))
    return get_kind(str(meta.get("data_kind", LEGACY_DEFAULT)))


def load(name_or_path: str | os.PathLike[str], device: Any = "cpu") -> Any:
    """A trained surrogate of any kind: a shipped name (``"ds2-electron"``), a run folder or a checkpoint.

    The checkpoint is read with ``torch.load(weights_only=True)``; its ``data_kind`` chooses the
    kind that loads it. The result has ``.sample(...)``.
    """
    from showerforge.runs import read_checkpoint, resolve_model

    path = resolve_model(os.fspath(name_or_path))
    return kind_of_checkpoint(read_checkpoint(path)).load(path, device)


for _kind in (CaloVoxels(), JetSet(), CaloPoints()):
    register_kind(_kind)
