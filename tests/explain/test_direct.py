"""Direct-recommendation baseline: rating parsing and the fallback count, with a stub LLM."""

import pytest

from recpie_core.explain.direct import DirectConfig, direct_predict, parse_rating


@pytest.mark.parametrize("reply, rating", [
    ("4", 4), (" 5\n\nThe consumer", 5), ("Rating: 3/5", 3), ("4.5 out of 5", 4),
    ("I'd say 10/10, so 2", 2), ("seven", None), ("0", None), ("", None),
])
def test_parse_rating(reply, rating):
    assert parse_rating(reply) == rating


class StubExplainer:
    def __init__(self, replies):
        self.replies, self.calls = replies, []

    def generate(self, prompts, user_vecs, **kw):
        self.calls.append(kw)
        return self.replies[: len(prompts)]


def test_direct_predict_scales_ratings_and_counts_fallbacks():
    stub = StubExplainer(["5", "no idea", "1", "3 stars"])
    out = direct_predict(stub, ["p"] * 4, fallback_unit=0.8)
    assert out.pred_unit.tolist() == pytest.approx([1.0, 0.8, 0.0, 0.5])
    assert out.n_fallback == 1
    assert stub.calls[0]["greedy"] is True and stub.calls[0]["reply_prefix"] == "Rating:"
    with pytest.raises(ValueError):
        direct_predict(stub, ["p"], fallback_unit=4.0)  # stars, not the unit scale
    with pytest.raises(ValueError):
        DirectConfig(max_new_tokens=0)
