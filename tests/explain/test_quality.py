"""Explanation quality: aspect coverage on hand-made strings (the matching rule) and the
semantic similarity to reviews with a stub encoder."""

import math

import pytest
import torch

from recpie_core.explain.quality import aspect_coverage, mentions, semantic_similarity


@pytest.mark.parametrize("text, aspect, hit", [
    ("Great COFFEE here", "coffee", True),
    ("lovely views of the bay", "view", True),
    ("live music on Fridays", "live_music", True),
    ("live-music nights", "live music", True),
    ("coffeehouse vibe", "coffee", False),  # whole words only
    ("a pricey place", "price", False),  # no stemming beyond a plural s/es
    ("anything", "", False),
])
def test_mentions_rule(text, aspect, hit):
    assert mentions(text, aspect) is hit


def test_aspect_coverage_is_the_share_of_true_aspects_mentioned():
    explanations = ["Good coffee and a quiet room.", "Cheap parking.", "Nothing relevant."]
    truth = [["coffee", "quiet", "wifi"], ["parking"], []]
    assert aspect_coverage(explanations, truth) == pytest.approx(3 / 4)
    assert math.isnan(aspect_coverage(["x"], [[]]))
    with pytest.raises(ValueError):
        aspect_coverage(["x"], [])


class StubEncoder:
    dim = 2
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [1.0, 1.0]}

    def encode(self, texts):
        return torch.tensor([self.table[t] for t in texts])


def test_semantic_similarity_skips_missing_reviews():
    sim = semantic_similarity(StubEncoder(), ["a", "a", "b", "c"], ["a", None, "a", ""])
    assert sim == pytest.approx((1.0 + 0.0) / 2)
    assert math.isnan(semantic_similarity(StubEncoder(), ["a"], [None]))
