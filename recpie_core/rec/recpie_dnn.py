"""RecPIE's recommendation component: five 8-dim tokens, one self-attention layer, an MLP.

Wang, Li & Chen, "Can Explanations Improve Recommendations? A Joint Optimization with
LLM Reasoning" (arXiv 2502.16759), Sec. 3.2 and Fig. 3. The tokens, in ``TOKENS`` order:

- ``pos``, ``neg``: the positive and negative explanation sentence embeddings (MiniLM,
  ``expl_dim`` = 384, here; DistilBERT in the paper), each projected to ``dim`` by its own
  linear layer;
- ``user``: the consumer embedding, the same table the explainer's soft prompt reads
  (``model.user_embedding``, ``model.user_vectors(ids)``);
- ``place``: the candidate's place embedding plus its category embedding;
- ``seq``: the history encoder of ``layers.py`` (self-attention, then a GRU).

One self-attention layer (d_k = ``dim``) mixes the five tokens; the result is flattened
and an MLP [64, 8, 1] scores it. ``forward_with_attention`` also returns the (B, 5, 5)
attention weights, the paper's Fig. 9 readout.

Output: for ``task="regression"`` sigmoid(score), a rating on the unit scale (r - 1) / 4,
always inside (0, 1) and with a gradient everywhere (a clamp would have none outside the
range); for ``"classification"`` the score is the logit of P(rating >= 4).

Explanation tokens without explanations: a batch with ``pos_emb``/``neg_emb`` None is
treated as zero sentence vectors, so each explanation token is its projection's bias: a
constant, learned token. ``explanation_tokens="learned"`` (the paper's Ablation 1) replaces
both tokens by free parameters of size ``dim`` and ignores the embeddings altogether.

Differs from the original:
- the history items carry their ratings (a rating projection added to the place
  embedding), and the place token adds the candidate's category embedding: the inputs the
  paper allows every model;
- a residual connection around the five-token attention (the MLP sees each token itself
  as well as what it attended to);
- the history encoder's place table is the candidate place table (shared weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.base import RatingModel
from recpie_core.rec.layers import (
    HistoryEncoder,
    attention_weights,
    check_config,
    make_embedding,
    mlp_head,
    rating_output,
)

TOKENS = ("pos", "neg", "user", "place", "seq")
EXPLANATION_TOKENS = ("input", "learned")


@dataclass(frozen=True)
class RecPIEConfig:
    dim: int = 8  # size of every token and embedding (the paper's 8)
    expl_dim: int = 384  # sentence-embedding size of the explanations (MiniLM-L6: 384)
    mlp: tuple[int, ...] = (64, 8)  # hidden sizes of the head; a final layer gives 1 output
    dropout: float = 0.1  # dropout in the history encoder and between MLP layers
    task: str = "regression"  # "regression" (unit-scale rating) | "classification" (rating >= 4)
    explanation_tokens: str = "input"  # "input": projected embeddings | "learned": Ablation 1
    hist_len: int = 20  # most recent history items read (longer histories are cut)

    def __post_init__(self):
        check_config(self.task, self.dropout, dim=self.dim, expl_dim=self.expl_dim, hist_len=self.hist_len)
        if self.explanation_tokens not in EXPLANATION_TOKENS:
            raise ValueError(f"explanation_tokens must be one of {EXPLANATION_TOKENS}, "
                             f"got {self.explanation_tokens!r}")


@dataclass(frozen=True)
class RecPIENoExplConfig(RecPIEConfig):
    """Ablation 1: the two explanation tokens are free learnable parameters."""

    explanation_tokens: str = "learned"


class RecPIEDNN(RatingModel):
    def __init__(self, config: RecPIEConfig, n_users: int, n_places: int, n_categories: int):
        super().__init__(config, n_users, n_places, n_categories)
        D = config.dim
        self.user_embedding = make_embedding(n_users, D)  # id 0 (unknown user) = zeros
        self.place_embedding = make_embedding(n_places, D)
        self.category_embedding = make_embedding(n_categories, D)
        self.history = HistoryEncoder(self.place_embedding, D, config.dropout)
        if config.explanation_tokens == "input":
            self.pos_proj = nn.Linear(config.expl_dim, D)
            self.neg_proj = nn.Linear(config.expl_dim, D)
        else:
            self.pos_token = nn.Parameter(torch.randn(D) * 0.1)
            self.neg_token = nn.Parameter(torch.randn(D) * 0.1)
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.head = mlp_head(len(TOKENS) * D, config.mlp, config.dropout)  # [64, 8, 1]

    def user_vectors(self, user_ids: Tensor) -> Tensor:
        """(B,) user ids -> (B, dim): the consumer embeddings the soft prompt projects."""
        return self.user_embedding(user_ids)

    def explanation_parameters(self) -> list[nn.Parameter]:
        """What turns the explanations into their two tokens: the projections (or Ablation 1's tokens)."""
        if self.config.explanation_tokens == "learned":
            return [self.pos_token, self.neg_token]
        return [*self.pos_proj.parameters(), *self.neg_proj.parameters()]

    def _explanation_tokens(self, batch: RatingBatch) -> tuple[Tensor, Tensor]:
        B = len(batch)
        if self.config.explanation_tokens == "learned":
            return self.pos_token.expand(B, -1), self.neg_token.expand(B, -1)
        if batch.pos_emb is None or batch.neg_emb is None:  # zero sentence vectors -> the biases
            return self.pos_proj.bias.expand(B, -1), self.neg_proj.bias.expand(B, -1)
        if batch.pos_emb.shape[-1] != self.config.expl_dim:
            raise ValueError(f"explanation embeddings have size {batch.pos_emb.shape[-1]}, "
                             f"the model expects expl_dim={self.config.expl_dim}")
        return self.pos_proj(batch.pos_emb), self.neg_proj(batch.neg_emb)

    def forward_with_attention(self, batch: RatingBatch) -> tuple[Tensor, Tensor]:
        """-> (output (B,), attention (B, 5, 5)); attention[b, i, j]: token i attending token j."""
        n = self.config.hist_len
        pos, neg = self._explanation_tokens(batch)  # 2 x (B, D)
        user = self.user_embedding(batch.user)  # (B, D)
        place = self.place_embedding(batch.place) + self.category_embedding(batch.category)  # (B, D)
        seq = self.history(batch.hist_place[:, -n:], batch.hist_rating[:, -n:], batch.hist_mask[:, -n:])  # (B, D)
        x = torch.stack([pos, neg, user, place, seq], dim=1)  # (B, 5, D), order = TOKENS
        attn = attention_weights(self.q(x), self.k(x))  # (B, 5, 5)
        x = x + attn @ self.v(x)  # (B, 5, D)
        z = self.head(x.flatten(1)).squeeze(-1)  # (B, 5D) -> (B,)
        return rating_output(z, self.config.task), attn

    def forward(self, batch: RatingBatch) -> Tensor:
        return self.forward_with_attention(batch)[0]
