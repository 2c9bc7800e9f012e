"""NCF-style MLP (He et al., "Neural Collaborative Filtering", WWW 2017), the MLP tower
with layers [32, 16, 8]: the RecPIE paper's robustness check on the recommender.

The user, place and category embeddings are concatenated and scored by an MLP
[32, 16, 8, 1]; the output is sigmoid(score) on the unit scale (``task="regression"``)
or the logit of P(rating >= 4) (``"classification"``). The history in the batch is
ignored, as in the original.

Differs from the original:
- explicit ratings with MSE (or BCE on rating >= 4), not implicit feedback with sampled
  negatives;
- the MLP tower alone (no GMF branch, so no NeuMF pre-training);
- the candidate's category embedding is concatenated too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.base import RatingModel
from recpie_core.rec.layers import check_config, make_embedding, mlp_head, rating_output


@dataclass(frozen=True)
class NCFConfig:
    dim: int = 8  # embedding size of user, place and category
    mlp: tuple[int, ...] = (32, 16, 8)  # hidden layers of the tower; a final layer gives 1 output
    dropout: float = 0.1  # between MLP layers
    task: str = "regression"  # "regression" | "classification"

    def __post_init__(self):
        check_config(self.task, self.dropout, dim=self.dim)


class NCF(RatingModel):
    def __init__(self, config: NCFConfig, n_users: int, n_places: int, n_categories: int):
        super().__init__(config, n_users, n_places, n_categories)
        self.user_embedding = make_embedding(n_users, config.dim)
        self.place_embedding = make_embedding(n_places, config.dim)
        self.category_embedding = make_embedding(n_categories, config.dim)
        self.head = mlp_head(3 * config.dim, config.mlp, config.dropout)

    def forward(self, batch: RatingBatch) -> Tensor:
        x = torch.cat([self.user_embedding(batch.user), self.place_embedding(batch.place),
                       self.category_embedding(batch.category)], dim=-1)  # (B, 3D)
        return rating_output(self.head(x).squeeze(-1), self.config.task)  # (B,)
