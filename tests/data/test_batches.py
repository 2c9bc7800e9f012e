"""Encoding the split table into the typed batch: ids, left padding, unit scale, no test leakage."""

import polars as pl
import pytest
import torch

from recpie_core.data.batches import load_rating_data, make_loader, to_stars, to_unit

SPLIT = pl.DataFrame({
    "user_id": ["u1", "u1", "u1", "u2", "u2"],
    "place_id": ["a", "b", "c", "a", "d"],
    "rating": [5, 4, 3, 1, 5],
    "ts": [1, 2, 3, 1, 2],
    "split": ["train", "train", "test", "train", "test"],
    "valid": [False, True, False, False, False],
    "hist_place_ids": [[], ["a"], ["a", "b"], [], ["a"]],
    "hist_ratings": [[], [5], [5, 4], [], [1]],
})
PLACES = pl.DataFrame({"place_id": ["a", "b", "c"], "category": [["Cafe"], ["Bar", "Pub"], None]})


def test_parts_ids_and_padding():
    data = load_rating_data(SPLIT, PLACES, hist_len=3)
    assert (len(data.train), len(data.valid), len(data.test)) == (2, 1, 2)
    assert data.vocab.n_users == 3 and data.vocab.n_places == 3  # a, b seen in training, + unknown 0
    test = data.test
    assert test.place.tolist() == [0, 0]  # c and d never seen in training
    assert test.hist_place.tolist() == [[0, 1, 2], [0, 0, 1]]  # left-padded, newest last
    assert test.hist_mask.tolist() == [[False, True, True], [False, False, True]]
    assert test.hist_rating[0].tolist() == [0.0, 1.0, 0.75]
    assert data.valid.category.tolist() == [data.vocab.categories["Bar"]]


def test_histories_longer_than_hist_len_keep_the_newest():
    data = load_rating_data(SPLIT, PLACES, hist_len=1)
    assert data.test.hist_place.tolist() == [[2], [1]]


def test_unit_scale_round_trip():
    assert to_unit(torch.tensor([1.0, 5.0])).tolist() == [0.0, 1.0]
    assert to_stars(to_unit(3.0)) == 3.0


def test_loader_covers_every_row_once_and_is_seeded():
    data = load_rating_data(SPLIT, PLACES, hist_len=3)
    def users() -> torch.Tensor:
        loader = make_loader(data.test, 1, shuffle=True, generator=torch.Generator().manual_seed(0))
        return torch.cat([b.user for b in loader])

    seen, again = users(), users()
    assert sorted(seen.tolist()) == sorted(data.test.user.tolist()) and seen.tolist() == again.tolist()


def test_explanation_shapes_are_checked():
    data = load_rating_data(SPLIT, PLACES, hist_len=3)
    ok = data.test.with_explanations(torch.zeros(2, 4), torch.ones(2, 4))
    assert ok.batch(torch.tensor([1])).neg_emb.shape == (1, 4)
    with pytest.raises(ValueError, match="explanation embeddings"):
        data.test.with_explanations(torch.zeros(3, 4), torch.zeros(3, 4))


def test_empty_training_table_is_a_clear_error():
    with pytest.raises(ValueError, match="no training rows"):
        load_rating_data(SPLIT.filter(pl.col("split") == "test"), PLACES)


def test_tensors_move_with_their_keys():
    data = load_rating_data(SPLIT, PLACES, hist_len=3)
    moved = data.test.to("cpu")
    assert type(moved) is type(data.test) and moved.keys is data.test.keys
    assert torch.equal(moved.hist_place, data.test.hist_place)
