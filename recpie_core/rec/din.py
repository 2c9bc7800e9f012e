"""DIN (Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018)
with a rating head.

DIN scores a candidate against the history: an activation unit (an MLP over
[h, c, h - c, h * c]) weights each history item h by its relevance to the candidate c,
the weighted sum (not softmax-normalised, as in the paper) is the user-interest vector,
and an MLP over [interest; candidate] gives the score. DIN predicts clicks; here it
predicts a rating with the loss every model here shares (MSE on the unit scale, or BCE
on rating >= 4). Output: sigmoid(score) on the unit scale, or the logit of
P(rating >= 4).

Differs from the original:
- a rating target, as above; history items carry their ratings (a rating projection
  added to the place embedding); the candidate embedding adds its category;
- PReLU instead of Dice, no mini-batch-aware regularisation (weight decay in
  ``FitConfig`` instead), no user-profile or context features;
- an empty history gives a zero interest vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.base import RatingModel
from recpie_core.rec.layers import check_config, make_embedding, mlp_head, rating_output


@dataclass(frozen=True)
class DINConfig:
    dim: int = 8  # embedding size, same as the RecPIE tokens
    attention_hidden: int = 36  # hidden units of the activation unit (the paper's 36)
    mlp: tuple[int, ...] = (80, 40)  # hidden sizes of the scoring MLP (the paper's 200-80 scaled down)
    hist_len: int = 20  # most recent places kept per user
    dropout: float = 0.1  # between MLP layers
    task: str = "regression"  # "regression" | "classification"

    def __post_init__(self):
        check_config(self.task, self.dropout, dim=self.dim, attention_hidden=self.attention_hidden,
                     hist_len=self.hist_len)


class DIN(RatingModel):
    def __init__(self, config: DINConfig, n_users: int, n_places: int, n_categories: int):
        super().__init__(config, n_users, n_places, n_categories)
        D = config.dim
        self.place_embedding = make_embedding(n_places, D)
        self.category_embedding = make_embedding(n_categories, D)
        self.rating_proj = nn.Linear(1, D)
        self.activation_unit = nn.Sequential(nn.Linear(4 * D, config.attention_hidden), nn.PReLU(),
                                             nn.Linear(config.attention_hidden, 1))
        self.head = mlp_head(2 * D, config.mlp, config.dropout, act=nn.PReLU)

    def forward(self, batch: RatingBatch) -> Tensor:
        n = self.config.hist_len
        hp, hr, mask = batch.hist_place[:, -n:], batch.hist_rating[:, -n:], batch.hist_mask[:, -n:]
        h = self.place_embedding(hp) + self.rating_proj(hr.unsqueeze(-1))  # (B, n, D)
        c = self.place_embedding(batch.place) + self.category_embedding(batch.category)  # (B, D)
        ce = c.unsqueeze(1).expand_as(h)  # (B, n, D)
        w = self.activation_unit(torch.cat([h, ce, h - ce, h * ce], dim=-1)).squeeze(-1)  # (B, n)
        w = w * mask  # padding gets weight 0
        interest = (w.unsqueeze(-1) * h).sum(dim=1)  # (B, D)
        z = self.head(torch.cat([interest, c], dim=-1)).squeeze(-1)  # (B, 2D) -> (B,)
        return rating_output(z, self.config.task)
