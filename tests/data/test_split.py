"""The Mountain View filter and the user-temporal split (sql/) on hand-made tables with known answers."""

import math

import polars as pl
import pytest

from recpie_core.data.split import FilterConfig, SplitConfig, split_leaks, split_user_temporal
from recpie_core.sql import run_sql

PLACES = pl.DataFrame({
    "place_id": ["mv1", "mv2", "mv_plus4", "sf", "noaddr", "nozip", "edge_low", "edge_high", "just_out"],
    "address": [
        "Cafe A, 1 Castro St, Mountain View, CA 94041",
        "Bar B, 2 El Camino Real, Mountain View, CA 94040",
        "Gym C, 3 Shoreline Blvd, Mountain View, CA 94043-1351",
        "Diner D, 4 Market St, San Francisco, CA 94103",
        None,
        "Park E, somewhere without a zip",
        "Lab F, Moffett Field, CA 94035",
        "Shop G, 1 Main St, CA 94043",
        "Shop H, Palo Alto, CA 94044",
    ],
})

REVIEWS = pl.DataFrame(
    [
        # alice: 2 in range, 1 outside -> kept whole in 'users' mode
        ("alice", "mv1", 5, 10), ("alice", "sf", 3, 20), ("alice", "mv_plus4", 4, 30),
        # bob: never in range
        ("bob", "sf", 4, 10), ("bob", "noaddr", 2, 20), ("bob", "nozip", 1, 30), ("bob", "just_out", 5, 40),
        # carol: one in-range rating (edge zip 94035) among outside ones
        ("carol", "edge_low", 4, 10), ("carol", "sf", 5, 11), ("carol", "noaddr", 3, 12),
        # dave: a single in-range rating only (fails min_ratings=2)
        ("dave", "edge_high", 5, 10),
    ],
    schema=["user_id", "place_id", "rating", "ts"], orient="row",
)


def mv(mode: str, min_ratings: int = 2, **kw) -> pl.DataFrame:
    return run_sql("mountain_view_ratings", {"raw_reviews": REVIEWS, "raw_places": PLACES},
                   {"zip_min": 94035, "zip_max": 94043, "mode": mode, "min_ratings": min_ratings, **kw})


def test_users_mode_keeps_every_rating_of_users_with_one_in_range():
    out = mv("users")
    assert sorted(out["user_id"].unique()) == ["alice", "carol"]
    assert out.height == 6  # alice 3 + carol 3; bob never in range; dave below min_ratings


def test_places_mode_keeps_only_in_range_places():
    out = mv("places", min_ratings=1)
    assert sorted(out["place_id"].to_list()) == ["edge_high", "edge_low", "mv1", "mv_plus4"]


def test_zip_plus4_edges_and_null_addresses():
    out = mv("places", min_ratings=1)
    assert "mv_plus4" in out["place_id"].to_list()  # ZIP+4 parsed
    assert {"noaddr", "nozip", "just_out", "sf"}.isdisjoint(out["place_id"].to_list())


def test_min_ratings_and_zip_range_are_parameters():
    assert mv("places", min_ratings=2)["user_id"].unique().to_list() == ["alice"]
    narrow = run_sql("mountain_view_ratings", {"raw_reviews": REVIEWS, "raw_places": PLACES},
                     {"zip_min": 94041, "zip_max": 94041, "mode": "places", "min_ratings": 1})
    assert narrow["place_id"].to_list() == ["mv1"]


def test_filter_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mode"):
        FilterConfig(mode="zips")
    with pytest.raises(ValueError, match="min_ratings"):
        FilterConfig(min_ratings=1)


def ratings_table(n_users=30, seed=0) -> pl.DataFrame:
    import random
    rng = random.Random(seed)
    rows = []
    for u in range(n_users):
        for _ in range(rng.randint(2, 25)):
            # coarse timestamps force ties, broken by place_id
            rows.append((f"u{u}", f"p{rng.randint(0, 40)}", rng.randint(1, 5), rng.randint(0, 12)))
    df = pl.DataFrame(rows, schema=["user_id", "place_id", "rating", "ts"], orient="row")
    return df.unique(["user_id", "place_id", "ts"], keep="first", maintain_order=True)


@pytest.fixture
def split(tmp_path):
    out = tmp_path / "user_temporal_split.parquet"
    split_user_temporal(ratings_table(), SplitConfig(test_frac=0.2, valid_frac=0.25, hist_len=4), out)
    return pl.read_parquet(out)


def test_split_fractions_per_user(split):
    per_user = split.group_by("user_id").agg(
        pl.len().alias("n"), (pl.col("split") == "train").sum().alias("n_train"),
        pl.col("valid").sum().alias("n_valid"))
    for n, n_train, n_valid in per_user.select("n", "n_train", "n_valid").iter_rows():
        assert n_train == max(1, int(n * 0.8))
        assert n_valid == min(n_train - 1, math.ceil(n_train * 0.25))


def test_split_invariants_hold(split):
    assert split_leaks(split) == {"test_older_than_train": 0, "out_of_order": 0, "history_lookahead": 0,
                                  "bad_split_values": 0, "n_rows": split.height}


def test_history_is_the_previous_ratings_newest_last(split):
    for _, rows in split.sort("pos").group_by("user_id", maintain_order=True):
        places, ratings = rows["place_id"].to_list(), rows["rating"].to_list()
        for i, (h, hr) in enumerate(zip(rows["hist_place_ids"].to_list(), rows["hist_ratings"].to_list())):
            assert h == places[max(0, i - 4):i]
            assert hr == ratings[max(0, i - 4):i]


def test_test_rows_are_the_newest(split):
    for _, rows in split.group_by("user_id"):
        train = rows.filter(pl.col("split") == "train")
        test = rows.filter(pl.col("split") == "test")
        if test.height:
            assert train["pos"].max() < test["pos"].min()
            assert train["ts"].max() <= test["ts"].min()
        valid = train.filter(pl.col("valid"))
        if valid.height:
            assert valid["pos"].min() > train.filter(~pl.col("valid"))["pos"].max()


def test_split_is_deterministic_under_row_order(tmp_path):
    df = ratings_table()
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    cfg = SplitConfig(hist_len=3)
    split_user_temporal(df, cfg, a)
    split_user_temporal(df.sample(fraction=1.0, shuffle=True, seed=3), cfg, b)
    assert pl.read_parquet(a).equals(pl.read_parquet(b))


def test_leak_check_catches_corruption(split):
    newest_test = (pl.col("split") == "test") & (pl.col("pos") == pl.col("pos").max().over("user_id"))
    older = split.with_columns(pl.when(newest_test).then(-1).otherwise(pl.col("ts")).alias("ts"))
    assert split_leaks(older)["test_older_than_train"] > 0
    shifted = split.with_columns(pl.col("hist_place_ids").list.reverse())
    assert split_leaks(shifted)["history_lookahead"] > 0
