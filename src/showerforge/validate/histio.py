"""Histogram files the HEP ecosystem opens: ROOT (``.root``) and YODA (``.yoda``), written and read back.

:func:`write_histograms` picks the format from the suffix and writes atomically (a temporary file
beside the target, renamed on success); :func:`read_histograms` returns equal :class:`Hist1D`
objects (edges, values and errors to float precision; name, analysis, title, x label, kind,
entries and log-x flag). Bad input raises :class:`~showerforge.errors.UserError` with one line that
names the file and says what was expected.

ROOT (written with ``uproot``, installed by ``showerforge[validate]``):

* a histogram is a ``TH1D``: bin contents = sum of weights, ``fSumw2`` = errors^2 (so ROOT shows
  the stored errors), variable bin edges in ``fXaxis.fXbins``, ``fEntries`` = entries;
* a profile is a ``TProfile`` whose default error option (error on the mean) gives back the stored
  means and standard errors: ``n = max(entries, 1)`` unit-weight fills per bin,
  ``fBinEntries = n``, bin content ``n * mean``, ``fSumw2 = n * (mean^2 + n * error^2)``
  (ROOT's spread divides by ``n``, so this is what makes ROOT show ``error``), ``fEntries`` =
  entries;
* the histogram title is ``fTitle``, the x label is the x axis title; a histogram of an analysis
  lives in the directory named after it (``calo_basic/etot``). Keys keep only ``A-Z a-z 0-9 _ . + -``
  (others become ``_``; a clash gets ``_2``, ``_3``...). The TObjString ``showerforge_histograms``
  holds a JSON index (key, original name, analysis, log-x, kind) so the original names come back.
  Files without the index (written by ROOT itself) are read too: name = key, analysis = directory.

YODA (text format version 2, as written by YODA 1.9 and read by YODA 1.x/2.x and Rivet):

* ``BEGIN YODA_HISTO1D_V2 /ANALYSIS/NAME`` (``/NAME`` without analysis) ... ``END YODA_HISTO1D_V2``;
  annotation lines (``Entries``, ``LogX``, ``Path``, ``Title``, ``Type``, ``XLabel``, and
  ``Name`` / ``Analysis`` when the path had to be sanitised) in alphabetical order as YODA writes
  them, values quoted as YAML double-quoted strings when not plain-safe; ``---``; ``# Mean``,
  ``# Area`` comments; Total / Underflow / Overflow rows; one row per bin
  ``xlow xhigh sumw sumw2 sumwx sumwx2 numEntries``; numbers with 17 significant digits.
* A :class:`Hist1D` keeps neither the x moments nor per-bin fill counts, so the writer uses the bin
  centre ``c``: ``sumwx = c * sumw``, ``sumwx2 = c^2 * sumw``; a bin's ``numEntries`` is its
  effective count ``sumw^2 / sumw2`` (the count for unit weights); the Total row's numEntries is
  ``entries``. Under/overflow rows are zero: a Hist1D counts outliers in its first / last bin.
* A profile is ``YODA_PROFILE1D_V2`` with rows ``xlow xhigh sumw sumw2 sumwx sumwx2 sumwy sumwy2
  numEntries``: ``n = max(entries, 2)`` unit-weight fills per bin, ``sumwy = n * mean``,
  ``sumwy2 = n * (n - 1) * error^2 + n * mean^2``, so YODA's ``mean()`` and ``stdErr()`` (unbiased
  variance) give back the stored values; for :func:`~showerforge.validate.histograms.profile`
  output this is exactly ``sum(y)`` and ``sum(y^2)``.

Reading ignores under/overflow (ROOT flow bins, YODA Underflow/Overflow rows) and YODA blocks of
other types (Scatter2D, Counter...). The ``meta`` dictionary of a Hist1D is not stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.validate.histograms import Hist1D

__all__ = ["INDEX_KEY", "read_histograms", "write_histograms"]

#: key of the TObjString holding the JSON index of a ROOT file written here
INDEX_KEY = "showerforge_histograms"
_INDEX_FORMAT = "showerforge.histograms/1"
_FORMATS = {".root": "root", ".yoda": "yoda"}
_ROOT_1D = frozenset({"TH1D", "TH1F", "TH1I", "TH1S", "TH1C", "TH1L", "TProfile"})
_YODA_KINDS = {"YODA_HISTO1D_V2": "histogram", "YODA_PROFILE1D_V2": "profile"}
_YODA_COLUMNS = {
    "histogram": ("sumw", "sumw2", "sumwx", "sumwx2", "numEntries"),
    "profile": ("sumw", "sumw2", "sumwx", "sumwx2", "sumwy", "sumwy2", "numEntries"),
}
_FLOW_LABELS = ("Total", "Underflow", "Overflow")
_PLAIN = re.compile(r"[A-Za-z_/(][A-Za-z0-9_ ./()+=<>^$\\,*-]*")
_YAML_WORDS = frozenset({"null", "true", "false", "yes", "no", "on", "off", "y", "n"})
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")


# ----------------------------------------------------------------------------- public API


def write_histograms(path: str | Path, hists: Sequence[Hist1D]) -> Path:
    """Write histograms and profiles to a ROOT (``.root``) or YODA (``.yoda``) file.

    The file is written to a temporary file beside ``path`` and renamed only on success: an
    interrupted write leaves no file under ``path`` and an existing one untouched.

    Args:
        path: output file; its suffix chooses the format.
        hists: the histograms, at least one; ``(analysis, name)`` pairs must be unique.

    Returns:
        The path written.

    Raises:
        UserError: unknown suffix, no histograms, an invalid or duplicate histogram, or (ROOT)
            uproot is not installed.
    """
    path = Path(path)
    fmt = _format(path)
    checked = _checked(path, hists)
    if fmt == "root":
        uproot = _uproot(path)
        with atomic_output(path) as tmp:
            _write_root(uproot, tmp, checked)
    else:
        with atomic_output(path) as tmp:
            _write_yoda(tmp, checked)
    return path


def read_histograms(path: str | Path) -> list[Hist1D]:
    """Read the 1D histograms and profiles of a ROOT (``.root``) or YODA (``.yoda``) file.

    Args:
        path: a file written by :func:`write_histograms`, by ROOT (TH1D/F/I/S/C, TProfile) or by
            YODA / Rivet (``YODA_HISTO1D_V2``, ``YODA_PROFILE1D_V2`` blocks).

    Returns:
        The histograms in file order.

    Raises:
        UserError: unknown suffix, missing, unreadable or corrupt file, no 1D histogram in it, or
            (YODA) a malformed block, naming the line.
    """
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; expected a {path.suffix} histogram file")
    return _read_root(path) if fmt == "root" else _read_yoda(path)


# ----------------------------------------------------------------------------- shared helpers


def _format(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{path}: unknown histogram file type {path.suffix or '(no suffix)'!r}; "
            "expected a name ending in .root or .yoda"
        )
    return fmt


def _uproot(path: Path) -> Any:
    """The uproot module, or a UserError saying how to install it."""
    try:
        import uproot
    except ImportError:
        raise UserError(
            f"{path}: ROOT files need the uproot package; install it with pip install 'showerforge[validate]'"
        ) from None
    return uproot


def _checked(path: Path, hists: Sequence[Hist1D]) -> list[Hist1D]:
    """Validated copies of ``hists`` (the caller's objects are not modified)."""
    if isinstance(hists, Hist1D) or not isinstance(hists, Sequence):
        raise UserError(f"{path}: expected a list of Hist1D, got {type(hists).__name__}")
    if not hists:
        raise UserError(f"{path}: no histograms to write; expected at least one Hist1D")
    out = [_checked_one(path, i, h) for i, h in enumerate(hists)]
    seen: set[tuple[str, str]] = set()
    for h in out:
        if (h.analysis, h.name) in seen:
            raise UserError(f"{path}: histogram {h.name!r} of analysis {h.analysis!r} is given twice")
        seen.add((h.analysis, h.name))
    return out


def _checked_one(path: Path, i: int, h: Hist1D) -> Hist1D:
    if not isinstance(h, Hist1D):
        raise UserError(f"{path}: item {i} is a {type(h).__name__}; expected a Hist1D")
    try:
        copy = replace(h)  # runs Hist1D's own checks (shapes, edges, errors)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    if not (np.all(np.isfinite(copy.values)) and np.all(np.isfinite(copy.edges))):
        raise UserError(f"{path}: histogram {h.name!r}: values and edges must be finite")
    if int(copy.entries) < 0:
        raise UserError(f"{path}: histogram {h.name!r}: entries must be >= 0, got {copy.entries}")
    copy.entries = int(copy.entries)
    return copy


def _safe(text: str) -> str:
    """``text`` with characters that ROOT keys and YODA paths dislike replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.+-]|^\.", "_", text) or "_"


def _storage_names(hists: Sequence[Hist1D]) -> list[tuple[str, str]]:
    """(directory, key) per histogram: sanitised analysis and name, unique within a directory."""
    dirs = {_safe(h.analysis) for h in hists if h.analysis}
    taken: dict[str, set[str]] = {"": {INDEX_KEY, *dirs}}
    out = []
    for h in hists:
        folder = _safe(h.analysis) if h.analysis else ""
        used = taken.setdefault(folder, set())
        key = base = _safe(h.name)
        k = 2
        while key in used:
            key, k = f"{base}_{k}", k + 1
        used.add(key)
        out.append((folder, key))
    return out


def _centres(h: Hist1D) -> np.ndarray:
    return 0.5 * (h.edges[:-1] + h.edges[1:])


def _make(source: str, **fields: Any) -> Hist1D:
    """A Hist1D, or a UserError naming ``source`` (file and place) if the data do not make one."""
    try:
        return Hist1D(**fields)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None


# ----------------------------------------------------------------------------- ROOT


def _write_root(uproot: Any, tmp: Path, hists: Sequence[Hist1D]) -> None:
    names = _storage_names(hists)
    index = []
    with uproot.recreate(tmp) as f:
        for h, (folder, key) in zip(hists, names):
            full = f"{folder}/{key}" if folder else key
            f[full] = _to_root(uproot, h)
            index.append({"key": full, "name": h.name, "analysis": h.analysis, "logx": h.logx, "kind": h.kind})
        f[INDEX_KEY] = json.dumps({"format": _INDEX_FORMAT, "histograms": index})


def _with_flow(a: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], a, [0.0]]).astype(np.float64)


def _to_root(uproot: Any, h: Hist1D) -> Any:
    """A TH1D (histogram) or TProfile (profile) of ``h``, ready for ``file[key] = ...``."""
    from uproot.writing.identify import to_TAxis

    axis = to_TAxis("xaxis", h.xlabel, h.n_bins, float(h.edges[0]), float(h.edges[-1]), fXbins=h.edges)
    if h.kind == "histogram":
        sumw2 = h.errors**2
        stats = _root_stats(h, h.values, sumw2)
        return uproot.writing.to_TH1x(data=_with_flow(h.values), fSumw2=_with_flow(sumw2), fXaxis=axis, **stats)
    n = float(max(h.entries, 1))  # unit-weight fills per bin
    sumw = np.full(h.n_bins, n)
    sumwy = n * h.values
    sumwy2 = n * (h.values**2 + n * h.errors**2)  # ROOT: error^2 = (sumwy2 / n - mean^2) / n
    return uproot.writing.to_TProfile(
        data=_with_flow(sumwy),
        fSumw2=_with_flow(sumwy2),
        fBinEntries=_with_flow(sumw),
        fBinSumw2=np.zeros(0),  # empty: unit weights, ROOT takes the effective count = fBinEntries
        fTsumwy=float(sumwy.sum()),
        fTsumwy2=float(sumwy2.sum()),
        fXaxis=axis,
        **_root_stats(h, sumw, sumw),
    )


def _root_stats(h: Hist1D, sumw: np.ndarray, sumw2: np.ndarray) -> dict[str, Any]:
    """Name, title, entries and the TH1 sums (x moments from the bin centres)."""
    c = _centres(h)
    return {
        "fName": None,  # set by uproot from the key
        "fTitle": h.title,
        "fEntries": float(h.entries),
        "fTsumw": float(sumw.sum()),
        "fTsumw2": float(sumw2.sum()),
        "fTsumwx": float((c * sumw).sum()),
        "fTsumwx2": float((c * c * sumw).sum()),
    }


def _read_root(path: Path) -> list[Hist1D]:
    uproot = _uproot(path)
    try:
        with uproot.open(path) as f:
            classes = f.classnames(cycle=False)
            index = _root_index(path, f, classes)
            keys = _root_keys(path, classes, index)
            return [_from_root(path, key, f[key], index.get(key, {})) for key in keys]
    except UserError:
        raise
    except Exception as exc:  # uproot raises many kinds of errors for a damaged file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path}: not a readable ROOT file ({reason}); expected a ROOT file of histograms") from None


def _root_index(path: Path, f: Any, classes: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The JSON index written by :func:`write_histograms`, by key ({} for other ROOT files)."""
    if classes.get(INDEX_KEY) != "TObjString":
        return {}
    try:
        data = json.loads(str(f[INDEX_KEY]))
        return {str(e["key"]): dict(e) for e in data["histograms"]}
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: {INDEX_KEY}: malformed index; expected the JSON written by showerforge") from None


def _root_keys(path: Path, classes: dict[str, str], index: dict[str, dict[str, Any]]) -> list[str]:
    """Keys of the 1D histograms: those of the index first (in its order), then the others."""
    for key in index:
        if classes.get(key) not in _ROOT_1D:
            raise UserError(f"{path}: the index names {key!r} but the file holds no 1D histogram under that key")
    keys = list(index) + [k for k, cls in classes.items() if cls in _ROOT_1D and k not in index]
    if not keys:
        raise UserError(f"{path}: no 1D histogram (TH1D, TH1F, ..., TProfile) in this ROOT file")
    return keys


def _from_root(path: Path, key: str, obj: Any, meta: dict[str, Any]) -> Hist1D:
    profile = obj.classname == "TProfile"
    folder, _, base = key.rpartition("/")
    return _make(
        f"{path}: {key}",
        name=str(meta.get("name", base)),
        edges=obj.axis().edges(),
        values=obj.values(),
        errors=obj.errors() if profile else np.sqrt(np.abs(obj.variances())),
        kind="profile" if profile else "histogram",
        entries=int(round(float(obj.member("fEntries")))),
        title=str(obj.member("fTitle")),
        xlabel=str(obj.axis().member("fTitle")),
        analysis=str(meta.get("analysis", folder)),
        logx=bool(meta.get("logx", False)),
    )


# ----------------------------------------------------------------------------- YODA: writing


def _write_yoda(tmp: Path, hists: Sequence[Hist1D]) -> None:
    names = _storage_names(hists)
    with open(tmp, "w", encoding="utf-8", newline="\n") as out:
        for h, (folder, key) in zip(hists, names):
            out.write(_yoda_block(h, folder, key))


def _yoda_block(h: Hist1D, folder: str, key: str) -> str:
    """One ``BEGIN ... END`` block of ``h`` stored under ``/folder/key``."""
    block = "YODA_PROFILE1D_V2" if h.kind == "profile" else "YODA_HISTO1D_V2"
    path = f"/{folder}/{key}" if folder else f"/{key}"
    lines = [f"BEGIN {block} {path}"]
    lines += [f"{k}: {_yaml_scalar(v)}" for k, v in sorted(_annotations(h, path, folder, key).items())]
    lines.append("---")
    lines += _profile_rows(h) if h.kind == "profile" else _histo_rows(h)
    lines.append(f"END {block}")
    return "\n".join(lines) + "\n\n"


def _annotations(h: Hist1D, path: str, folder: str, key: str) -> dict[str, str | int]:
    ann: dict[str, str | int] = {
        "Entries": h.entries,
        "LogX": int(h.logx),
        "Path": path,
        "Title": h.title,
        "Type": "Profile1D" if h.kind == "profile" else "Histo1D",
    }
    if h.xlabel:
        ann["XLabel"] = h.xlabel
    if key != h.name:
        ann["Name"] = h.name
    if folder != h.analysis:
        ann["Analysis"] = h.analysis
    return ann


def _yaml_scalar(text: str | int) -> str:
    """``text`` as a YAML scalar: plain when safe (or a number), else double-quoted (JSON escapes, valid YAML)."""
    if isinstance(text, int):
        return str(text)
    if _PLAIN.fullmatch(text) and not text.endswith(" ") and text.lower() not in _YAML_WORDS:
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _num(x: float) -> str:
    return f"{x:.16e}"


def _row(head: str, numbers: np.ndarray) -> str:
    return "\t".join([head, *(_num(float(x)) for x in numbers)])


def _table(h: Hist1D, cols: np.ndarray, total: np.ndarray) -> list[str]:
    """Total / Underflow / Overflow rows and one row per bin, with YODA's column comments."""
    names = "\t ".join(_YODA_COLUMNS[h.kind])
    zero = np.zeros(cols.shape[1])
    lines = [f"# ID\t ID\t {names}"]
    lines += [_row(f"{label:<8}\t{label:<8}", row) for label, row in zip(_FLOW_LABELS, (total, zero, zero))]
    lines.append(f"# xlow\t xhigh\t {names}")
    e = h.edges
    lines += [_row(f"{_num(e[i])}\t{_num(e[i + 1])}", cols[i]) for i in range(h.n_bins)]
    return lines


def _histo_rows(h: Hist1D) -> list[str]:
    c = _centres(h)
    sumw, sumw2 = h.values, h.errors**2
    neff = np.divide(sumw**2, sumw2, out=np.zeros_like(sumw), where=sumw2 > 0)
    cols = np.column_stack([sumw, sumw2, c * sumw, c * c * sumw, neff])
    total = cols.sum(axis=0)
    total[-1] = h.entries
    area = float(sumw.sum())
    mean = _num(float(total[2]) / area) if area != 0 else "nan"
    return [f"# Mean: {mean}", f"# Area: {_num(area)}", *_table(h, cols, total)]


def _profile_rows(h: Hist1D) -> list[str]:
    c = _centres(h)
    n = float(max(h.entries, 2))
    sumw = np.full(h.n_bins, n)
    sumwy2 = n * (n - 1.0) * h.errors**2 + n * h.values**2
    cols = np.column_stack([sumw, sumw, c * sumw, c * c * sumw, n * h.values, sumwy2, sumw])
    return _table(h, cols, cols.sum(axis=0))


# ----------------------------------------------------------------------------- YODA: reading


@dataclass
class _Block:
    """The lines of one ``BEGIN ... END`` block (numbers are 1-based line numbers)."""

    line: int
    type: str
    path: str
    body: list[tuple[int, str]]
    end: int  #: 0-based index of the END line


def _read_yoda(path: Path) -> list[Hist1D]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (not UTF-8); expected a YODA text file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror})") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    hists = [h for b in _yoda_blocks(path, lines) if (h := _yoda_hist(path, b)) is not None]
    if not hists:
        raise UserError(f"{path}: no YODA_HISTO1D_V2 or YODA_PROFILE1D_V2 block; expected a YODA file of histograms")
    return hists


def _yoda_blocks(path: Path, lines: list[str]) -> list[_Block]:
    """Split the file into blocks; text outside blocks may only be blank or a comment."""
    blocks = []
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        if text and not text.startswith("#"):
            blocks.append(_yoda_block_at(path, lines, i))
            i = blocks[-1].end
        i += 1
    return blocks


def _yoda_block_at(path: Path, lines: list[str], i: int) -> _Block:
    parts = lines[i].split(maxsplit=2)
    if len(parts) < 3 or parts[0] != "BEGIN":
        raise UserError(f"{path}: line {i + 1}: expected 'BEGIN <TYPE> <PATH>', got {lines[i].strip()[:60]!r}")
    end = f"END {parts[1]}"
    for j in range(i + 1, len(lines)):
        text = lines[j].strip()
        if text == end:
            body = [(k + 1, lines[k]) for k in range(i + 1, j)]
            return _Block(i + 1, parts[1], parts[2].strip(), body, j)
        if text.startswith("BEGIN "):
            break
    raise UserError(f"{path}: line {i + 1}: block {parts[2].strip()} has no '{end}' line (truncated file?)")


def _yoda_hist(path: Path, block: _Block) -> Hist1D | None:
    """The Hist1D of a histogram or profile block; None for blocks of other types."""
    kind = _YODA_KINDS.get(block.type)
    if kind is None:
        return None
    ann, rows_at = _yoda_annotations(path, block)
    rows, total = _yoda_rows(path, block, rows_at, len(_YODA_COLUMNS[kind]))
    edges = _yoda_edges(path, rows)
    numbers = np.array([r[2:] for _, r in rows])
    values, errors = _profile_stats(numbers) if kind == "profile" else (numbers[:, 0], np.sqrt(np.abs(numbers[:, 1])))
    entries = _yoda_entries(path, ann, total, numbers)
    folder, name = _split_yoda_path(block.path)
    return _make(
        f"{path}: line {block.line}",
        name=ann.get("Name", (0, name))[1],
        edges=edges,
        values=values,
        errors=errors,
        kind=kind,
        entries=entries,
        title=ann.get("Title", (0, ""))[1],
        xlabel=ann.get("XLabel", (0, ""))[1],
        analysis=ann.get("Analysis", (0, folder))[1],
        logx=ann.get("LogX", (0, "0"))[1].strip().lower() in ("1", "true", "yes"),
    )


def _yoda_annotations(path: Path, block: _Block) -> tuple[dict[str, tuple[int, str]], int]:
    """``{key: (line, value)}`` of the lines before ``---``, and the index in the body after it."""
    ann: dict[str, tuple[int, str]] = {}
    for pos, (num, line) in enumerate(block.body):
        if line.strip() == "---":
            return ann, pos + 1
        if not line.strip() or line.lstrip().startswith("#") or line[:1].isspace():
            continue  # blank, comment, or continuation of a multi-line YAML value
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            raise UserError(f"{path}: line {num}: expected an annotation 'Key: value' or '---', got {line[:60]!r}")
        ann[key.strip()] = (num, _yaml_value(value))
    raise UserError(f"{path}: line {block.line}: block {block.path} has no '---' line after its annotations")


def _yaml_value(raw: str) -> str:
    """A YAML scalar as written by YODA or :func:`_yaml_scalar`, as a string."""
    v = raw.strip()
    if v in ("", "~", "null", "Null", "NULL"):
        return ""
    if len(v) >= 2 and v[0] == v[-1] == '"':
        try:
            return str(json.loads(v))
        except ValueError:
            return v[1:-1]
    if len(v) >= 2 and v[0] == v[-1] == "'":
        return v[1:-1].replace("''", "'")
    return v


def _yoda_rows(
    path: Path, block: _Block, start: int, ncols: int
) -> tuple[list[tuple[int, list[float]]], list[float] | None]:
    """Bin rows ``(line, [xlow, xhigh, *columns])`` and the Total row's columns (None if absent)."""
    rows: list[tuple[int, list[float]]] = []
    total = None
    for num, line in block.body[start:]:
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        label = tokens[0] if tokens[0] in _FLOW_LABELS else None
        values = _floats(path, num, tokens[2:] if label else tokens, ncols + (0 if label else 2), block)
        if label == "Total":
            total = values
        elif label is None:
            rows.append((num, values))
    if not rows:
        raise UserError(f"{path}: line {block.line}: block {block.path} has no bin rows")
    return rows, total


def _floats(path: Path, num: int, tokens: list[str], expected: int, block: _Block) -> list[float]:
    cols = ("xlow", "xhigh", *_YODA_COLUMNS[_YODA_KINDS[block.type]])[-expected:]
    try:
        if len(tokens) != expected:
            raise ValueError
        return [float(t) for t in tokens]
    except ValueError:
        raise UserError(
            f"{path}: line {num}: expected {expected} numbers ({' '.join(cols)}), got {' '.join(tokens)[:60]!r}"
        ) from None


def _yoda_edges(path: Path, rows: list[tuple[int, list[float]]]) -> np.ndarray:
    """Edges from the bins' (xlow, xhigh); the bins must be adjacent."""
    for (num, row), (_, following) in zip(rows[:-1], rows[1:]):
        if not math.isclose(row[1], following[0], rel_tol=1e-9, abs_tol=1e-300):
            raise UserError(
                f"{path}: line {num}: bin ends at {row[1]:g} but the next starts at {following[0]:g}; "
                "expected adjacent bins"
            )
    return np.array([row[0] for _, row in rows] + [rows[-1][1][1]])


def _profile_stats(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and standard error of the mean as YODA computes them (unbiased variance)."""
    sumw, sumw2, sumwy, sumwy2 = numbers[:, 0], numbers[:, 1], numbers[:, 4], numbers[:, 5]
    mean = np.divide(sumwy, sumw, out=np.zeros_like(sumw), where=sumw != 0)
    den = sumw**2 - sumw2
    ok = (sumw != 0) & (den > 0)
    var = np.divide(sumwy2 * sumw - sumwy**2, den, out=np.zeros_like(sumw), where=ok)
    err2 = np.divide(np.clip(var, 0.0, None) * sumw2, sumw**2, out=np.zeros_like(sumw), where=ok)
    return mean, np.sqrt(err2)


def _yoda_entries(path: Path, ann: dict[str, tuple[int, str]], total: list[float] | None, numbers: np.ndarray) -> int:
    """``Entries`` annotation, else the Total row's numEntries, else the sum over the bins."""
    if "Entries" in ann:
        num, value = ann["Entries"]
        try:
            return int(float(value))
        except ValueError:
            raise UserError(f"{path}: line {num}: Entries must be a number, got {value[:40]!r}") from None
    count = total[-1] if total is not None else float(numbers[:, -1].sum())
    return int(round(count)) if math.isfinite(count) else 0


def _split_yoda_path(path: str) -> tuple[str, str]:
    """(analysis, name) of ``/ANALYSIS/NAME``; Rivet's ``/RAW/`` and ``/REF/`` prefixes are skipped."""
    parts = [p for p in path.split("/") if p]
    if len(parts) > 2 and parts[0] in ("RAW", "REF", "TMP"):
        parts = parts[1:]
    if len(parts) < 2:
        return "", parts[0] if parts else ""
    return parts[0], "/".join(parts[1:])
