"""The kinds registry: one name per kind, earlier names read as aliases, clear errors."""

from __future__ import annotations

import pytest

from showerforge.errors import UserError
from showerforge.kinds import DataKind, GenerationRequest, get_kind, kind_of_checkpoint, kinds, register_kind


def test_names_and_aliases() -> None:
    assert [k.name for k in kinds()][:2] == ["calo-voxels", "jet-set"]
    for alias in ("calo-voxels", "calo-voxel", "calo", "showers"):
        assert get_kind(alias).name == "calo-voxels"
    assert get_kind("jets") is get_kind("jet-set")
    with pytest.raises(UserError, match="unknown kind of data 'pions'; known: calo-voxels, jet-set"):
        get_kind("pions")


def test_a_name_or_alias_is_registered_once() -> None:
    class Again(DataKind):
        name = "again"
        aliases = ("showers",)

    with pytest.raises(ValueError, match="already registered: showers"):
        register_kind(Again())
    assert "again" not in [k.name for k in kinds()]


def test_checkpoints_written_before_kinds_had_names_load() -> None:
    """The shipped ds2-electron checkpoint says data_kind = "calo-voxel" (the earlier name)."""
    assert kind_of_checkpoint("ds2-electron").name == "calo-voxels"
    assert kind_of_checkpoint({"data_kind": "jet-set"}).name == "jet-set"
    assert kind_of_checkpoint({}).name == "calo-voxels"  # before checkpoints named a kind


def test_what_a_kind_draws_and_refuses() -> None:
    showers, jets = get_kind("calo-voxels"), get_kind("jet-set")
    drawn = showers.draws(GenerationRequest(energy="10GeV", n=4), model="m")
    assert drawn.tolist() == [1e4] * 4
    assert jets.draws(GenerationRequest(types="t,w", n=3), model="j") == (["t", "w"], 3)
    assert jets.n_events(jets.draws(GenerationRequest(types="t,w", n=3), model="j")) == 6
    with pytest.raises(UserError, match="m is a shower model.*--energy with --n or --energies-from instead of --type"):
        showers.draws(GenerationRequest(types="t", n=3), model="m")
    with pytest.raises(UserError, match="j is a jet model.*use --type and --n instead of --energy"):
        jets.draws(GenerationRequest(energy="10GeV", n=3), model="j")
    with pytest.raises(UserError, match="--efp-normed: not for showers"):
        showers.refuse_options({"efp_normed": True, "seed": 1}, ("efp_normed",))
    with pytest.raises(UserError, match="evaluate is not available for base data"):
        type("Base", (DataKind,), {"name": "base"})().evaluate("a", "b", None)  # type: ignore[arg-type]
