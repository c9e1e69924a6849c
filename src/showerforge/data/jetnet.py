"""JetNet-format HDF5 files: jets as zero-padded particle clouds.

Layout (one HDF5 file, arrays at the root):

===================  ============  ===========================================================
key                  shape         content
===================  ============  ===========================================================
``particle_features`` (N, n, 4)    float32 ``eta_rel, phi_rel, pt_rel, mask`` of the n = 30 or
                                   150 highest-pT constituents, pT-descending, zero-padded
``jet_features``     (N, 4)        float32 jet ``pT`` (GeV), ``eta``, ``mass`` (GeV),
                                   multiplicity
``jet_type``         (N,)          int8 index into :data:`JET_TYPES`
===================  ============  ===========================================================

File attributes: ``format = "jetnet"``, ``showerforge_version``, ``jet_types`` (JSON list, the
order the ``jet_type`` labels refer to), ``settings`` and ``seeds`` (JSON strings) and any
user attributes (stored as JSON strings).

Reading also accepts the public JetNet release (Kansal et al., arXiv:2106.11535; Zenodo
records 6975118 / 6302240): files ``g.hdf5``, ``t150.hdf5``, ... hold ``particle_features`` and
4-column ``jet_features`` but no ``jet_type``; the type is then taken from the file name.
Files exported from the ``jetnet`` loader carry the type in column 0 of a 5-column
``jet_features`` (``type, pT, eta, mass, n``) indexed in jetnet's order ``("g", "t", "q", "w",
"z")`` unless the file's ``jet_types`` attribute says otherwise; both variants are recognised
and :attr:`JetData.type_column_found` reports which one was read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.data.io import atomic_output
from showerforge.errors import UserError

__all__ = [
    "JET_TYPES",
    "JETNET_LOADER_TYPE_ORDER",
    "JetData",
    "JetFileError",
    "merge_jet_files",
    "parse_spec",
    "read_jets",
    "write_jets",
]

JETNET_LOADER_TYPE_ORDER: tuple[str, ...] = ("g", "t", "q", "w", "z")
"""Type order of the ``jetnet`` package's type column (differs from :data:`JET_TYPES`)."""

JET_TYPES: tuple[str, ...] = ("g", "q", "t", "w", "z")
"""Jet types, in the order of the ``jet_type`` index (gluon, light quark, top, W, Z)."""

_PARTICLE_NAMES = ["eta_rel", "phi_rel", "pt_rel", "mask"]
_JET_NAMES = ["pt", "eta", "mass", "multiplicity"]
_FORMAT = "jetnet"


class JetFileError(UserError):
    """A jet file (or array set) that does not follow the JetNet layout.

    The message names the file, the field and what was expected.
    """

    def __init__(self, source: str | os.PathLike[str], fieldname: str, problem: str) -> None:
        """Build the message ``"<source> [<fieldname>]: <problem>"`` (as :class:`CaloFileError`)."""
        self.source = str(source)
        self.field = fieldname
        self.problem = problem
        super().__init__(f"{self.source} [{fieldname}]: {problem}")


@dataclass
class JetData:
    """Jets read from (or to be written to) a JetNet-format file.

    Attributes:
        particle_features: ``(N, n, 4)`` float32 ``eta_rel, phi_rel, pt_rel, mask``.
        jet_features: ``(N, 4)`` float32 ``pT`` (GeV), ``eta``, ``mass`` (GeV), multiplicity.
        jet_type: ``(N,)`` int8 index into :data:`JET_TYPES`.
        attrs: File attributes (JSON strings decoded).
        type_column_found: True if the file's ``jet_features`` had 5 columns with the type in
            column 0 (the ``jetnet`` loader layout).
        path: File the data came from ("" for in-memory data).
        selected_type: The type selected with a ``file:type`` spec, or None.
    """

    particle_features: np.ndarray
    jet_features: np.ndarray
    jet_type: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    type_column_found: bool = False
    path: str = ""
    selected_type: str | None = None

    def __len__(self) -> int:
        """Number of jets N."""
        return int(self.jet_features.shape[0])

    @property
    def n_particles(self) -> int:
        """Number of particle slots n per jet."""
        return int(self.particle_features.shape[1])


def parse_spec(spec: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Split a ``path[:type]`` spec, e.g. ``"jets.h5:t"`` -> ``(Path("jets.h5"), "t")``.

    A suffix is read as a type only if it is one of
    :data:`JET_TYPES` (case-insensitive) and the whole spec is not an
    existing file.

    Args:
        spec: File path, optionally followed by ``:type``.

    Returns:
        ``(path, jet_type or None)``.
    """
    text = os.fspath(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head and not Path(text).exists():
        if tail.lower() in JET_TYPES:
            return Path(head), tail.lower()
        if Path(head).exists() and "/" not in tail:
            raise JetFileError(head, "jet_type", f"unknown jet type {tail!r} in {text!r}; expected one of {JET_TYPES}")
    return Path(text), None


def _decode_attr(value: Any) -> Any:
    """Decode an HDF5 attribute: bytes -> str, JSON strings -> objects, arrays -> lists."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _type_from_name(path: Path) -> str | None:
    """Jet type encoded in a JetNet release file name (``g.hdf5``, ``t150.hdf5``), if any."""
    match = re.fullmatch(r"([gqtwz])(\d*)", path.stem.lower())
    return match.group(1) if match else None


def _check_arrays(
    pf: np.ndarray, jf: np.ndarray, jt: np.ndarray, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes, dtypes and values; return float32/float32/int8 copies or views.

    Raises:
        JetFileError: Naming ``source``, the field and what was expected.
    """
    for name, arr, ndim in (("particle_features", pf, 3), ("jet_features", jf, 2)):
        if not np.issubdtype(arr.dtype, np.floating):
            raise JetFileError(source, name, f"expected a float array (JetNet layout), got dtype {arr.dtype}")
        if arr.ndim != ndim:
            want = "(N, n, 4)" if ndim == 3 else "(N, 4)"
            raise JetFileError(source, name, f"expected shape {want}, got {arr.shape}")
    if pf.shape[2] != 4 or pf.shape[1] < 1:
        raise JetFileError(source, "particle_features", f"expected shape (N, n>=1, 4), got {pf.shape}")
    if jf.shape[1] != 4:
        raise JetFileError(source, "jet_features", f"expected shape (N, 4), got {jf.shape}")
    if jf.shape[0] != pf.shape[0]:
        raise JetFileError(
            source,
            "jet_features",
            f"expected {pf.shape[0]} rows (as particle_features), got {jf.shape[0]}",
        )
    if jt.shape != (pf.shape[0],):
        raise JetFileError(source, "jet_type", f"expected shape ({pf.shape[0]},), got {jt.shape}")
    if not np.issubdtype(jt.dtype, np.integer):
        if not (np.issubdtype(jt.dtype, np.floating) and np.all(jt == np.round(jt))):
            raise JetFileError(source, "jet_type", f"expected integer labels, got dtype {jt.dtype}")
    pf = np.asarray(pf, dtype=np.float32)
    jf = np.asarray(jf, dtype=np.float32)
    for name, arr in (("particle_features", pf), ("jet_features", jf)):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise JetFileError(source, name, f"expected finite values, found NaN/inf at index {first}")
    mask = pf[..., 3]
    if not np.all((mask == 0) | (mask == 1)):
        first = tuple(int(i) for i in np.argwhere((mask != 0) & (mask != 1))[0])
        raise JetFileError(
            source,
            "particle_features",
            f"expected mask (column 3) in {{0, 1}}, found {mask[first]} at {first}",
        )
    neg = (pf[..., 2] < 0) & (mask == 1)
    if neg.any():
        first = tuple(int(i) for i in np.argwhere(neg)[0])
        raise JetFileError(
            source, "particle_features", f"expected pT_rel (column 2) >= 0, found {pf[first + (2,)]:.4g} at {first}"
        )
    if pf.shape[0] and np.any(jf[:, 0] <= 0):
        row = int(np.argmax(jf[:, 0] <= 0))
        raise JetFileError(
            source, "jet_features", f"expected jet pT (column 0, GeV) > 0, found {jf[row, 0]:.4g} at row {row}"
        )
    bad_type = (jt < 0) | (jt >= len(JET_TYPES))
    if np.any(bad_type):
        raise JetFileError(
            source,
            "jet_type",
            f"unknown type label {jt[bad_type][0]!r}; expected 0..{len(JET_TYPES) - 1} for {JET_TYPES}",
        )
    return pf, jf, np.asarray(jt, dtype=np.int8)


def _as_arrays(obj: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Arrays and settings of a JetBatch / JetData / mapping with the three JetNet keys."""
    if isinstance(obj, Mapping):
        try:
            arrays = [np.asarray(obj[k]) for k in ("particle_features", "jet_features", "jet_type")]
        except KeyError as err:
            raise JetFileError("<arrays>", str(err.args[0]), "missing key") from None
        return (*arrays, dict(obj.get("settings", {})))  # type: ignore[return-value]
    try:
        pf, jf, jt = obj.particle_features, obj.jet_features, obj.jet_type
    except AttributeError:
        raise TypeError(
            "write_jets expects a JetBatch, JetData or a mapping with particle_features, "
            f"jet_features and jet_type; got {type(obj).__name__}"
        ) from None
    settings = getattr(obj, "settings", None)
    if settings is None:
        settings = dict(getattr(obj, "attrs", {}).get("settings", {}) or {})
    return np.asarray(pf), np.asarray(jf), np.asarray(jt), dict(settings)


def _json(value: Any) -> str:
    """JSON string of ``value`` (numpy scalars/arrays converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"attribute value of type {type(o).__name__} is not JSON-serialisable")

    return json.dumps(value, default=default, sort_keys=True)


def _write_attrs(h5: Any, settings: Mapping[str, Any], attrs: Mapping[str, Any] | None) -> None:
    """Standard and user attributes (user values stored as JSON strings)."""
    from showerforge._version import __version__

    seeds = settings.get("seeds", settings.get("seed"))
    h5.attrs["format"] = _FORMAT
    h5.attrs["showerforge_version"] = __version__
    h5.attrs["jet_types"] = _json(list(JET_TYPES))
    h5.attrs["particle_features_names"] = _json(_PARTICLE_NAMES)
    h5.attrs["jet_features_names"] = _json(_JET_NAMES)
    h5.attrs["settings"] = _json(dict(settings))
    h5.attrs["seeds"] = _json(seeds)
    for key, value in (attrs or {}).items():
        if key in ("format", "showerforge_version", "jet_types"):
            raise UserError(f"attribute {key!r} is reserved by the JetNet writer")
        h5.attrs[key] = _json(value)


def _create(h5: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """Chunked, compressed dataset."""
    chunks = (max(1, min(shape[0], 1024)),) + tuple(max(1, s) for s in shape[1:])
    return h5.create_dataset(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        compression="gzip",
        compression_opts=4,
        shuffle=True,
    )


def write_jets(
    path: str | os.PathLike[str],
    batch_or_arrays: Any,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write jets to a JetNet-format HDF5 file, atomically (temp file + rename).

    Args:
        path: Output file. An existing file is replaced only once the new one is complete.
        batch_or_arrays: A :class:`~showerforge.simulate.jets.JetBatch`, a :class:`JetData` or
            a mapping with ``particle_features`` (N, n, 4), ``jet_features`` (N, 4) and
            ``jet_type`` (N,) (optionally ``settings``).
        attrs: Extra file attributes, each stored as a JSON string.

    Returns:
        The written path.

    Raises:
        JetFileError: If the arrays do not follow the layout (the source is named "<arrays>").
    """
    path = Path(path)
    pf, jf, jt, settings = _as_arrays(batch_or_arrays)
    pf, jf, jt = _check_arrays(pf, jf, jt, f"<arrays for {path}>")
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as h5:
        _create(h5, "particle_features", pf.shape, np.float32)[...] = pf
        _create(h5, "jet_features", jf.shape, np.float32)[...] = jf
        _create(h5, "jet_type", jt.shape, np.int8)[...] = jt
        _write_attrs(h5, settings, attrs)
    return path


def read_jets(spec: str | os.PathLike[str], jet_type: str | None = None) -> JetData:
    """Read and validate a JetNet-format file (ours or the public JetNet release).

    Args:
        spec: ``path`` or ``path:type`` (e.g. ``"jets.h5:t"``) to keep one jet type.
        jet_type: Alternative to the ``:type`` suffix.

    Returns:
        A :class:`JetData` whose ``type_column_found`` says whether a 5-column
        ``jet_features`` (type in column 0) was found; ``attrs["jet_type_source"]`` says where
        the labels came from (``"jet_type"``, ``"jet_features[:, 0]"`` or ``"file name"``).

    Raises:
        FileNotFoundError: If the file does not exist.
        JetFileError: On a missing key, wrong shape/dtype, non-finite values, a mask outside
            {0, 1} or unknown type labels.
    """
    import h5py

    path, spec_type = parse_spec(spec)
    if jet_type is not None and spec_type is not None and jet_type != spec_type:
        raise UserError(f"conflicting jet types: spec {spec!s} and jet_type={jet_type!r}")
    wanted = jet_type or spec_type
    if wanted is not None and wanted.lower() not in JET_TYPES:
        raise UserError(f"unknown jet type {wanted!r}; expected one of {JET_TYPES}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such jet file")
    if path.is_dir():
        raise JetFileError(path, "<file>", "is a folder; expected an HDF5 file")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise JetFileError(path, "<file>", f"expected an HDF5 file ({' '.join(str(err).split())})") from None
    with h5:
        for key in ("particle_features", "jet_features"):
            if key not in h5 or not isinstance(h5[key], h5py.Dataset):
                raise JetFileError(path, key, f"missing key; file has {sorted(h5.keys())}")
        attrs = {k: _decode_attr(v) for k, v in h5.attrs.items()}
        pf = h5["particle_features"][...]
        jf = h5["jet_features"][...]
        jt = h5["jet_type"][...] if "jet_type" in h5 else None
    # labels in a jet_type dataset without a jet_types attribute: their meaning is assumed
    assumed = (
        jt is not None and not (jf.ndim == 2 and jf.shape[1] == 5) and not isinstance(attrs.get("jet_types"), list)
    )
    pf, jf, jt, attrs, found = _resolve_types(path, pf, jf, jt, attrs)
    pf, jf, jt = _check_arrays(pf, jf, jt, str(path))
    if assumed:
        _warn_assumed_order(path)
    if wanted is not None:
        keep = jt == JET_TYPES.index(wanted.lower())
        if not keep.any():
            counts = ", ".join(f"{t}: {int(np.sum(jt == i))}" for i, t in enumerate(JET_TYPES) if np.any(jt == i))
            raise JetFileError(
                f"{path}:{wanted.lower()}",
                "jet_type",
                f"selects no jets: the file holds no jets of type {wanted.lower()!r} "
                f"({'it holds ' + counts if counts else 'it holds no jets at all'})",
            )
        pf, jf, jt = pf[keep], jf[keep], jt[keep]
    return JetData(pf, jf, jt, attrs, found, str(path), wanted.lower() if wanted else None)


def _warn_assumed_order(path: Path) -> None:
    """One warning line: the file does not say what its ``jet_type`` labels mean; showerforge's order is assumed."""
    import warnings

    labels = ", ".join(f"{i}={t}" for i, t in enumerate(JET_TYPES))
    warnings.warn(
        f"{path} [jet_type]: no jet_types attribute says what the labels mean; read in showerforge's order "
        f"{labels} (if the file means another order, set its jet_types attribute, a JSON list of names)",
        UserWarning,
        stacklevel=3,
    )


def _resolve_types(
    path: Path, pf: np.ndarray, jf: np.ndarray, jt: np.ndarray | None, attrs: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any], bool]:
    """Work out the type labels (key, column 0, or file name) and drop the type column."""
    found = jf.ndim == 2 and jf.shape[1] == 5
    file_order = attrs.get("jet_types")
    if found:
        order = tuple(file_order) if isinstance(file_order, list) else JETNET_LOADER_TYPE_ORDER
        col = jf[:, 0]
        if not np.all(np.isfinite(col)) or not np.all(col == np.round(col)):
            raise JetFileError(path, "jet_features", "expected integer type labels in column 0 of 5")
        col = col.astype(np.int64)
        if np.any((col < 0) | (col >= len(order))):
            raise JetFileError(path, "jet_features", f"unknown type label in column 0; order {order}")
        if any(t not in JET_TYPES for t in order):
            raise JetFileError(path, "jet_types", f"unknown type name in attribute {order}")
        remap = np.array([JET_TYPES.index(t) for t in order])
        from_col = remap[col]
        if jt is not None and not np.array_equal(np.asarray(jt, np.int64), from_col):
            raise JetFileError(path, "jet_type", "disagrees with the type column of jet_features")
        jt, jf = from_col, jf[:, 1:]
        attrs["jet_type_source"] = "jet_features[:, 0]"
        attrs["type_column_order"] = list(order)
    elif jt is not None:
        if isinstance(file_order, list) and tuple(file_order) != JET_TYPES:
            if any(t not in JET_TYPES for t in file_order):
                raise JetFileError(path, "jet_types", f"unknown type name in attribute {file_order}")
            jt = np.array([JET_TYPES.index(t) for t in file_order])[np.asarray(jt, np.int64)]
        attrs["jet_type_source"] = "jet_type"
    else:
        name_type = _type_from_name(path)
        if name_type is None:
            raise JetFileError(
                path,
                "jet_type",
                "missing key, no type column in jet_features and no type in the file name "
                "(expected e.g. g.hdf5 or t150.hdf5)",
            )
        jt = np.full(pf.shape[0] if pf.ndim >= 1 else 0, JET_TYPES.index(name_type), np.int8)
        attrs["jet_type_source"] = "file name"
    return pf, jf, np.asarray(jt), attrs, found


def merge_jet_files(
    paths: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Concatenate JetNet-format files into one (atomically), e.g. simulation shards.

    Each input is validated by :func:`read_jets` (``path:type`` specs allowed); memory holds one
    input at a time. The output's ``settings`` attribute lists every input's path and settings;
    ``seeds`` lists their seeds.

    Args:
        paths: Input files, in output order; at least one.
        out: Output file.
        attrs: Extra attributes for the output.

    Returns:
        The written path.

    Raises:
        UserError: If no inputs are given.
        JetFileError: If an input is malformed or the inputs' particle counts n differ.
    """
    specs = [os.fspath(p) for p in paths]
    if not specs:
        raise UserError("merge_jet_files needs at least one input file")
    out = Path(out)
    sizes, sources = [], []
    n_particles = None
    for spec in specs:  # first pass: validate, sizes, provenance
        data = read_jets(spec)
        if n_particles is None:
            n_particles = data.n_particles
        elif data.n_particles != n_particles:
            raise JetFileError(
                spec,
                "particle_features",
                f"expected n = {n_particles} particles per jet, got {data.n_particles}",
            )
        sizes.append(len(data))
        sources.append({"path": spec, "n_jets": len(data), "settings": data.attrs.get("settings")})
    total = int(sum(sizes))
    settings = {"merged_from": sources}
    seeds = [s["settings"].get("seed") if isinstance(s["settings"], dict) else None for s in sources]
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as h5:
        dpf = _create(h5, "particle_features", (total, int(n_particles or 0), 4), np.float32)
        djf = _create(h5, "jet_features", (total, 4), np.float32)
        djt = _create(h5, "jet_type", (total,), np.int8)
        start = 0
        for spec, size in zip(specs, sizes, strict=True):
            data = read_jets(spec)
            dpf[start : start + size] = data.particle_features
            djf[start : start + size] = data.jet_features
            djt[start : start + size] = data.jet_type
            start += size
        _write_attrs(h5, {**settings, "seeds": seeds}, attrs)
    return out
