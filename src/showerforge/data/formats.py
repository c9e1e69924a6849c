"""Which kind of file is this: calorimeter showers (CaloChallenge) or jets (JetNet)?"""

from __future__ import annotations

import os

from showerforge.data.jetnet import parse_spec
from showerforge.errors import UserError

__all__ = ["detect_format"]

_CALO_KEYS = ("showers", "incident_energies")
_JET_KEY = "particle_features"


def detect_format(path: str | os.PathLike[str]) -> str:
    """Whether a file holds calorimeter showers or jets, from its HDF5 keys.

    Args:
        path: File path; a ``:type`` jet-type suffix (``jets.h5:t``) is stripped.

    Returns:
        ``"calo"`` (keys ``showers`` and ``incident_energies``) or ``"jets"``
        (key ``particle_features``).

    Raises:
        FileNotFoundError: The file does not exist.
        UserError: Not an HDF5 file, neither layout (or both), or a jet-type suffix on a
            shower file.
    """
    import h5py

    file, jet_type = parse_spec(path)
    if not file.exists():
        raise FileNotFoundError(f"{file}: file not found")
    if file.is_dir():
        raise UserError(f"{file}: is a folder; expected an HDF5 file (a shower or jet file)")
    try:
        with h5py.File(file, "r") as h5:
            keys = set(h5.keys())
    except OSError as err:
        why = " ".join(str(err).split())  # HDF5's message spans lines; keep all of it on one
        raise UserError(f"{file}: not an HDF5 file ({why}); expected a shower or jet file") from None
    is_calo = all(k in keys for k in _CALO_KEYS)
    is_jets = _JET_KEY in keys
    if is_calo and is_jets:
        raise UserError(f"{file}: holds both shower and jet keys ({sorted(keys)}); cannot tell which to evaluate")
    if is_calo:
        if jet_type is not None:
            raise UserError(f"{path}: ':{jet_type}' selects a jet type, but {file} is a shower file")
        return "calo"
    if is_jets:
        return "jets"
    raise UserError(
        f"{file}: neither a shower file (keys 'showers', 'incident_energies') nor a jet file "
        f"(key 'particle_features'); found keys {sorted(keys)}"
    )
