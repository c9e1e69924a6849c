"""Sampler settings are data of the model's family; the noise map is a capability that is checked."""

from __future__ import annotations

import json

import pytest

from showerforge.errors import UserError
from showerforge.models import GenerativeModel, get_spec, require_noise_map


class _NoNoiseMap(GenerativeModel):
    """A model that samples but cannot map given noise (as an autoregressive model)."""

    sampler_family = "autoregressive"

    def __init__(self) -> None:
        super().__init__()
        self.config, self.event_shape = {"name": "toy-ar"}, (2,)


def test_ode_settings_default_checked_and_recorded() -> None:
    model = get_spec("cfm-voxel").build(**get_spec("cfm-voxel").example_config)
    assert model.maps_noise and model.sampler_family == "ode"
    assert model.sampler_settings() == {"solver": "midpoint", "steps": 3}
    assert model.sampler_settings(solver="rk4", steps=2) == {"solver": "rk4", "steps": 2}
    attrs = model.sampler_attrs({"solver": "rk4", "steps": 2})
    assert attrs["nfe"] == 8 and json.loads(attrs["sampler"]) == {
        "family": "ode",
        "solver": "rk4",
        "steps": 2,
        "nfe": 8,
    }
    with pytest.raises(UserError, match="--temperature: not a setting of cfm-voxel"):
        model.sampler_settings(temperature=0.7)
    with pytest.raises(UserError, match="--steps must be >= 1"):
        model.sampler_settings(steps=0)
    with pytest.raises(UserError, match="unknown solver|solver"):
        model.sampler_settings(solver="leapfrog")


def test_a_model_without_a_noise_map_is_refused_by_what_needs_one() -> None:
    model = _NoNoiseMap()
    assert not model.maps_noise
    for what in ("distill", "ONNX export"):
        with pytest.raises(UserError, match=f"{what} needs a model that maps given noise.*toy-ar"):
            require_noise_map(model, what)
    require_noise_map(get_spec("cfm-set").build(**get_spec("cfm-set").example_config), "distill")
