"""Conditional multiplicity: how many particles a generated set holds.

Set models generate the particles of a jet for a given mask; the mask comes from a sample of the
multiplicity ``k`` (number of constituents) drawn first, as point-cloud models factorise the
count from the content (e.g. CaloClouds' "ShowerFlow"; EPiC-JeDi / PC-JeDi draw ``k`` from the
training distribution per jet type). :class:`CategoricalMultiplicity` is the exact, simple choice:
one categorical distribution over ``1..k_max`` per discrete condition label (jet type, or jet type
times a jet-pT bin), fitted by counting (maximum likelihood, optionally with add-``alpha``
smoothing). Its table is a buffer, so it travels in a ``state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

__all__ = ["CategoricalMultiplicity"]


class CategoricalMultiplicity(nn.Module):
    """``p(k | label)``: a categorical over ``k = 1..k_max`` for each of ``n_labels`` labels.

    Behaves like a conditional distribution: ``model(labels)`` is a
    :class:`torch.distributions.Categorical` over the index ``k - 1``; :meth:`sample` draws ``k``
    reproducibly from a seeded ``torch.Generator``; :meth:`log_prob` scores ``k``.

    Args:
        n_labels: number of discrete condition labels (e.g. 5 jet types).
        k_max: largest multiplicity (>= 1).
        alpha: add-``alpha`` smoothing applied in :meth:`fit` to labels seen in training
            (0: maximum likelihood, so only observed multiplicities are generated).

    Example:
        >>> mult = CategoricalMultiplicity(5, 80).fit(labels, k)
        >>> k_new = mult.sample(labels, generator=torch.Generator().manual_seed(0))
    """

    counts: Tensor

    def __init__(self, n_labels: int, k_max: int, alpha: float = 0.0) -> None:
        super().__init__()
        if n_labels < 1 or k_max < 1 or alpha < 0:
            raise ValueError(f"need n_labels >= 1, k_max >= 1, alpha >= 0; got {n_labels}, {k_max}, {alpha}")
        self.n_labels, self.k_max, self.alpha = int(n_labels), int(k_max), float(alpha)
        self.register_buffer("counts", torch.zeros(self.n_labels, self.k_max, dtype=torch.float64))

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (with the ``counts`` buffer it rebuilds the model)."""
        return {"n_labels": self.n_labels, "k_max": self.k_max, "alpha": self.alpha}

    def _check(self, labels: Tensor, k: Tensor | None = None) -> None:
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.n_labels):
            raise ValueError(f"labels must lie in [0, {self.n_labels}), got [{int(labels.min())}, {int(labels.max())}]")
        if k is not None and k.numel() and (int(k.min()) < 1 or int(k.max()) > self.k_max):
            raise ValueError(f"multiplicities must lie in [1, {self.k_max}], got [{int(k.min())}, {int(k.max())}]")

    @torch.no_grad()
    def fit(self, labels: Tensor, k: Tensor) -> CategoricalMultiplicity:
        """Count multiplicities per label (replaces any earlier fit).

        Args:
            labels: (N,) integer labels in ``[0, n_labels)``.
            k: (N,) integer multiplicities in ``[1, k_max]``.
        """
        labels, k = torch.as_tensor(labels).long().reshape(-1), torch.as_tensor(k).long().reshape(-1)
        if labels.shape != k.shape:
            raise ValueError(f"labels {tuple(labels.shape)} and k {tuple(k.shape)} differ in length")
        self._check(labels, k)
        flat = torch.bincount(labels * self.k_max + (k - 1), minlength=self.n_labels * self.k_max)
        counts = flat.reshape(self.n_labels, self.k_max).to(self.counts)
        seen = counts.sum(dim=1, keepdim=True) > 0
        self.counts.copy_(counts + self.alpha * seen)
        return self

    @property
    def fitted_labels(self) -> Tensor:
        """(n_labels,) bool: labels with training data (the only ones that can be sampled)."""
        return self.counts.sum(dim=1) > 0

    @property
    def probs(self) -> Tensor:
        """(n_labels, k_max) probabilities ``p(k = j + 1 | label)``; rows of unseen labels are 0."""
        total = self.counts.sum(dim=1, keepdim=True)
        return self.counts / total.clamp_min(1e-300)

    def _rows(self, labels: Tensor) -> Tensor:
        labels = torch.as_tensor(labels, device=self.counts.device).long().reshape(-1)
        self._check(labels)
        if labels.numel() and not bool(self.fitted_labels[labels].all()):
            missing = sorted(set(labels[~self.fitted_labels[labels]].tolist()))
            raise ValueError(f"no training data for multiplicity labels {missing}")
        return self.probs[labels]

    def forward(self, labels: Tensor) -> Categorical:
        """The distribution of ``k - 1`` for each label, batch shape (N,)."""
        return Categorical(probs=self._rows(labels))

    def sample(self, labels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Multiplicities ``k`` (N,) int64 in ``[1, k_max]``, one per label; seeded by ``generator``."""
        rows = self._rows(labels)
        if rows.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long, device=rows.device)
        return torch.multinomial(rows, 1, generator=generator).reshape(-1) + 1

    def log_prob(self, k: Tensor, labels: Tensor) -> Tensor:
        """``log p(k | label)``, shape (N,) (``-inf`` for multiplicities never seen)."""
        k = torch.as_tensor(k, device=self.counts.device).long().reshape(-1)
        self._check(torch.zeros(0, dtype=torch.long), k)
        return self._rows(labels).gather(1, (k - 1)[:, None]).reshape(-1).log()
