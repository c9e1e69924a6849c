"""The model registry: an explicit dict from name to :class:`ModelSpec`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from showerforge.errors import UserError
from showerforge.models.autoregressive import build_ar_tokens
from showerforge.models.base import GenerativeModel
from showerforge.models.epic import DEPTH_HEADS, build_cfm_set
from showerforge.models.factorised import build_factorised
from showerforge.models.flow_matching import FlowMatching
from showerforge.models.layer_transformer import LayerTransformer
from showerforge.models.points import build_cfm_points
from showerforge.models.solvers import SOLVERS

__all__ = ["ModelSpec", "MODELS", "build_model", "get_spec"]

TIME_SAMPLING = ("uniform", "logit-normal")
"""Training-time distributions of flow matching (``time_sampling``, see ``models.paths.sample_time``)."""
_POSITIVE = (
    "d_model",
    "n_blocks",
    "n_heads",
    "d_global",
    "energy_width",
    "energy_blocks",
    "energy_steps",
    "steps",
    "codebook_size",
    "code_dim",
    "vq_hidden",
    "vq_steps",
)
_NON_NEGATIVE = ("layers_per_token", "x_units", "shape_energy_bins", "depth_tokens")
_AT_LEAST_TWO = ("bins", "codebook_size")
_CHOICES = {"tokeniser": ("axis", "vq"), "spacing": ("uniform", "quantile"), "decode": ("uniform", "centre")}


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model.

    Args:
        name: registry key, stored as ``config["name"]``.
        builder: ``builder(config) -> GenerativeModel`` from a complete config (defaults merged).
        defaults: hyperparameters and their default values (JSON-able).
        data_keys: config keys that describe the data and must be given (e.g. ``token_sizes``).
        data_kind: what the model eats: ``"calo-voxels"`` (flat factorised voxel features from
            :class:`showerforge.data.preprocess.ShowerPreprocessor`) or ``"jet-set"``
            ((N, n_particles, features) with a mask).
        description: one line for ``--help`` and reports.
        example_config: a tiny but complete config (data keys included) that the shared contract
            test (``tests/test_models_contract.py``) and the docs build; must set ``n_cond``.
        references: papers the model follows.
        saved_before: values of hyperparameters added after the model was first released, for
            configs saved without them (:func:`build_model` fills them in, so older checkpoints
            keep their architecture while new runs get the current ``defaults``).
        preprocessing_keys: hyperparameters that choose the preprocessing rather than the network
            (passed to the preprocessor a new training run fits, e.g. ``shape_scale``).
        other_kinds: further kinds of data the model trains on (``ar-tokens``: jets and point clouds).
        own_length: the model draws the number of constituents itself (an autoregressive model
            with a stop decision): it is trained on the kind's plain condition, and generation
            asks it for the set and its mask instead of drawing a multiplicity first.
        sampler_family: ``"ode"`` (solver, steps; distillation and ONNX export apply) or
            ``"autoregressive"`` (temperature, top-k).
    """

    name: str
    builder: Callable[[dict[str, Any]], GenerativeModel]
    defaults: dict[str, Any]
    data_keys: tuple[str, ...]
    data_kind: str
    description: str = ""
    example_config: dict[str, Any] = field(default_factory=dict)
    references: tuple[str, ...] = field(default=())
    saved_before: dict[str, Any] = field(default_factory=dict)
    preprocessing_keys: tuple[str, ...] = ()
    other_kinds: tuple[str, ...] = ()
    own_length: bool = False
    sampler_family: str = "ode"

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every kind of data the model trains on (``data_kind`` first)."""
        return (self.data_kind, *self.other_kinds)

    def resolve(self, **config: Any) -> dict[str, Any]:
        """Defaults overridden by ``config``; unknown or missing keys raise ``ValueError``."""
        config = {k: v for k, v in config.items() if k != "name"}
        unknown = set(config) - set(self.defaults) - set(self.data_keys)
        if unknown:
            raise UserError(
                f"model {self.name!r}: unknown config keys {sorted(unknown)}; "
                f"hyperparameters are {sorted(self.defaults)}"
            )
        for key, value in config.items():
            if key in self.defaults and not _same_type(self.defaults[key], value):
                raise UserError(
                    f"model {self.name!r}: {key} must be {type(self.defaults[key]).__name__} "
                    f"like its default {self.defaults[key]!r}, got {value!r}"
                )
        missing = set(self.data_keys) - set(config)
        if missing:
            raise ValueError(f"model {self.name!r}: missing data keys {sorted(missing)}")
        return {"name": self.name, **self.defaults, **config}

    def check_overrides(self, overrides: dict[str, Any] | None) -> None:
        """Refuse hyperparameter overrides that cannot build a model, before any work.

        Sizes and step counts must be positive integers, ``layers_per_token`` / ``x_units`` /
        ``shape_energy_bins`` / ``depth_tokens`` integers >= 0, ``mlp_ratio`` > 0, ``sigma`` >= 0, ``d_model`` a
        multiple of ``n_heads``, ``solver`` and ``time_sampling`` known names (types as
        :meth:`resolve` checks them).

        Raises:
            UserError: naming ``--set KEY=VALUE`` and what was expected.
        """
        given = {k: v for k, v in (overrides or {}).items() if k != "name"}
        self.resolve(**given, **{k: None for k in self.data_keys if k not in given})  # names and types
        cfg = {**self.defaults, **given}

        def bad(key: str, expected: str) -> UserError:
            return UserError(f"--set {key}={cfg[key]!r}: model {self.name!r} needs {expected}")

        for key in _POSITIVE:
            if key in given and key in self.defaults and cfg[key] < 1:
                raise bad(key, f"{key} >= 1 (a positive integer)")
        for key in _NON_NEGATIVE:
            if key in given and key in self.defaults and cfg[key] < 0:
                raise bad(key, f"{key} >= 0")
        for key in _AT_LEAST_TWO:
            if key in given and key in self.defaults and cfg[key] < 2:
                raise bad(key, f"{key} >= 2")
        for key, allowed in _CHOICES.items():
            if key in given and key in self.defaults and cfg[key] not in allowed:
                raise bad(key, f"{key} to be one of {', '.join(allowed)}")
        if "mlp_ratio" in given and not cfg["mlp_ratio"] > 0:
            raise bad("mlp_ratio", "mlp_ratio > 0")
        if "sigma" in given and not cfg["sigma"] >= 0:
            raise bad("sigma", "sigma >= 0")
        if "solver" in given and cfg["solver"] not in SOLVERS:
            raise bad("solver", f"solver to be one of {', '.join(SOLVERS)}")
        if "time_sampling" in given and cfg["time_sampling"] not in TIME_SAMPLING:
            raise bad("time_sampling", f"time_sampling to be one of {', '.join(TIME_SAMPLING)}")
        if cfg.get("depth_tokens", 0) > 0 and cfg["d_model"] % DEPTH_HEADS:
            key = "d_model" if "d_model" in given else "depth_tokens"
            raise bad(key, f"d_model to be a multiple of {DEPTH_HEADS} (the depth tokens' attention heads)")
        if "n_heads" in cfg and "d_model" in cfg and cfg["d_model"] % cfg["n_heads"]:
            key = "d_model" if "d_model" in given else "n_heads"
            raise bad(key, f"d_model to be a multiple of n_heads (d_model={cfg['d_model']}, n_heads={cfg['n_heads']})")

    def build(self, **config: Any) -> GenerativeModel:
        """A freshly initialised model (seed torch first for reproducible weights)."""
        return self.builder(self.resolve(**config))


def _same_type(default: Any, value: Any) -> bool:
    """``value`` may replace ``default``: same JSON type (an int where a float is expected is fine)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _build_cfm_voxel(cfg: dict[str, Any]) -> GenerativeModel:
    net = LayerTransformer(
        cfg["token_sizes"],
        cfg["n_cond"],
        d_model=cfg["d_model"],
        n_blocks=cfg["n_blocks"],
        n_heads=cfg["n_heads"],
        mlp_ratio=cfg["mlp_ratio"],
        layers_per_token=cfg["layers_per_token"],
    )
    return FlowMatching(net, (sum(cfg["token_sizes"]),), cfg)


CFM_VOXEL = ModelSpec(
    name="cfm-voxel",
    builder=_build_cfm_voxel,
    defaults={
        "d_model": 64,
        "n_blocks": 3,
        "n_heads": 4,
        "mlp_ratio": 2.0,
        "layers_per_token": 0,
        "sigma": 0.0,
        "time_sampling": "uniform",
        "solver": "midpoint",
        "steps": 8,
        "distillation": {},
    },
    data_keys=("token_sizes", "n_cond"),
    data_kind="calo-voxels",
    description="conditional flow matching, layer transformer with adaLN-Zero, factorised voxels",
    # an irregular readout: layers of 5, 9 and 9 voxels (+1 energy feature each)
    example_config={
        "token_sizes": [6, 10, 10],
        "n_cond": 1,
        "d_model": 16,
        "n_blocks": 2,
        "n_heads": 2,
        "layers_per_token": 1,
        "steps": 3,
    },
    references=("arXiv:2210.02747", "arXiv:2302.00482", "arXiv:2405.09629", "arXiv:2212.09748"),
    saved_before={"distillation": {}},
)

CFM_FACTORISED = ModelSpec(
    name="cfm-factorised",
    builder=build_factorised,
    defaults={
        "d_model": 128,
        "n_blocks": 3,
        "n_heads": 4,
        "mlp_ratio": 2.0,
        "layers_per_token": 0,
        "energy_width": 128,
        "energy_blocks": 3,
        "energy_steps": 16,
        "x_gain": True,
        "x_units": 2,
        "layer_cond": "energy",
        "shape_scale": "layer",
        "shape_energy_bins": 8,
        "sigma": 0.0,
        "time_sampling": "uniform",
        "solver": "midpoint",
        "steps": 8,
        "distillation": {},
    },
    data_keys=("token_sizes", "n_cond", "energy_decode"),
    data_kind="calo-voxels",
    description="two-stage CFM: layer energies (residual MLP), then shapes given them (layer transformer)",
    example_config={
        "token_sizes": [6, 10, 10],
        "n_cond": 1,
        "d_model": 16,
        "n_blocks": 2,
        "n_heads": 2,
        "layers_per_token": 2,
        "energy_decode": {
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
            "y_min": [-20.0, -20.0, -20.0],
            "y_max": [20.0, 20.0, 20.0],
            "alpha": 1e-6,
            "frac_eps": 1e-7,
            "cond_mean": 8.0,
            "cond_std": 1.0,
        },
        "energy_width": 16,
        "energy_blocks": 2,
        "energy_steps": 3,
        "steps": 3,
    },
    references=("arXiv:2405.09629", "arXiv:2210.02747", "arXiv:2212.09748"),
    saved_before={
        "distillation": {},
        "x_gain": False,
        "x_units": 0,
        "layer_cond": "stick",
        "energy_decode": None,
        "shape_scale": "layer",
        "shape_energy_bins": 0,
    },
    preprocessing_keys=("shape_scale", "shape_energy_bins"),
)

CFM_SET = ModelSpec(
    name="cfm-set",
    builder=build_cfm_set,
    defaults={
        "d_model": 64,
        "d_global": 32,
        "n_blocks": 3,
        "mlp_ratio": 2.0,
        "sigma": 0.0,
        "time_sampling": "uniform",
        "solver": "midpoint",
        "steps": 8,
        "distillation": {},
    },
    data_keys=("n_particles", "n_features", "n_cond"),
    data_kind="jet-set",
    description="conditional flow matching, EPiC layers with adaLN-Zero, jets as masked particle sets",
    example_config={
        "n_particles": 7,
        "n_features": 3,
        "n_cond": 5,
        "d_model": 16,
        "d_global": 8,
        "n_blocks": 2,
        "steps": 3,
    },
    references=("arXiv:2210.02747", "arXiv:2301.08128", "arXiv:2212.09748"),
    saved_before={"distillation": {}},
)

CFM_POINTS = ModelSpec(
    name="cfm-points",
    builder=build_cfm_points,
    defaults={
        "d_model": 48,
        "d_global": 32,
        "n_blocks": 3,
        "mlp_ratio": 2.0,
        "summary_width": 256,
        "summary_blocks": 3,
        "summary_steps": 8,
        "summary_repeat": 8,
        "core": False,
        "depth_tokens": 0,
        "sigma": 0.0,
        "time_sampling": "uniform",
        "solver": "midpoint",
        "steps": 12,
        "distillation": {},
    },
    data_keys=("n_particles", "n_features", "n_summary", "n_cond"),
    data_kind="calo-points",
    description="two-stage CFM for point clouds: shower flow (points, energy per layer, centre) then EPiC points",
    example_config={
        "n_particles": 9,
        "n_features": 4,
        "n_summary": 8,
        "n_cond": 9,
        "d_model": 16,
        "d_global": 8,
        "n_blocks": 2,
        "summary_width": 16,
        "summary_blocks": 1,
        "summary_steps": 2,
        "steps": 3,
    },
    references=("arXiv:2305.04847", "arXiv:2309.05704", "arXiv:2301.08128", "arXiv:2210.02747"),
    saved_before={"summary_repeat": 1, "core": False, "depth_tokens": 0},
)

AR_TOKENS = ModelSpec(
    name="ar-tokens",
    builder=build_ar_tokens,
    defaults={
        "tokeniser": "axis",
        "bins": 64,
        "spacing": "uniform",
        "decode": "uniform",
        "codebook_size": 512,
        "code_dim": 8,
        "vq_hidden": 64,
        "vq_steps": 1500,
        "d_model": 128,
        "n_blocks": 3,
        "n_heads": 8,
        "mlp_ratio": 2.0,
    },
    data_keys=("n_particles", "n_features", "n_cond", "order_by"),
    data_kind="jet-set",
    description="decoder-only transformer on tokenised constituents (per-axis bins or VQ-VAE codes), stop head",
    example_config={
        "n_particles": 7,
        "n_features": 3,
        "n_cond": 5,
        "order_by": 2,
        "bins": 8,
        "d_model": 16,
        "n_blocks": 2,
        "n_heads": 2,
    },
    references=("arXiv:2403.05618", "arXiv:1711.00937"),
    preprocessing_keys=("tokeniser", "bins", "spacing", "codebook_size", "code_dim", "vq_hidden", "vq_steps"),
    other_kinds=("calo-points",),
    own_length=True,
    sampler_family="autoregressive",
)

MODELS: dict[str, ModelSpec] = {
    "cfm-voxel": CFM_VOXEL,
    "cfm-factorised": CFM_FACTORISED,
    "cfm-set": CFM_SET,
    "cfm-points": CFM_POINTS,
    "ar-tokens": AR_TOKENS,
}
"""Registered models by name. Add an entry here to register a model (no import-time magic)."""


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model, or a ``ValueError`` listing the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; registered: {sorted(MODELS)}") from None


def build_model(config: dict[str, Any]) -> GenerativeModel:
    """Rebuild a model from its ``config`` (as stored in ``model.config`` and in checkpoints).

    Hyperparameters missing from an older saved config take their ``saved_before`` value.
    """
    spec = get_spec(str(config.get("name")))
    return spec.build(**{**spec.saved_before, **config})
