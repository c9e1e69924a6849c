"""A toy kind of data, written as a contributor adds a kind: 2-D points with one condition.

Files hold ``points`` (N, 2) and ``condition`` (N, 1); the points of condition ``c`` scatter around
``(c, -c)`` with width 0.3. Everything the kind needs is here: the :class:`DataKind` subclass, a
small registered model (flow matching with an MLP) and its training rows; nothing in the package
is changed. :func:`install` registers both, :func:`uninstall` removes them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from showerforge.data.io import atomic_output
from showerforge.errors import UserError
from showerforge.kinds import DataKind, GenerationRequest, register_kind, unregister_kind
from showerforge.models import MODELS
from showerforge.models.flow_matching import FlowMatching
from showerforge.models.registry import ModelSpec
from showerforge.runs import LoadedRun, build_weights, checkpoint_path, file_sha256, read_checkpoint, run_fields
from showerforge.training.fit import TrainConfig, fit

NAME = "toy-points"
MODEL = "toy-cfm"


def write_points(path: str | Path, points: np.ndarray, condition: np.ndarray, **attrs: Any) -> Path:
    """A toy file, written atomically."""
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as h5:
        h5["points"] = np.asarray(points, np.float32)
        h5["condition"] = np.asarray(condition, np.float32).reshape(-1, 1)
        for k, v in attrs.items():
            h5.attrs[k] = v
    return Path(path)


def make_points(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` toy events: condition uniform in [-1, 1], points N((c + shift, -c), 0.3^2)."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1.0, 1.0, n)
    pts = np.stack([c + shift, -c], axis=1) + rng.normal(0.0, 0.3, (n, 2))
    return pts, c


def read_points(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as h5:
        return np.asarray(h5["points"], np.float64), np.asarray(h5["condition"], np.float64).reshape(-1)


# ----------------------------------------------------------------------------- the model
class _Velocity(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(4, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.net(torch.cat([x, t[:, None], cond], dim=1))


def _build(cfg: dict[str, Any]) -> FlowMatching:
    return FlowMatching(_Velocity(int(cfg["width"])), (2,), cfg)


SPEC = ModelSpec(
    name=MODEL,
    builder=_build,
    defaults={"width": 64, "sigma": 0.0, "time_sampling": "uniform", "solver": "midpoint", "steps": 8},
    data_keys=("n_cond",),
    data_kind=NAME,
    description="toy: flow matching of 2-D points with an MLP",
    example_config={"n_cond": 1, "width": 16, "steps": 2},
)


# ----------------------------------------------------------------------------- training rows
class _Rows:
    rate_key = "points_per_s"

    def __init__(self, path: Path, seed: int, device: torch.device) -> None:
        pts, c = read_points(path)
        self.x = torch.tensor(pts, dtype=torch.float32, device=device)
        self.c = torch.tensor(c[:, None], dtype=torch.float32, device=device)
        self.seed = seed
        self.provenance = {"path": str(path.resolve()), "sha256": file_sha256(path), "n_rows": len(pts)}

    def model_data_keys(self) -> dict[str, Any]:
        return {"n_cond": 1}

    def batches_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.x) // batch_size)

    def batches(self, epoch: int, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        perm = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 1000 + epoch))
        for lo in range(0, len(perm), batch_size):
            idx = perm[lo : lo + batch_size]
            yield self.x[idx], self.c[idx], None

    def validation(self) -> tuple[Tensor, Tensor, Tensor | None] | None:
        return None

    def restore(self, ckpt: dict[str, Any]) -> None:
        pass

    def checkpoint_entries(self) -> dict[str, Any]:
        return {"data_kind": NAME, "preprocessing": {}}

    def config_entries(self) -> dict[str, Any]:
        return {"data_kind": NAME}


@dataclass(kw_only=True)
class ToySurrogate(LoadedRun):
    """A trained toy model: ``sample(conditions, seed)`` -> (N, 2) points."""

    def sample(self, condition: np.ndarray, *, seed: int = 0) -> np.ndarray:
        cond = torch.tensor(np.asarray(condition, np.float32).reshape(-1, 1))
        with torch.no_grad():
            x = self.model.sample(cond, generator=torch.Generator().manual_seed(seed))
        return x.numpy().astype(np.float64)


# ----------------------------------------------------------------------------- the kind
class ToyPoints(DataKind):
    """2-D points with one condition."""

    name: ClassVar[str] = NAME
    noun: ClassVar[str] = "points"
    description: ClassVar[str] = "a toy point file (keys 'points', 'condition')"
    default_model: ClassVar[str | None] = MODEL

    def matches(self, keys: Collection[str]) -> bool:
        return "points" in keys and "condition" in keys

    def count(self, spec: str | Path) -> int:
        return len(read_points(self.split_spec(spec)[0])[0])

    def read_events(self, spec: str | Path, max_events: int | None = None) -> Any:
        pts, c = read_points(self.split_spec(spec)[0])
        sl = slice(None) if max_events is None else slice(0, max_events)
        return ToyEvents(Path(spec), pts[sl], c[sl])

    def train(self, data: str | Path, output: str | Path, *, model: str | None, **settings: Any) -> Any:
        seed = int(settings.get("seed", 0))
        cfg = TrainConfig(epochs=int(settings.get("epochs", 5)), batch_size=128, lr=3e-3, seed=seed)
        return fit(
            lambda ckpt, dev: _Rows(Path(data), seed, dev),
            model or MODEL,
            output,
            cfg,
            data_kind=NAME,
            data_name=str(data),
            device=settings.get("device", "cpu"),
            progress=bool(settings.get("progress", False)),
            config_overrides=settings.get("config_overrides"),
            num_threads=1,
        )

    def load(self, checkpoint: Path, device: Any = "cpu") -> ToySurrogate:
        path = checkpoint_path(checkpoint)
        ckpt = read_checkpoint(path)
        model = build_weights(ckpt).to(device).eval()
        return ToySurrogate(**run_fields(ckpt, path, model))

    def draws(self, request: GenerationRequest, *, model: str) -> np.ndarray:
        if request.types is not None or request.energy is not None:
            raise UserError(f"{model} is a toy model: give {request.spelled('n')} (conditions drawn in [-1, 1])")
        if request.energies_from is not None:
            return read_points(request.energies_from)[1]
        return np.random.default_rng(request.seed).uniform(-1.0, 1.0, int(request.n or 100))

    def draws_like(self, reference: str | Path, n: int) -> np.ndarray:
        return np.resize(read_points(self.split_spec(reference)[0])[1], n)

    def generate(self, model: str | Path, draws: Any, output: str | Path, **options: Any) -> Path:
        from showerforge.kinds import load

        surrogate = load(model)
        pts = surrogate.sample(draws, seed=int(options.get("seed", 0)))
        if options.get("progress") is not None:
            options["progress"](len(pts))
        return write_points(output, pts, draws, model=str(model), checkpoint_sha256=surrogate.sha256)

    def evaluate(self, reference: str | Path, candidate: str | Path, output: Path, **options: Any) -> dict[str, Any]:
        """Mean of each coordinate, candidate minus reference, with its standard error."""
        self.refuse_options(options, ("floor_reference", "repeats", "nplm_toys", "efp_normed"))
        (a, _), (b, _) = (read_points(self.split_spec(p)[0]) for p in (reference, candidate))
        diff = b.mean(0) - a.mean(0)
        err = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
        metrics = {
            "candidate_vs_reference": {
                f"mean_{axis}": {"value": float(d), "error": float(e)} for axis, d, e in zip("xy", diff, err)
            },
            "n": [len(a), len(b)],
        }
        output.mkdir(parents=True, exist_ok=True)
        with atomic_output(output / "metrics.json") as tmp:
            tmp.write_text(json.dumps(metrics))
        return metrics

    def summary(self, metrics: dict[str, Any]) -> str:
        rows = metrics["candidate_vs_reference"].items()
        return "\n".join(f"{name}: {m['value']:+.4f} ± {m['error']:.4f}" for name, m in rows)


@dataclass
class ToyEvents:
    """Toy events as analyses see them."""

    path: Path
    points: np.ndarray
    condition: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def install() -> ToyPoints:
    MODELS[MODEL] = SPEC
    return register_kind(ToyPoints())  # type: ignore[return-value]


def uninstall() -> None:
    unregister_kind(NAME)
    MODELS.pop(MODEL, None)
