"""Row contexts: each split row's history as the prompt shows it (name, category, description,
the consumer's rating), newest places kept, unknown places named as such, row order kept."""

import polars as pl

from recpie_core.data.context import row_contexts

ROWS = pl.DataFrame({"user_id": ["u", "u", "v"], "place_id": ["a", "b", "c"], "ts": [1, 2, 3],
                     "hist_place_ids": [[], ["a"], ["a", "zz", "b"]], "hist_ratings": [[], [4], [5, 1, 3]]},
                    schema_overrides={"hist_ratings": pl.List(pl.Int32)})
PLACES = pl.DataFrame({"place_id": ["a", "b", "c"], "name": ["A", None, "C"], "description": ["da", "db", None],
                       "category": [["Cafe"], None, ["Bar", "Pub"]]})


def test_history_carries_category_description_and_rating_of_the_newest_places():
    ctx = row_contexts(ROWS, PLACES, max_history=2)
    assert ctx.select("user_id", "place_id", "ts").rows() == ROWS.select("user_id", "place_id", "ts").rows()
    first, second, third = ctx["history"].to_list()
    assert first == []
    assert second == [{"name": "A", "category": "Cafe", "description": "da", "rating": 4}]
    assert third == [{"name": "an unknown place", "category": None, "description": None, "rating": 1},
                     {"name": "an unnamed place", "category": None, "description": "db", "rating": 3}]
    assert ctx["place_category"].to_list() == ["Cafe", None, "Bar"]
    assert ctx["place_name"].to_list() == ["A", "an unnamed place", "C"]
