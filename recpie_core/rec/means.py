"""Closed-form mean baselines: GlobalMean, UserMean, PlaceMean.

The reference points of rating prediction (the "baseline predictors" of Koren, Bell &
Volinsky, "Matrix Factorization Techniques for Recommender Systems", IEEE Computer 2009):
predict the mean training rating overall, of the user, or of the place. ``prepare``
computes the tables once from the training table; ``forward`` looks them up. They have
no trainable parameters, so ``fit_rating_model`` only prepares and validates them.

Differs from the original:
- per-user and per-place means are shrunk toward the global mean,
  (sum + k * mean) / (count + k) with k = ``shrinkage``, so a place rated once is not
  predicted at that one rating; an unknown id (0) gets the global mean;
- ``task="classification"`` tabulates the share of ratings >= 4 instead and returns its
  logit, so these baselines serve both objectives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.base import RatingModel
from recpie_core.rec.layers import check_task
from recpie_core.rec.metrics import is_positive


@dataclass(frozen=True)
class MeanConfig:
    shrinkage: float = 5.0  # pseudo-count k pulling each user's / place's mean toward the global one
    task: str = "regression"  # "regression" (mean rating) | "classification" (share of ratings >= 4)

    def __post_init__(self):
        check_task(self.task)
        if self.shrinkage < 0:
            raise ValueError(f"shrinkage is a pseudo-count and cannot be negative, got {self.shrinkage}")


class _MeanModel(RatingModel):
    key: str | None = None  # the batch field the table is indexed by; None = one global value

    def __init__(self, config: MeanConfig, n_users: int, n_places: int, n_categories: int):
        super().__init__(config, n_users, n_places, n_categories)
        n = {"user": n_users, "place": n_places, None: 1}[self.key]
        # buffers, not parameters: saved in checkpoints, untouched by the optimizer
        self.register_buffer("table", torch.full((n,), 0.5))  # (n,) per-id mean, unit scale

    @torch.no_grad()
    def prepare(self, train: RatingBatch) -> None:
        y = train.rating.float()
        if self.config.task == "classification":
            y = is_positive(y).float()
        mu = y.mean()
        if self.key is None:
            self.table.fill_(mu)
            return
        ids = getattr(train, self.key).to(self.table.device)
        sums = torch.zeros_like(self.table).index_add_(0, ids, y.to(self.table))
        counts = torch.zeros_like(self.table).index_add_(0, ids, torch.ones_like(y).to(self.table))
        k = self.config.shrinkage
        self.table.copy_((sums + k * mu) / (counts + k).clamp(min=1e-12))
        self.table[counts == 0] = mu
        self.table[0] = mu  # unknown id

    def forward(self, batch: RatingBatch) -> Tensor:
        if self.key is None:
            p = self.table.expand(len(batch))  # (B,)
        else:
            p = self.table[getattr(batch, self.key)]  # (B,)
        if self.config.task == "classification":
            return torch.logit(p.clamp(1e-4, 1 - 1e-4))
        return p


class GlobalMean(_MeanModel):
    """Every prediction is the mean training rating."""

    key = None


class UserMean(_MeanModel):
    """The user's (shrunk) mean training rating."""

    key = "user"


class PlaceMean(_MeanModel):
    """The place's (shrunk) mean training rating."""

    key = "place"
