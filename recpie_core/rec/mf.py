"""Biased matrix factorisation (Koren, Bell & Volinsky, "Matrix Factorization Techniques
for Recommender Systems", IEEE Computer 2009).

score = mu + b_user + b_place + b_category + <p_user, q_place>; the rating is
sigmoid(score) on the unit scale (``task="regression"``) or score is the logit of
P(rating >= 4) (``"classification"``). Uses the user, the candidate place and its
category; the history in the batch is ignored, as in the original.

Differs from the original:
- a sigmoid link keeps ratings inside the unit scale; ``mu`` starts at the logit of the
  training mean (``prepare``) instead of the mean itself;
- a category bias (the place metadata every model may use);
- trained with Adam by ``fit_rating_model`` (weight decay there plays the L2 term), not
  SGD or ALS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.base import RatingModel
from recpie_core.rec.layers import check_config, make_embedding, rating_output
from recpie_core.rec.metrics import is_positive


@dataclass(frozen=True)
class MFConfig:
    dim: int = 8  # latent factors per user and place
    task: str = "regression"  # "regression" | "classification"

    def __post_init__(self):
        check_config(self.task, dim=self.dim)


class BiasedMF(RatingModel):
    def __init__(self, config: MFConfig, n_users: int, n_places: int, n_categories: int):
        super().__init__(config, n_users, n_places, n_categories)
        self.user_embedding = make_embedding(n_users, config.dim)
        self.place_embedding = make_embedding(n_places, config.dim)
        self.user_bias = make_embedding(n_users, 1, std=0.0)
        self.place_bias = make_embedding(n_places, 1, std=0.0)
        self.category_bias = make_embedding(n_categories, 1, std=0.0)
        self.global_bias = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def prepare(self, train: RatingBatch) -> None:
        y = train.rating.float()
        if self.config.task == "classification":
            y = is_positive(y).float()
        self.global_bias.fill_(torch.logit(y.mean().clamp(0.01, 0.99)).item())

    def forward(self, batch: RatingBatch) -> Tensor:
        p, q = self.user_embedding(batch.user), self.place_embedding(batch.place)  # (B, D) each
        z = (self.global_bias + self.user_bias(batch.user).squeeze(-1) + self.place_bias(batch.place).squeeze(-1)
             + self.category_bias(batch.category).squeeze(-1) + (p * q).sum(-1))  # (B,)
        return rating_output(z, self.config.task)
