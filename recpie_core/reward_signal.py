"""How much of the PIE reward can the explainer change? A diagnostic of the reward recommender.

PIE learns from differences between rewards. A reward R = 1 / (1 + |y_hat - y|) (Eq. 4) moves
for two reasons: the pair (some ratings are easy to predict, some are not) and the explanation
(what the explainer can change). Over a set of rows with their explanations, each row's
explanation embeddings are swapped for those of ``swaps`` other rows of the set, so each row is
scored with K + 1 texts:

- ``within_std``: the mean over rows of the reward's std over those texts: what writing a
  different explanation can do to the reward;
- ``across_std``: the std over rows of each row's mean reward: what the pair alone does;
- ``share`` = within / across: with a batch-mean advantage over B pairs, the part of each
  advantage that the explanation explains is about this share; near 0.02 the update learns
  from the pairs, not from the texts;
- ``own_gain``: the mean reward with each row's own explanations minus the mean with swapped
  ones: positive when the recommender reads something specific to the pair in them.

Scores only; nothing is trained. The reward is Eq. 4's (``explain.pie.rating_reward``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

from recpie_core.data.batches import RatingTensors
from recpie_core.explain.pie import rating_reward
from recpie_core.rec.fit import predict
from recpie_core.rec.recpie_dnn import RecPIEDNN


@dataclass(frozen=True)
class RewardSignal:
    rows: int
    swaps: int
    within_std: float
    across_std: float
    share: float
    own_gain: float

    def as_dict(self) -> dict:
        return asdict(self)


def reward_signal(model: RecPIEDNN, tensors: RatingTensors, swaps: int = 16, seed: int = 0) -> RewardSignal:
    """The reward's spread over explanations and over pairs (see the module docstring)."""
    if tensors.pos_emb is None:
        raise ValueError("reward_signal needs rows with explanation embeddings (pos_emb)")
    n = len(tensors)
    if n < 2 or swaps < 1:
        raise ValueError(f"need at least 2 rows and 1 swap, got {n} rows and {swaps} swaps")
    g = torch.Generator().manual_seed(seed)
    rewards = [rating_reward(predict(model, tensors), tensors.rating)]
    for _ in range(swaps):
        # each row takes the explanations of another row (never its own)
        other = (torch.arange(n) + torch.randint(1, n, (n,), generator=g)) % n
        swapped = replace(tensors, pos_emb=tensors.pos_emb[other],
                          neg_emb=None if tensors.neg_emb is None else tensors.neg_emb[other])
        rewards.append(rating_reward(predict(model, swapped), tensors.rating))
    r = torch.stack(rewards, 1).double()  # (N, K + 1), column 0: the row's own explanations
    within, across = r.std(1).mean().item(), r.mean(1).std().item()
    return RewardSignal(rows=n, swaps=swaps, within_std=within, across_std=across,
                        share=within / across if across > 0 else float("nan"),
                        own_gain=(r[:, 0] - r[:, 1:].mean(1)).mean().item())
