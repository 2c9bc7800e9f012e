"""BERT4Rec (Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder
Representations from Transformer", CIKM 2019) with a rating head.

BERT4Rec is a next-place ranking model; here it predicts a rating. As at BERT4Rec's
inference, a learned [MASK] token is appended after the history (place embedding + a
projection of the rating given + position embedding) and ``n_blocks`` bidirectional
Transformer blocks run over it; the output at the [MASK] slot is the sequence
representation. A rating head, MLP over [sequence representation; candidate embedding],
trained with the loss every model here shares (MSE on the unit scale, or BCE on
rating >= 4), replaces the softmax over all places. Output: sigmoid(score) on the unit
scale, or the logit of P(rating >= 4).

Differs from the original:
- no Cloze (masked-place) pre-training: the rating loss trains the encoder end to end;
- history items carry their ratings; the candidate embedding adds its category;
- pre-norm single-head blocks (``layers.TransformerBlock``); positions counted from the
  [MASK] slot backwards. An empty history is just the [MASK] slot attending to itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.base import RatingModel
from recpie_core.rec.layers import TransformerBlock, check_config, make_embedding, mlp_head, rating_output


@dataclass(frozen=True)
class BERT4RecConfig:
    dim: int = 8  # embedding size, same as the RecPIE tokens
    n_blocks: int = 2  # bidirectional self-attention blocks
    hist_len: int = 20  # most recent places kept per user
    dropout: float = 0.2  # on embeddings and inside the blocks and head
    head: tuple[int, ...] = (64, 8)  # hidden sizes of the rating head; a final layer gives 1 output
    task: str = "regression"  # "regression" | "classification"

    def __post_init__(self):
        check_config(self.task, self.dropout, dim=self.dim, n_blocks=self.n_blocks, hist_len=self.hist_len)


class BERT4Rec(RatingModel):
    def __init__(self, config: BERT4RecConfig, n_users: int, n_places: int, n_categories: int):
        super().__init__(config, n_users, n_places, n_categories)
        D = config.dim
        self.place_embedding = make_embedding(n_places, D)
        self.category_embedding = make_embedding(n_categories, D)
        self.position_embedding = nn.Embedding(config.hist_len + 1, D)  # + the [MASK] slot
        self.rating_proj = nn.Linear(1, D)
        self.mask_token = nn.Parameter(torch.randn(D) * 0.1)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(D, config.dropout, causal=False) for _ in range(config.n_blocks))
        self.ln = nn.LayerNorm(D)
        self.head = mlp_head(2 * D, config.head, config.dropout)

    def sequence(self, batch: RatingBatch) -> Tensor:
        """-> (B, D): the output at the [MASK] slot after the history."""
        cfg = self.config
        hp, hr, mask = (t[:, -cfg.hist_len:] for t in (batch.hist_place, batch.hist_rating, batch.hist_mask))
        B, n = hp.shape
        x = self.place_embedding(hp) + self.rating_proj(hr.unsqueeze(-1))  # (B, n, D)
        x = torch.cat([x, self.mask_token.expand(B, 1, -1)], dim=1)  # (B, n+1, D)
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.bool, device=mask.device)], dim=1)  # (B, n+1)
        pos = torch.arange(cfg.hist_len - n, cfg.hist_len + 1, device=hp.device)  # (n+1,), [MASK] = hist_len
        x = self.dropout(x + self.position_embedding(pos)) * mask.unsqueeze(-1)
        for block in self.blocks:
            x = block(x, mask)  # (B, n+1, D)
        return self.ln(x[:, -1])  # (B, D)

    def forward(self, batch: RatingBatch) -> Tensor:
        cand = self.place_embedding(batch.place) + self.category_embedding(batch.category)  # (B, D)
        z = self.head(torch.cat([self.sequence(batch), cand], dim=-1)).squeeze(-1)  # (B, 2D) -> (B,)
        return rating_output(z, self.config.task)
