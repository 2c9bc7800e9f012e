"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018) with a
rating head.

SASRec is a next-place ranking model; here it predicts a rating. The history (place
embedding + position embedding + a projection of the rating given) goes through
``n_blocks`` causal Transformer blocks; the output at the newest position is the
sequence representation. A rating head, MLP over [sequence representation; candidate
embedding], trained with the loss every model here shares (MSE on the unit scale, or BCE
on rating >= 4), replaces the dot-product ranking over all places. Output: sigmoid(score)
on the unit scale, or the logit of P(rating >= 4).

Differs from the original:
- the rating head and loss above, instead of next-place BCE with sampled negatives;
- history items carry their ratings; the candidate embedding adds its category;
- pre-norm single-head blocks (``layers.TransformerBlock``), with GELU in the FFN;
- positions are counted from the newest item, so the newest item always has the same
  position embedding whatever the history length; an empty history gives a learned
  "no history" vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.base import RatingModel
from recpie_core.rec.layers import TransformerBlock, check_config, make_embedding, mlp_head, rating_output


@dataclass(frozen=True)
class SASRecConfig:
    dim: int = 8  # embedding size, same as the RecPIE tokens
    n_blocks: int = 2  # causal self-attention blocks
    hist_len: int = 20  # most recent places kept per user
    dropout: float = 0.2  # on embeddings and inside the blocks and head
    head: tuple[int, ...] = (64, 8)  # hidden sizes of the rating head; a final layer gives 1 output
    task: str = "regression"  # "regression" | "classification"

    def __post_init__(self):
        check_config(self.task, self.dropout, dim=self.dim, n_blocks=self.n_blocks, hist_len=self.hist_len)


class SASRec(RatingModel):
    def __init__(self, config: SASRecConfig, n_users: int, n_places: int, n_categories: int):
        super().__init__(config, n_users, n_places, n_categories)
        D = config.dim
        self.place_embedding = make_embedding(n_places, D)
        self.category_embedding = make_embedding(n_categories, D)
        self.position_embedding = nn.Embedding(config.hist_len, D)
        self.rating_proj = nn.Linear(1, D)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(D, config.dropout, causal=True) for _ in range(config.n_blocks))
        self.ln = nn.LayerNorm(D)
        self.no_history = nn.Parameter(torch.zeros(D))
        self.head = mlp_head(2 * D, config.head, config.dropout)

    def sequence(self, batch: RatingBatch) -> Tensor:
        """-> (B, D): the output at the newest history position."""
        cfg = self.config
        hp, hr, mask = (t[:, -cfg.hist_len:] for t in (batch.hist_place, batch.hist_rating, batch.hist_mask))
        n = hp.shape[1]
        pos = torch.arange(cfg.hist_len - n, cfg.hist_len, device=hp.device)  # (n,), newest = hist_len - 1
        x = (self.place_embedding(hp) * math.sqrt(cfg.dim) + self.position_embedding(pos)
             + self.rating_proj(hr.unsqueeze(-1)))  # (B, n, D)
        x = self.dropout(x) * mask.unsqueeze(-1)
        for block in self.blocks:
            x = block(x, mask)  # (B, n, D)
        last = self.ln(x[:, -1])  # (B, D); left padding: the newest item is last
        return torch.where(mask[:, -1:], last, self.no_history.expand_as(last))

    def forward(self, batch: RatingBatch) -> Tensor:
        cand = self.place_embedding(batch.place) + self.category_embedding(batch.category)  # (B, D)
        z = self.head(torch.cat([self.sequence(batch), cand], dim=-1)).squeeze(-1)  # (B, 2D) -> (B,)
        return rating_output(z, self.config.task)
