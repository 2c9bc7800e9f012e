"""The direct-recommendation baseline (paper Table 7): ask the LLM for the rating itself.

The prompt is ``prompts.direct_prompt`` (history and candidate, "Answer with a single
digit"), the reply started with ``reply_prefix`` ("Rating:"); the reply's first standalone
digit 1-5 is the rating. A reply without one gets the fallback (the caller passes the
training mean, on the unit scale), and the fallbacks are counted: a model that rarely answers
with a digit is not a rating model, and the count says so.
Predictions are returned on the unit scale (r - 1) / 4, like every rating model's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from recpie_core.explain.direct_config import DirectConfig
from recpie_core.explain.explainer import Explainer

_RATING = re.compile(r"(?<![\d.])([1-5])(?![\d])")  # a digit 1-5 not inside a longer number


@dataclass
class DirectResult:
    pred_unit: Tensor  # (N,) predicted ratings on the unit scale
    n_fallback: int  # replies without a rating, given the fallback
    replies: list[str]  # what the LLM wrote


def parse_rating(text: str) -> int | None:
    """The first standalone digit 1-5 in ``text`` ("4", "Rating: 4/5", "4.5" -> 4), or None."""
    m = _RATING.search(text or "")
    return int(m.group(1)) if m else None


def direct_predict(explainer: Explainer, prompts: Sequence[str], fallback_unit: float,
                   cfg: DirectConfig = DirectConfig(), user_vecs: Tensor | None = None) -> DirectResult:
    """Ratings the LLM states for each prompt; ``user_vecs`` adds the soft prompt (default: none)."""
    if not 0.0 <= fallback_unit <= 1.0:
        raise ValueError(f"fallback_unit is on the unit scale [0, 1], got {fallback_unit}")
    replies = explainer.generate(prompts, user_vecs, max_new_tokens=cfg.max_new_tokens,
                                 batch_size=cfg.batch_size, seed=cfg.seed, greedy=cfg.greedy,
                                 system=cfg.system_prompt, reply_prefix=cfg.reply_prefix)
    ratings = [parse_rating(r) for r in replies]
    pred = torch.tensor([(r - 1) / 4 if r is not None else fallback_unit for r in ratings], dtype=torch.float32)
    return DirectResult(pred_unit=pred, n_fallback=sum(r is None for r in ratings), replies=replies)
