"""The design space: parameters <-> thicknesses, materials, Geant4 geometry, length and cost.

A point of the design space is ``u`` (the continuous parameters, each mapped to ``[0, 1]`` over
its range: thickness = low + u (high - low) mm) and, for every discrete parameter, a vector of
probabilities over its materials (softmax of logits). A *concrete* design has one material per
choice. The surrogate sees ``[u, probabilities...]`` (one-hot for a concrete design).

Cost model (``docs/optimise.md``): every slab is ``2 h x 2 h`` mm transverse (``h`` the
transverse half-size) and ``t`` mm deep; its cost is ``volume_cm3 x cost_per_cm3(material)``;
for a material still chosen by probabilities it is the expected cost. Length is the sum of all
slab thicknesses, mm.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from showerforge.geometry import Geometry, ReadoutLayer, Section
from showerforge.optimisation.config import OptConfig

__all__ = ["Design", "DesignSpace", "MAX_COMBINATIONS"]

MAX_COMBINATIONS = 256
"""Material combinations up to which :meth:`DesignSpace.expected_penalty` is exact."""


@dataclass(frozen=True)
class Design:
    """A concrete design: per layer (front to back) the absorber and sensor thickness and material."""

    absorber_mm: tuple[float, ...]
    sensor_mm: tuple[float, ...]
    absorber: tuple[str, ...]
    sensor: tuple[str, ...]

    def describe(self) -> str:
        """One line: ``12.3 mm G4_Pb + 20.0 mm G4_PbWO4 | ...``."""
        return " | ".join(
            f"{a:.1f} mm {am} + {s:.1f} mm {sm}"
            for a, s, am, sm in zip(self.absorber_mm, self.sensor_mm, self.absorber, self.sensor)
        )

    def to_dict(self) -> dict[str, list[Any]]:
        """JSON-ready lists."""
        return {
            "absorber_mm": [round(v, 4) for v in self.absorber_mm],
            "sensor_mm": [round(v, 4) for v in self.sensor_mm],
            "absorber": list(self.absorber),
            "sensor": list(self.sensor),
        }


class DesignSpace:
    """Maps between the optimiser's parameters and designs of one :class:`OptConfig`."""

    def __init__(self, cfg: OptConfig) -> None:
        self.cfg = cfg
        self.cont = cfg.continuous
        self.disc = cfg.discrete
        self.low = np.asarray([p.low for p in self.cont], dtype=np.float64)
        self.span = np.asarray([p.high - p.low for p in self.cont], dtype=np.float64)
        self.n_cont = len(self.cont)
        self.sizes = [len(p.choices) for p in self.disc]
        self.area_cm2 = (2 * cfg.transverse_half_mm / 10.0) ** 2

    @property
    def width(self) -> int:
        """Width of the surrogate's design vector ``[u, probabilities...]``."""
        return self.n_cont + sum(self.sizes)

    # ------------------------------------------------------------ start, sampling
    def start(self, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
        """The starting ``u`` and logits (``start`` of the config: random, centre or given values)."""
        start = self.cfg.start
        if start == "random":
            u = rng.uniform(0.0, 1.0, self.n_cont)
            picks = [int(rng.integers(0, k)) for k in self.sizes]
        elif start == "centre":
            u, picks = np.full(self.n_cont, 0.5), [0] * len(self.sizes)
        else:
            assert isinstance(start, dict)
            u = np.asarray([self._start_u(p.name, start) for p in self.cont], dtype=np.float64)
            picks = [self._start_pick(p.name, p.choices, start) for p in self.disc]
        logits = [np.where(np.arange(k) == j, 1.0, 0.0) for k, j in zip(self.sizes, picks)]
        return u, logits

    def _start_u(self, name: str, start: dict[str, list[Any]]) -> float:
        layer, key = name.split(".")
        i = int(layer.removeprefix("layer"))
        p = next(q for q in self.cont if q.name == name)
        value = start.get(key, [None] * len(self.cfg.layers))[i]
        return 0.5 if value is None else (float(value) - p.low) / (p.high - p.low)

    def _start_pick(self, name: str, choices: tuple[str, ...], start: dict[str, list[Any]]) -> int:
        layer, key = name.split(".")
        value = start.get(key, [None] * len(self.cfg.layers))[int(layer.removeprefix("layer"))]
        return 0 if value is None else choices.index(value)

    def sample(
        self, u0: np.ndarray, logits: list[np.ndarray], n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` concrete designs around the current point: ``(u (n, c), choices (n, m) int)``.

        Design 0 is the current point with its most probable materials; the others draw ``u`` from
        a Gaussian of width ``sample_sigma`` (clipped to [0, 1]) and each material from its
        probabilities mixed with ``probability_floor`` of a uniform choice (exploration).
        """
        u = np.clip(u0[None, :] + self.cfg.sample_sigma * rng.standard_normal((n, self.n_cont)), 0.0, 1.0)
        u[0] = u0
        choices = np.zeros((n, len(self.sizes)), dtype=np.int64)
        floor = self.cfg.probability_floor
        for j, (k, lg) in enumerate(zip(self.sizes, logits)):
            p = _softmax(lg)
            p = (1 - floor) * p + floor / k
            choices[:, j] = rng.choice(k, size=n, p=p / p.sum())
            choices[0, j] = int(np.argmax(lg))
        return u, choices

    # --------------------------------------------------------------- vectors
    def vector(self, u: np.ndarray, choices: np.ndarray) -> np.ndarray:
        """Surrogate design vectors of concrete designs, shape (n, width) (materials one-hot)."""
        parts = [np.atleast_2d(u)]
        choices = np.atleast_2d(choices)
        for j, k in enumerate(self.sizes):
            parts.append(np.eye(k)[choices[:, j]])
        return np.concatenate(parts, axis=1)

    def torch_vector(self, u: Tensor, probs: list[Tensor]) -> Tensor:
        """Surrogate design vector of a point with probabilities, shape (width,)."""
        return torch.cat([u, *probs]) if probs else u

    # ------------------------------------------------------------- concrete
    def design(self, u: np.ndarray, choices: np.ndarray | list[int]) -> Design:
        """The concrete design of ``u`` and one material index per discrete parameter."""
        mm = self.low + np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0) * self.span
        values: dict[str, Any] = {}
        for p, v in zip(self.cont, mm):
            values[p.name] = float(v)
        for q, j in zip(self.disc, choices):
            values[q.name] = q.choices[int(j)]
        layers: dict[str, list[Any]] = {k: [] for k in ("absorber_mm", "sensor_mm", "absorber", "sensor")}
        for i, lay in enumerate(self.cfg.layers):
            for key in layers:
                fixed = getattr(lay, key)
                layers[key].append(values.get(f"layer{i}.{key}", fixed))
        return Design(**{k: tuple(v) for k, v in layers.items()})

    def best(self, u: np.ndarray, logits: list[np.ndarray]) -> Design:
        """The concrete design of a point: its most probable materials."""
        return self.design(u, [int(np.argmax(lg)) for lg in logits])

    def geometry(self, design: Design, name: str = "optimise") -> Geometry:
        """The Geant4 geometry: one section per layer, each layer read out as one cell."""
        h = self.cfg.transverse_half_mm
        sections = tuple(
            Section(1, am, float(a), sm, float(s), f"layer{i}")
            for i, (a, s, am, sm) in enumerate(
                zip(design.absorber_mm, design.sensor_mm, design.absorber, design.sensor)
            )
        )
        readout = tuple(ReadoutLayer(crystal_mm=2 * h, n_crystals=1) for _ in sections)
        return Geometry(name, readout, transverse_size_mm=h, sections=sections)

    # ------------------------------------------------------ length and cost
    def length_cost(self, u: Tensor, probs: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Total length (mm) and expected cost (CU) of a point, differentiable in ``u`` and ``probs``.

        ``probs`` may be batched, each (M, k): the cost is then (M,), one per row."""
        mm = torch.as_tensor(self.low, dtype=u.dtype) + u * torch.as_tensor(self.span, dtype=u.dtype)
        cont = {p.name: mm[i] for i, p in enumerate(self.cont)}
        disc = {p.name: (p.choices, probs[j]) for j, p in enumerate(self.disc)}
        costs = self.cfg.costs_per_cm3
        length = torch.zeros((), dtype=u.dtype)
        cost = torch.zeros((), dtype=u.dtype)
        for i, lay in enumerate(self.cfg.layers):
            for part in ("absorber", "sensor"):
                t = cont.get(f"layer{i}.{part}_mm")
                if t is None:
                    t = torch.tensor(float(getattr(lay, f"{part}_mm")), dtype=u.dtype)
                if f"layer{i}.{part}" in disc:
                    names, p = disc[f"layer{i}.{part}"]
                    price = (p * torch.tensor([costs[n] for n in names], dtype=u.dtype)).sum(-1)
                else:
                    price = torch.tensor(costs[str(getattr(lay, part))], dtype=u.dtype)
                length = length + t
                cost = cost + t / 10.0 * self.area_cm2 * price
        return length, cost

    def expected_penalty(self, u: Tensor, probs: list[Tensor]) -> Tensor:
        """The penalty averaged over the concrete material choices drawn from ``probs``.

        Exact (every combination) up to ``MAX_COMBINATIONS`` combinations, else the penalty of the
        expected cost. The quadratic penalty is convex, so the average is at least the penalty of
        the average: materials still in doubt cannot hide a concrete design that breaks a limit.
        """
        combos = torch.as_tensor(list(itertools.product(*[range(k) for k in self.sizes])), dtype=torch.long)
        if len(combos) > MAX_COMBINATIONS or not self.sizes:
            return self.penalty(*self.length_cost(u, probs))
        onehot = [torch.eye(k, dtype=u.dtype)[combos[:, j]] for j, k in enumerate(self.sizes)]  # (M, k) each
        weight = torch.stack([p[combos[:, j]] for j, p in enumerate(probs)]).prod(dim=0)  # (M,)
        return (weight * self.penalty(*self.length_cost(u, onehot))).sum()

    def design_length_cost(self, design: Design) -> tuple[float, float]:
        """Length (mm) and cost (CU) of a concrete design."""
        costs = self.cfg.costs_per_cm3
        length = sum(design.absorber_mm) + sum(design.sensor_mm)
        cost = sum(
            a / 10.0 * self.area_cm2 * costs[am] + s / 10.0 * self.area_cm2 * costs[sm]
            for a, s, am, sm in zip(design.absorber_mm, design.sensor_mm, design.absorber, design.sensor)
        )
        return float(length), float(cost)

    def penalty(self, length: Tensor, cost: Tensor) -> Tensor:
        """Quadratic penalty ``w (max(0, L / L_max - 1)^2 + max(0, C / C_max - 1)^2)``."""
        cfg = self.cfg
        out = torch.zeros((), dtype=length.dtype)
        if cfg.max_length_mm is not None:
            out = out + torch.relu(length / cfg.max_length_mm - 1.0) ** 2
        if cfg.max_cost is not None:
            out = out + torch.relu(cost / cfg.max_cost - 1.0) ** 2
        return cfg.penalty_weight * out

    def design_penalty(self, design: Design) -> float:
        """The penalty of a concrete design."""
        length, cost = self.design_length_cost(design)
        return float(self.penalty(torch.tensor(length, dtype=torch.float64), torch.tensor(cost, dtype=torch.float64)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(np.asarray(x, dtype=np.float64) - np.max(x))
    return e / e.sum()
