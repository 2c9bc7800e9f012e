"""Pieces the rating models share: masked attention, the history encoder, a Transformer block.

Histories arrive left-padded (newest place at position L-1, ``hist_mask`` False at
padding; see ``recpie_core/data/batches.py``). Every piece here keeps padding out:
padding is never attended, its outputs are zeroed, and it never reaches a GRU state.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpie_core.rec.fit_config import TASKS


def check_task(task: str) -> None:
    """Config ``__post_init__`` helper: the two objectives ``fit_rating_model`` knows."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def check_config(task: str, dropout: float = 0.0, **sizes: int) -> None:
    """Config ``__post_init__`` helper: a known task, dropout in [0, 1), every size >= 1."""
    check_task(task)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    bad = {name: v for name, v in sizes.items() if v < 1}
    if bad:
        raise ValueError(f"sizes must be positive, got {bad}")


def rating_output(z: Tensor, task: str) -> Tensor:
    """Last-layer score -> model output: sigmoid (unit-scale rating in (0, 1)) or the logit itself."""
    return torch.sigmoid(z) if task == "regression" else z


def make_embedding(n: int, dim: int, std: float = 0.1) -> nn.Embedding:
    """Table for ids 1..n-1; id 0 (unknown or padding) is a fixed zero vector."""
    emb = nn.Embedding(n, dim, padding_idx=0)
    nn.init.normal_(emb.weight, std=std)
    with torch.no_grad():
        emb.weight[0].zero_()
    return emb


def mlp_head(width: int, hidden: tuple[int, ...], dropout: float, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """MLP ``width -> hidden... -> 1`` with ``act`` and dropout between layers."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), act(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def allowed_keys(key_mask: Tensor, causal: bool = False) -> Tensor:
    """(B, L) key mask -> (B, L, L) bool, True where query i may attend key j.

    A query with no allowed key (a padding position, or any position of an empty
    history) is let attend everything, so softmax stays finite; callers zero or
    replace those outputs, so nothing reaches a real position from padding.
    """
    allowed = key_mask[:, None, :].expand(-1, key_mask.shape[1], -1)  # (B, L, L)
    if causal:
        L = key_mask.shape[1]
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=key_mask.device).tril()
    return allowed | ~allowed.any(dim=-1, keepdim=True)


def attention_weights(q: Tensor, k: Tensor, allowed: Tensor | None = None) -> Tensor:
    """Scaled dot-product weights softmax(q k^T / sqrt(d)): q (B, Lq, d), k (B, Lk, d) -> (B, Lq, Lk)."""
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, Lq, Lk)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1)


class HistoryEncoder(nn.Module):
    """History of (place, rating) -> one ``dim`` vector: self-attention, then a GRU.

    Each history item is ``place_embedding(place) + rating_proj(rating)``; one
    single-head self-attention layer (residual) mixes the items, with padding never
    attended; a GRU (hidden ``dim``) reads the real items oldest to newest, and its
    last hidden state is the sequence embedding. The left-padded rows are rolled to
    right padding and packed, so padding never touches the GRU state. An empty history
    gives a learned "no history" vector.
    """

    def __init__(self, place_embedding: nn.Embedding, dim: int, dropout: float = 0.0):
        super().__init__()
        self.place_embedding = place_embedding  # shared with the model's place table
        self.rating_proj = nn.Linear(1, dim)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.no_history = nn.Parameter(torch.zeros(dim))

    def forward(self, hist_place: Tensor, hist_rating: Tensor, hist_mask: Tensor) -> Tensor:
        B, L = hist_place.shape
        x = self.place_embedding(hist_place) + self.rating_proj(hist_rating.unsqueeze(-1))  # (B, L, D)
        attn = attention_weights(self.q(x), self.k(x), allowed_keys(hist_mask))  # (B, L, L)
        x = x + self.dropout(attn @ self.v(x))  # (B, L, D)
        x = x * hist_mask.unsqueeze(-1)  # padding outputs zeroed
        lengths = hist_mask.sum(dim=1)  # (B,)
        # left padding -> right padding: row b is rotated left by its padding count
        shift = (L - lengths)[:, None]  # (B, 1)
        idx = (torch.arange(L, device=x.device)[None, :] + shift) % L  # (B, L)
        x = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, L, D), real items first
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, h_n = self.gru(packed)  # h_n (1, B, D), state after each row's last real item
        h = h_n[-1]  # (B, D)
        return torch.where((lengths > 0).unsqueeze(-1), h, self.no_history.expand(B, -1))


class TransformerBlock(nn.Module):
    """Pre-norm block (single head): x + attn(LN x), then x + FFN(LN x); padding outputs zeroed.

    Used by SASRec (causal) and BERT4Rec (bidirectional).
    """

    def __init__(self, dim: int, dropout: float, causal: bool):
        super().__init__()
        self.causal = causal
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, L, D), mask (B, L) bool True at real positions -> (B, L, D)."""
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)  # 3 x (B, L, D)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed_keys(mask, self.causal))  # (B, L, D)
        x = x + self.dropout(self.out(a))
        x = x + self.dropout(self.ffn(self.ln2(x)))
        return x * mask.unsqueeze(-1)
