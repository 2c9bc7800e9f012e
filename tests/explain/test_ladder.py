"""The explanation ladder's texts: direct texts fill the positive slot only, the ideal texts
state the truth's liked and disliked aspects, and a missing truth row is an error."""

import polars as pl
import pytest

from recpie_core.explain.ladder import find_review_truth, ideal_text, ladder_texts

PROMPTS = pl.DataFrame({"user_id": ["u", "v"], "place_id": ["a", "b"], "ts": [1, 2],
                        "candidate_text": ['"A" ("Cafe")', '"B" ("Bar")'],
                        "input_text": ["Candidate: A. History: x.", "Candidate: B. History: y."]})
TRUTH = pl.DataFrame({"user_id": ["v", "u"], "place_id": ["b", "a"], "ts": [2, 1],
                      "liked_aspects": [["live music", "craft beer", "happy hour deals"], []],
                      "disliked_aspects": [[], ["long wait"]]})


def test_direct_rungs_fill_the_positive_slot_only():
    cand = ladder_texts("text_candidate", PROMPTS)
    assert cand["pos_text"].to_list() == PROMPTS["candidate_text"].to_list()
    assert cand["neg_text"].null_count() == 2
    assert ladder_texts("text_prompt", PROMPTS)["pos_text"].to_list() == PROMPTS["input_text"].to_list()


def test_ideal_texts_name_the_true_aspects_in_row_order():
    ideal = ladder_texts("ideal", PROMPTS, TRUTH)
    assert ideal.select("user_id").to_series().to_list() == ["u", "v"]
    assert ideal["pos_text"].to_list() == [ideal_text([], "pos"),
                                           "This consumer would enjoy the live music, craft beer and happy hour deals."]
    assert ideal["neg_text"].to_list() == ["This consumer would be put off by the long wait.", ideal_text([], "neg")]


def test_ideal_needs_a_truth_row_for_every_row():
    with pytest.raises(ValueError, match="1 of 2 rows have no truth row"):
        ladder_texts("ideal", PROMPTS, TRUTH.head(1))
    with pytest.raises(ValueError, match="needs the synthetic truth"):
        ladder_texts("ideal", PROMPTS, None)
    with pytest.raises(ValueError, match="unknown ladder rung"):
        ladder_texts("oracle", PROMPTS)


def test_find_review_truth_skips_the_place_and_user_truth(tmp_path):
    assert find_review_truth(tmp_path) is None and find_review_truth(None) is None
    for name in ("truth-places-CA.parquet", "truth-users-CA.parquet", "truth-CA.parquet"):
        (tmp_path / name).write_bytes(b"")
    assert find_review_truth(tmp_path).name == "truth-CA.parquet"
