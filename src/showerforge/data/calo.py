"""CaloChallenge-format shower files: read (streaming), write (atomic), validate.

Layout (CaloChallenge 2022, datasets 1-3, and every file showerforge writes):

* ``incident_energies``: (N, 1) float64 (as the CaloChallenge files; float32 is read too), incident particle energy in **MeV**;
* ``showers``: (N, n_voxels) float32, voxel energies in **MeV**, voxels ordered
  (layer, angle, radius), radius fastest; showerforge divides the visible (sensor) energy by the
  sampling fraction, as the CaloChallenge files do;
* attributes (showerforge files; foreign files may have none): ``geometry`` (JSON, see
  :class:`showerforge.geometry.Geometry`), ``particle``, ``spectrum``, ``seed``,
  ``geant4_version``, ``physics_list``, ``physics_data``, ``showerforge_version``, ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from showerforge.data.io import OutputPathError, atomic_output, check_writable
from showerforge.errors import UserError
from showerforge.geometry import PRESETS, Geometry, GeometryError

__all__ = [
    "CaloFileError",
    "CaloFile",
    "ValidationReport",
    "require_clean",
    "atomic_output",
    "write_showers",
    "write_showers_chunks",
    "open_showers",
    "validate_file",
    "guess_geometry",
    "check_writable",
    "OutputPathError",
]

SHOWERS = "showers"
ENERGIES = "incident_energies"
DEFAULT_CHUNK = 2048


class CaloFileError(UserError):
    """A shower file is unreadable or does not follow the CaloChallenge layout.

    The message names the file and the field and says what was expected.
    """

    def __init__(self, path: str | Path, fld: str | None, message: str) -> None:
        self.path, self.field = str(path), fld
        where = f"{path}" + (f" [{fld}]" if fld else "")
        super().__init__(f"{where}: {message}")


def _attr_value(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "none"
    return value


def write_showers(
    path: str | Path,
    incident_mev: np.ndarray,
    showers_mev: np.ndarray,
    geometry: Geometry,
    attrs: dict[str, Any] | None = None,
    *,
    compression: str | None = "gzip",
) -> Path:
    """Write a CaloChallenge-format file atomically.

    Args:
        path: output file (``.h5``).
        incident_mev: (N,) or (N, 1) incident energies in MeV.
        showers_mev: (N, n_voxels) voxel energies in MeV (already divided by the sampling
            fraction when it applies).
        geometry: the readout; stored as the ``geometry`` attribute (JSON).
        attrs: further attributes; dicts and lists are stored as JSON text.
        compression: HDF5 filter (``gzip`` as in the CaloChallenge files, or ``None``).
    """
    inc = np.asarray(incident_mev, dtype=np.float64).reshape(-1, 1)
    sh = np.asarray(showers_mev, dtype=np.float32)
    if sh.ndim != 2 or sh.shape[0] != inc.shape[0] or sh.shape[1] != geometry.n_voxels:
        raise CaloFileError(path, SHOWERS, f"expected shape ({inc.shape[0]}, {geometry.n_voxels}), got {sh.shape}")
    return write_showers_chunks(path, inc.shape[0], geometry, [(inc, sh)], attrs, compression=compression)


def write_showers_chunks(
    path: str | Path,
    n: int,
    geometry: Geometry,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    attrs: dict[str, Any] | None = None,
    *,
    compression: str | None = "gzip",
) -> Path:
    """Write a CaloChallenge-format file of ``n`` showers from ``(incident_mev, showers_mev)`` pieces, atomically."""
    from showerforge._version import __version__

    n_vox = geometry.n_voxels
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            kw: dict[str, Any] = {"compression": compression} if compression else {}
            if compression and n:
                kw["chunks"] = (min(n, max(1, 2**20 // max(1, n_vox))), n_vox)
            ds_inc = f.create_dataset(
                ENERGIES, shape=(n, 1), dtype=np.float64, **({"compression": compression} if compression else {})
            )
            ds_sh = f.create_dataset(SHOWERS, shape=(n, n_vox), dtype=np.float32, **kw)
            row = 0
            for inc, sh in chunks:
                inc = np.asarray(inc, dtype=np.float64).reshape(-1, 1)
                sh = np.asarray(sh, dtype=np.float32)
                k = inc.shape[0]
                if sh.shape != (k, n_vox) or row + k > n:
                    raise CaloFileError(
                        path, SHOWERS, f"piece of shape {sh.shape} does not fit ({n}, {n_vox}) at row {row}"
                    )
                ds_inc[row : row + k] = inc
                ds_sh[row : row + k] = sh
                row += k
            if row != n:
                raise CaloFileError(path, SHOWERS, f"{row} showers written, {n} expected")
            f.attrs["format"] = "calochallenge"
            f.attrs["geometry"] = geometry.to_json()
            f.attrs["showerforge_version"] = __version__
            for key, value in (attrs or {}).items():
                if key != "geometry":
                    f.attrs[key] = _attr_value(value)
    return Path(path)


# ----------------------------------------------------------------------------- reading
def guess_geometry(n_voxels: int) -> Geometry | None:
    """The preset or CaloChallenge binning whose voxel count is ``n_voxels`` (None if unknown)."""
    for geo in PRESETS.values():
        if geo.n_voxels == n_voxels:
            return geo
    shared = _calochallenge_binning_dirs()
    for d in shared:
        for xml in sorted(d.glob("binning_dataset_*.xml")):
            try:
                geo = Geometry.from_calochallenge_xml(xml)
            except GeometryError:
                continue
            if geo.n_voxels == n_voxels:
                return geo
    return None


def _calochallenge_binning_dirs() -> list[Path]:
    dirs = [Path(__file__).resolve().parent / "binning"]
    env = os.environ.get("SHOWERFORGE_BINNING_DIR")
    if env:
        dirs.insert(0, Path(env))
    return [d for d in dirs if d.is_dir()]


@dataclass
class CaloFile:
    """A CaloChallenge-format file opened for streaming reads.

    Use as a context manager. ``geometry`` comes from the file's attribute, else from the
    ``geometry`` argument, else from the voxel count (presets and CaloChallenge binnings).

    Example:
        >>> with CaloFile("electrons.h5") as f:
        ...     for inc, showers in f.iter_chunks(4096):
        ...         ...
    """

    path: Path
    geometry: Geometry
    attrs: dict[str, Any] = field(default_factory=dict)
    _h5: h5py.File | None = field(default=None, repr=False)
    geometry_source: str = "attribute"
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: str | Path, geometry: Geometry | str | None = None) -> CaloFile:
        """Open and check structure (keys, shapes, dtypes); data values are not read.

        Raises:
            CaloFileError: naming the file and field.
        """
        path = Path(path)
        if not path.exists():
            raise CaloFileError(path, None, "file not found")
        if path.is_dir():
            raise CaloFileError(path, None, "is a folder; expected an HDF5 file")
        try:
            h5 = h5py.File(path, "r")
        except OSError as err:
            why = " ".join(str(err).split())  # HDF5's message spans lines; keep all of it on one
            raise CaloFileError(path, None, f"not a readable HDF5 file (truncated or wrong format: {why})") from None
        try:
            return cls._from_h5(path, h5, geometry)
        except Exception:
            h5.close()
            raise

    @classmethod
    def _from_h5(cls, path: Path, h5: h5py.File, geometry: Geometry | str | None) -> CaloFile:
        for key in (ENERGIES, SHOWERS):
            if key not in h5:
                raise CaloFileError(
                    path, key, f"missing dataset; expected keys {ENERGIES!r} and {SHOWERS!r}, found {sorted(h5.keys())}"
                )
            if not isinstance(h5[key], h5py.Dataset):
                raise CaloFileError(path, key, "is a group, expected a dataset")
        inc, sh = h5[ENERGIES], h5[SHOWERS]
        if inc.ndim not in (1, 2) or (inc.ndim == 2 and inc.shape[1] != 1):
            raise CaloFileError(path, ENERGIES, f"expected shape (N, 1), got {inc.shape}")
        if sh.ndim != 2:
            raise CaloFileError(path, SHOWERS, f"expected shape (N, n_voxels), got {sh.shape}")
        if sh.shape[0] != inc.shape[0]:
            raise CaloFileError(path, SHOWERS, f"has {sh.shape[0]} rows but {ENERGIES} has {inc.shape[0]}")
        for key, ds in ((ENERGIES, inc), (SHOWERS, sh)):
            if ds.dtype.kind != "f":
                raise CaloFileError(path, key, f"expected floating-point values, got dtype {ds.dtype}")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
        source = "attribute"
        file_geo: Geometry | None = None
        notes: list[str] = []
        if "geometry" in attrs:
            text = str(attrs["geometry"])
            try:
                file_geo = Geometry.from_json(text) if text.lstrip().startswith("{") else PRESETS[text]
            except (GeometryError, KeyError):
                # a foreign tool's own geometry note: not ours to parse; fall back to the voxel count
                notes.append(f"geometry attribute {text[:40]!r} is not a showerforge geometry; ignored")
        if geometry is not None:
            from showerforge.geometry import get_geometry

            geo = get_geometry(geometry)
            source = "argument"
            if file_geo is not None and not file_geo.same_readout(geo):
                raise CaloFileError(
                    path,
                    "geometry",
                    f"file describes readout {file_geo.name!r} ({file_geo.n_voxels} voxels) "
                    f"but {geo.name!r} ({geo.n_voxels} voxels) was given",
                )
            if file_geo is not None and file_geo.sampling_fraction is not None:
                from dataclasses import replace

                geo = replace(geo, sampling_fraction=file_geo.sampling_fraction)
        elif file_geo is not None:
            geo = file_geo
        else:
            guessed = guess_geometry(sh.shape[1])
            if guessed is None:
                raise CaloFileError(
                    path,
                    SHOWERS,
                    f"{sh.shape[1]} voxels match no known geometry; pass one with "
                    "--geometry (preset name, JSON file or CaloChallenge binning XML)",
                )
            geo, source = guessed, "voxel count"
        if sh.shape[1] != geo.n_voxels:
            raise CaloFileError(
                path, SHOWERS, f"has {sh.shape[1]} voxels per shower, geometry {geo.name!r} expects {geo.n_voxels}"
            )
        return cls(path=path, geometry=geo, attrs=attrs, _h5=h5, geometry_source=source, notes=notes)

    # context manager
    def __enter__(self) -> CaloFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HDF5 file."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    @property
    def h5(self) -> h5py.File:
        if self._h5 is None:
            raise CaloFileError(self.path, None, "file is closed")
        return self._h5

    def __len__(self) -> int:
        return int(self.h5[SHOWERS].shape[0])

    @property
    def n_voxels(self) -> int:
        return int(self.h5[SHOWERS].shape[1])

    def read(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``start:stop`` as (incident (n,) MeV float32, showers (n, n_voxels) MeV float32)."""
        stop = len(self) if stop is None else min(stop, len(self))
        inc = np.asarray(self.h5[ENERGIES][start:stop], dtype=np.float32).reshape(-1)
        sh = np.asarray(self.h5[SHOWERS][start:stop], dtype=np.float32)
        return inc, sh

    def iter_chunks(
        self, chunk: int = DEFAULT_CHUNK, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream (incident, showers) in chunks of ``chunk`` rows; memory is bounded by the chunk."""
        stop = len(self) if stop is None else min(stop, len(self))
        for lo in range(start, stop, chunk):
            yield self.read(lo, min(lo + chunk, stop))

    def incident_energies(self) -> np.ndarray:
        """All incident energies (N,) in MeV, float64 (small: one number per shower)."""
        return np.asarray(self.h5[ENERGIES][...], dtype=np.float64).reshape(-1)


def open_showers(path: str | Path, geometry: Geometry | str | None = None) -> CaloFile:
    """Open a CaloChallenge-format file (see :class:`CaloFile`)."""
    return CaloFile.open(path, geometry)


# ----------------------------------------------------------------------------- validation
@dataclass
class ValidationReport:
    """Outcome of :func:`validate_file`: statistics, and problems that make a file unusable."""

    path: str
    n_showers: int
    n_voxels: int
    geometry: str
    geometry_source: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_file(
    path: str | Path, geometry: Geometry | str | None = None, chunk: int = DEFAULT_CHUNK, progress: Any = None
) -> ValidationReport:
    """Check a CaloChallenge-style file in streaming chunks.

    Checks keys, shapes and dtypes (on open), then values: NaN/inf, negative energies, incident
    energies in a plausible range (1 MeV - 10 TeV, i.e. MeV units), deposited energy not far above the
    incident energy, geometry match.

    Raises:
        CaloFileError: structural problems (the file cannot be read as showers at all).
    """
    with CaloFile.open(path, geometry) as f:
        rep = ValidationReport(str(path), len(f), f.n_voxels, f.geometry.name, f.geometry_source)
        rep.warnings.extend(f.notes)
        n = len(f)
        e_min, e_max = np.inf, -np.inf
        n_nan_inc = n_neg_inc = n_nan_sh = n_neg_sh = 0
        ratio_sum = ratio_sq = 0.0
        ratio_max = 0.0
        nonzero = 0
        first_bad: dict[str, int] = {}
        for lo, (inc, sh) in zip(range(0, n, chunk), f.iter_chunks(chunk)):
            bad_inc = ~np.isfinite(inc)
            if bad_inc.any():
                n_nan_inc += int(bad_inc.sum())
                first_bad.setdefault(ENERGIES, lo + int(np.argmax(bad_inc)))
            neg_inc = inc <= 0
            n_neg_inc += int(neg_inc.sum())
            if neg_inc.any():
                first_bad.setdefault(ENERGIES + "<=0", lo + int(np.argmax(neg_inc)))
            bad_rows = ~np.isfinite(sh).all(axis=1)
            if bad_rows.any():
                n_nan_sh += int(bad_rows.sum())
                first_bad.setdefault(SHOWERS, lo + int(np.argmax(bad_rows)))
            neg_rows = (sh < 0).any(axis=1)
            if neg_rows.any():
                n_neg_sh += int(neg_rows.sum())
                first_bad.setdefault(SHOWERS + "<0", lo + int(np.argmax(neg_rows)))
            good = np.isfinite(inc) & (inc > 0)
            if good.any():
                e_min, e_max = min(e_min, float(inc[good].min())), max(e_max, float(inc[good].max()))
                tot = np.nan_to_num(sh[good]).sum(axis=1, dtype=np.float64)
                r = tot / inc[good]
                ratio_sum += float(r.sum())
                ratio_sq += float((r * r).sum())
                ratio_max = max(ratio_max, float(r.max()))
            nonzero += int(np.count_nonzero(sh > 0))
            if progress is not None:
                progress(len(inc))
        if n_nan_inc:
            rep.errors.append(f"{ENERGIES}: {n_nan_inc} NaN/inf values (first at row {first_bad[ENERGIES]})")
        if n_neg_inc:
            rep.errors.append(
                f"{ENERGIES}: {n_neg_inc} values <= 0 MeV (first at row {first_bad[ENERGIES + '<=0']}); expected positive energies in MeV"
            )
        if n_nan_sh:
            rep.errors.append(f"{SHOWERS}: {n_nan_sh} showers with NaN/inf voxels (first at row {first_bad[SHOWERS]})")
        if n_neg_sh:
            rep.errors.append(
                f"{SHOWERS}: {n_neg_sh} showers with negative voxel energies (first at row {first_bad[SHOWERS + '<0']}); expected energies >= 0 MeV"
            )
        n_good = max(1, n - n_nan_inc - n_neg_inc)
        mean_ratio = ratio_sum / n_good
        if n and np.isfinite(e_min):
            if e_max < 1.0 or e_min > 1e7:
                rep.warnings.append(
                    f"{ENERGIES}: range {e_min:.3g}-{e_max:.3g} is implausible for MeV (GeV or keV units?)"
                )
            if mean_ratio > 2.0:
                rep.warnings.append(
                    f"{SHOWERS}: mean deposited/incident = {mean_ratio:.3g} > 2; are showers and energies in the same unit (MeV)?"
                )
            elif mean_ratio < 1e-3 and mean_ratio >= 0:
                rep.warnings.append(
                    f"{SHOWERS}: mean deposited/incident = {mean_ratio:.3g}; not divided by the sampling fraction, or wrong units?"
                )
        rep.stats = {
            "incident_energy_mev": [
                None if not np.isfinite(e_min) else e_min,
                None if not np.isfinite(e_max) else e_max,
            ],
            "mean_etot_over_einc": mean_ratio,
            "std_etot_over_einc": float(np.sqrt(max(0.0, ratio_sq / n_good - mean_ratio**2))),
            "max_etot_over_einc": ratio_max,
            "mean_nonzero_voxel_fraction": nonzero / max(1, n * f.n_voxels),
        }
        if n == 0:
            rep.errors.append(f"{SHOWERS}: the file holds 0 showers")
    return rep


def require_clean(path: str | Path, geometry: Geometry | str | None = None, *, role: str = "input") -> ValidationReport:
    """:func:`validate_file`, raising on the first problem (NaN/inf, negative energies, 0 showers).

    Used before training and evaluation start, so that bad data fails at once and names the first
    bad row instead of producing NaN losses or a misleading metric.

    Raises:
        CaloFileError: naming the file, the field and the first bad row.
    """
    rep = validate_file(path, geometry)
    if rep.errors:
        fld, _, msg = rep.errors[0].partition(": ")
        raise CaloFileError(
            path,
            fld,
            f"{msg}; {role} must hold finite, non-negative energies in MeV (`showerforge inspect` lists every problem)",
        )
    return rep
