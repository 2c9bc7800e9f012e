"""Explanation quality against known truth (the synthetic data knows which aspects drove a rating).

``aspect_coverage``: the share of the aspects that drove ratings which the explanations
mention, pooled over all pairs (micro-average: a pair with three true aspects counts three
times). Matching rule: case-insensitive, whole words, after NFKC; ``_`` and ``-`` in an aspect
name match a space or a hyphen ("live_music" matches "live music" and "live-music"); a
plural "s"/"es" is allowed ("view" matches "views"). Nothing else: no stemming, no synonyms.

``semantic_similarity``: the mean cosine similarity between each explanation and the
consumer's review of the place, pairs without a review skipped.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import torch

from recpie_core.explain.text_encoder import TextEncoder


@lru_cache(maxsize=4096)
def _aspect_pattern(aspect: str) -> re.Pattern:
    words = [re.escape(w) for w in re.split(r"[\s_\-]+", unicodedata.normalize("NFKC", aspect).strip()) if w]
    return re.compile(r"\b" + r"[\s\-]+".join(words) + r"(?:e?s)?\b", re.IGNORECASE)


def mentions(text: str, aspect: str) -> bool:
    """Whether ``text`` mentions ``aspect`` under the module's matching rule."""
    if not aspect.strip():
        return False
    return _aspect_pattern(aspect).search(unicodedata.normalize("NFKC", text or "")) is not None


def aspect_coverage(explanations: Sequence[str], true_aspects: Sequence[Sequence[str]]) -> float:
    """Share of true aspects mentioned by their pair's explanation; NaN if there are none."""
    if len(explanations) != len(true_aspects):
        raise ValueError(f"{len(explanations)} explanations but {len(true_aspects)} aspect lists")
    hits = total = 0
    for text, aspects in zip(explanations, true_aspects):
        for a in aspects:
            total += 1
            hits += mentions(text, a)
    return hits / total if total else math.nan


def semantic_similarity(encoder: TextEncoder, explanations: Sequence[str],
                        review_texts: Sequence[str | None]) -> float:
    """Mean cosine(explanation, review) over pairs with a non-empty review; NaN if none."""
    if len(explanations) != len(review_texts):
        raise ValueError(f"{len(explanations)} explanations but {len(review_texts)} reviews")
    keep = [i for i, r in enumerate(review_texts) if r is not None and str(r).strip()]
    if not keep:
        return math.nan
    a = encoder.encode([explanations[i] for i in keep])  # (M, dim)
    b = encoder.encode([str(review_texts[i]) for i in keep])  # (M, dim)
    return torch.nn.functional.cosine_similarity(a, b, dim=1).mean().item()
