"""Generative models: objective + backbone + sampler, one registry.

Models work on preprocessed tensors only: they never read files and never see MeV
(:mod:`showerforge.data.preprocess` maps showers to features and back).

**The contract** (every entry of :data:`MODELS` passes ``tests/test_models_contract.py``):

* a model is a :class:`GenerativeModel`, i.e. a :class:`torch.nn.Module` with

  - ``config``: JSON-able dict with ``name`` (registry key) and every constructor argument,
    including data dimensions, so ``build_model(model.config)`` rebuilds the architecture and a
    checkpoint is ``config`` + ``state_dict``;
  - ``event_shape``: shape of one sample, (n_features,) for voxels, (n_particles, n_features)
    for sets;
  - ``loss(x, cond, mask=None, *, generator=None) -> scalar tensor``;
  - ``sample(cond, *, generator=None, steps=None, solver=None, mask=None) -> (N, *event_shape)``,
    one sample per condition row, reproducible under a seeded ``torch.Generator``;
  - ``default_sampler``: ``{"solver": ..., "steps": ...}``;

* ``cond`` is (N, n_cond), a vector so angle or geometry features can be appended later;
  ``mask`` is ``None`` for fixed-size data, else bool (N, n_particles), True = real entry.

**Registering a model**: write a builder ``builder(config) -> GenerativeModel`` and add a
:class:`ModelSpec` to the ``MODELS`` dict literal in :mod:`showerforge.models.registry`
(``defaults`` = hyperparameters, ``data_keys`` = dimensions the training code fills in from the
data, ``data_kind`` = ``"calo-voxels"`` or ``"jet-set"``). A set model, e.g. ``"cfm-set"``, can
reuse :class:`FlowMatching` with a permutation-equivariant velocity network
``velocity(x (N, n, F), t (N,), cond (N, C), mask (N, n)) -> (N, n, F)``: ``FlowMatching``
already masks noise, loss and samples.

Example:
    >>> model = MODELS["cfm-voxel"].build(token_sizes=[49] * 12, n_cond=1)
    >>> loss = model.loss(x, cond)
    >>> x_new = model.sample(cond, generator=torch.Generator().manual_seed(0), steps=8, solver="midpoint")
"""

from __future__ import annotations

from showerforge.models.base import GenerativeModel, require_noise_map
from showerforge.models.flow_matching import FlowMatching
from showerforge.models.layer_transformer import LayerTransformer, TimeEmbedding
from showerforge.models.paths import sample_time, straight_path
from showerforge.models.registry import MODELS, ModelSpec, build_model, get_spec
from showerforge.models.solvers import RK4, SOLVERS, Euler, FixedStepSolver, Midpoint, get_solver

__all__ = [
    "GenerativeModel",
    "require_noise_map",
    "FlowMatching",
    "LayerTransformer",
    "TimeEmbedding",
    "ModelSpec",
    "MODELS",
    "build_model",
    "get_spec",
    "straight_path",
    "sample_time",
    "FixedStepSolver",
    "Euler",
    "Midpoint",
    "RK4",
    "SOLVERS",
    "get_solver",
]
