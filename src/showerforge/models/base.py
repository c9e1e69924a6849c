"""The interface every showerforge generative model implements.

A model is a :class:`torch.nn.Module` that works on preprocessed tensors only (it never reads
files and never sees MeV; :mod:`showerforge.data.preprocess` does that) and carries a JSON-able
``config`` from which :func:`showerforge.models.build_model` rebuilds the same architecture, so a
checkpoint is just ``config`` + ``state_dict``.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from showerforge.errors import UserError

__all__ = ["GenerativeModel", "require_noise_map"]


class GenerativeModel(nn.Module):
    """Base class of conditional generative models.

    Shapes:
        * ``x``: (N, *event_shape) preprocessed data, e.g. (N, n_features) for voxel showers or
          (N, n_particles, n_features) for particle sets;
        * ``cond``: (N, n_cond) condition vectors (log incident energy today; angle, geometry
          features later);
        * ``mask``: ``None`` for fixed-size data, else bool (N, n_particles), True = real entry.
          Masked-out entries are ignored by :meth:`loss` and returned as zeros by :meth:`sample`.

    Attributes:
        config: JSON-able dict holding ``name`` (the registry key) and every constructor
            argument, including the data dimensions; ``build_model(model.config)`` rebuilds it.
        event_shape: shape of one sample.
    """

    config: dict[str, Any]
    event_shape: tuple[int, ...]

    sampler_family: ClassVar[str] = "ode"
    """How the model samples: ``"ode"`` (an ODE from noise to data: settings ``solver``, ``steps``).
    An autoregressive model declares its own family and settings (temperature, top-k, length cap)
    by overriding :meth:`sampler_settings` and :meth:`sampler_attrs`."""

    def loss(
        self, x: Tensor, cond: Tensor, mask: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Training loss, a scalar tensor (mean over the batch and unmasked entries)."""
        raise NotImplementedError

    def noise_shapes(self, n: int) -> list[tuple[int, ...]]:
        """Shapes of the standard-normal tensors :meth:`sample` draws for ``n`` rows, in draw order.

        One ``(n, *event_shape)`` tensor for a single flow; a factorised model draws one per stage.
        """
        return [(n, *self.event_shape)]

    def draw_noise(
        self, n: int, *, generator: torch.Generator | None = None, like: Tensor | None = None
    ) -> list[Tensor]:
        """The noise :meth:`sample` uses: ``torch.randn`` of each of :meth:`noise_shapes`, in order."""
        kw: dict[str, Any] = {} if like is None else {"device": like.device, "dtype": like.dtype}
        return [torch.randn(shape, generator=generator, **kw) for shape in self.noise_shapes(n)]

    def sample_from_noise(
        self,
        noise: list[Tensor],
        cond: Tensor,
        *,
        steps: int | None = None,
        solver: str | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """The deterministic map from given noise (:meth:`noise_shapes`) to samples (N, *event_shape).

        ``sample(cond, generator=g)`` equals ``sample_from_noise(draw_noise(N, generator=g), cond)``;
        exported graphs (ONNX) and distillation use this map with noise drawn elsewhere.
        """
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self,
        cond: Tensor,
        *,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        solver: str | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """One sample per condition row, shape (N, *event_shape), without gradients.

        Args:
            cond: (N, n_cond).
            generator: torch random generator on ``cond.device``; same seed, same samples.
            steps: ODE steps (``None``: the model's default).
            solver: ``"euler"``, ``"midpoint"`` or ``"rk4"`` (``None``: the model's default).
            mask: (N, n_particles) for set models, else ``None``.
        """
        noise = self.draw_noise(cond.shape[0], generator=generator, like=cond)
        return self.sample_from_noise(noise, cond, steps=steps, solver=solver, mask=mask)

    @property
    def default_sampler(self) -> dict[str, Any]:
        """``{"solver": name, "steps": int}`` used when ``sample`` gets ``None``."""
        return {"solver": self.config.get("solver", "midpoint"), "steps": int(self.config.get("steps", 8))}

    def sampler_settings(self, **given: Any) -> dict[str, Any]:
        """The sampler settings of one generation: ``given`` (``None`` = the model's default), checked.

        ODE models: ``{"solver": name, "steps": int}``; a setting of another family is refused.
        """
        from showerforge.models.solvers import get_solver

        unknown = sorted(k for k, v in given.items() if v is not None and k not in ("solver", "steps"))
        if unknown:
            raise UserError(
                f"{', '.join('--' + k.replace('_', '-') for k in unknown)}: not a setting of {self.config.get('name')} "
                f"({self.sampler_family} sampler: solver, steps)"
            )
        default = self.default_sampler
        steps = int(given["steps"] if given.get("steps") is not None else default["steps"])
        if steps < 1:
            raise UserError(f"--steps must be >= 1, got {steps}")
        return {"solver": get_solver(given.get("solver") or default["solver"]).name, "steps": steps}

    def sampler_attrs(self, settings: dict[str, Any]) -> dict[str, Any]:
        """What a generated file records of its sampler: ``sampler`` (JSON: family and settings) and,
        for ODE models, ``solver``, ``steps`` and ``nfe`` (network evaluations per sample)."""
        from showerforge.models.solvers import get_solver

        nfe = int(settings["steps"]) * get_solver(settings["solver"]).nfe_per_step
        record = {"family": self.sampler_family, **settings, "nfe": nfe}
        return {
            "sampler": json.dumps(record, sort_keys=True),
            "solver": settings["solver"],
            "steps": int(settings["steps"]),
            "nfe": nfe,
        }

    @property
    def maps_noise(self) -> bool:
        """Whether the model maps given noise to samples (:meth:`noise_shapes`, :meth:`sample_from_noise`):
        what distillation and ONNX export need."""
        return type(self).sample_from_noise is not GenerativeModel.sample_from_noise


def require_noise_map(model: GenerativeModel, what: str) -> None:
    """Refuse, in one line, a model that cannot map given noise to samples (``what`` needs it)."""
    name = model.config.get("name", type(model).__name__)
    if not model.maps_noise:
        why = (
            f": it samples token by token until a stop decision (a loop of data-dependent length), so {what} does not apply"
            if model.sampler_family == "autoregressive"
            else ""
        )
        raise UserError(
            f"{what} needs a model that maps given noise to samples (noise_shapes / sample_from_noise); "
            f"{name} ({model.sampler_family} sampler) has none{why}"
        )
