"""The synthetic generator: Google Local format, realistic quirks, determinism, and a truth
that really drives the ratings and the text. Small configs, files in tmp_path."""

import gzip
import json
import re
from pathlib import Path

import polars as pl
import pytest

from recpie_core.data.synthetic import (
    ASPECTS,
    SyntheticConfig,
    load_place_truth,
    load_truth,
    write_synthetic_google_local,
)

CFG = SyntheticConfig(n_users=200, n_places=150, seed=3)
REVIEW_KEYS = {"user_id", "name", "time", "rating", "text", "pics", "resp", "gmap_id"}
GMAP_ID = re.compile(r"^0x[0-9a-f]{1,16}:0x[0-9a-f]{1,16}$")
ZIP = re.compile(r", ([A-Za-z ]+), CA (\d{5})(-\d{4})?$")
MS_2016, MS_2022 = 1451606400000, 1640995200000


def read_lines(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("synthetic")
    summary = write_synthetic_google_local(CFG, out_dir)
    reviews = read_lines(summary.paths["review"])
    meta = read_lines(summary.paths["meta"])
    return summary, reviews, meta, load_truth(out_dir), load_place_truth(out_dir)


def test_summary_counts_what_was_written(out):
    summary, reviews, meta, truth, places = out
    assert summary.n_reviews == len(reviews) == truth.height
    assert summary.n_meta_lines == len(meta) > summary.n_places == places.height == CFG.n_places
    assert summary.paths["review"].name == "review-California.json.gz"
    assert summary.paths["meta"].name == "meta-California.json.gz"
    assert len(ASPECTS) >= 30
    users = pl.read_parquet(summary.paths["truth_users"])
    assert users.height == CFG.n_users and users["likes"].list.len().min() >= 3


def test_reviews_have_the_google_local_fields_and_types(out):
    _, reviews, _, _, _ = out
    for r in reviews:
        assert set(r) == REVIEW_KEYS
        assert re.fullmatch(r"\d{21}", r["user_id"]) and GMAP_ID.match(r["gmap_id"])
        assert isinstance(r["name"], str) and r["name"]
        assert isinstance(r["time"], int) and MS_2016 <= r["time"] < MS_2022
        assert isinstance(r["rating"], int) and 1 <= r["rating"] <= 5
        assert r["text"] is None or isinstance(r["text"], str)
        assert r["pics"] is None or all(isinstance(p["url"], list) for p in r["pics"])
        resp = r["resp"]
        assert resp is None or (resp["time"] > r["time"] and isinstance(resp["text"], str))
    for key in ("text", "pics", "resp"):
        assert any(r[key] is None for r in reviews) and any(r[key] is not None for r in reviews)


def test_times_increase_within_each_user(out):
    _, reviews, _, _, _ = out
    last: dict[str, int] = {}
    count: dict[str, int] = {}
    for r in reviews:
        assert r["time"] > last.get(r["user_id"], 0)
        last[r["user_id"]] = r["time"]
        count[r["user_id"]] = count.get(r["user_id"], 0) + 1
    assert len(count) == CFG.n_users and min(count.values()) >= CFG.ratings_per_user_min


def test_ratings_skew_high_as_on_google_maps(out):
    _, reviews, _, _, _ = out
    share = {s: sum(r["rating"] == s for r in reviews) / len(reviews) for s in range(1, 6)}
    assert 0.45 <= share[5] <= 0.58 and 0.2 <= share[4] <= 0.32 and 0.04 <= share[1] <= 0.09


def test_meta_has_duplicates_nulls_and_missing_keys(out):
    _, _, meta, _, places = out
    by_id: dict[str, list[dict]] = {}
    for m in meta:
        assert GMAP_ID.match(m["gmap_id"]) and isinstance(m["latitude"], float)
        by_id.setdefault(m["gmap_id"], []).append(m)
    assert set(by_id) == set(places["place_id"])
    duplicates = [rows for rows in by_id.values() if len(rows) > 1]
    assert duplicates and all(rows[0] == rows[1] for rows in duplicates)
    assert any(m["address"] is None for m in meta) and any(m.get("price", 0) is None for m in meta)
    assert any("MISC" not in m or "state" not in m or "hours" not in m for m in meta)
    assert all(isinstance(m["category"], list) for m in meta if m.get("category") is not None)


def test_addresses_cover_mountain_view_and_elsewhere(out):
    _, _, meta, _, _ = out
    found = [ZIP.search(m["address"]).groups() for m in meta if m["address"] is not None]
    in_mv = [(city, z) for city, z, _ in found if 94035 <= int(z) <= 94043]
    assert in_mv and len(in_mv) < len(found)
    assert {city for city, _ in in_mv} <= {"Mountain View", "Moffett Field"}
    assert any(plus4 for _, _, plus4 in found)


def test_some_users_rate_both_sides_and_some_only_outside(out):
    _, _, _, truth, places = out
    per_user = (truth.join(places.select("place_id", "in_mountain_view"), on="place_id")
                .group_by("user_id").agg(pl.col("in_mountain_view").sum().alias("n_mv"), pl.len()))
    assert per_user.filter((pl.col("n_mv") > 0) & (pl.col("n_mv") < pl.col("len"))).height > 0
    assert per_user.filter(pl.col("n_mv") == 0).height > 0


def test_truth_is_aligned_with_the_review_file(out):
    _, reviews, _, truth, _ = out
    keys = [(r["user_id"], r["gmap_id"], r["time"], r["rating"]) for r in reviews]
    assert keys == list(truth.select("user_id", "place_id", "ts", "rating").iter_rows())


def test_rating_follows_the_latent_aspects(out):
    _, _, _, truth, _ = out
    liked = truth.filter(pl.col("liked_aspects").list.len() > 0)["rating"].mean()
    disliked = truth.filter(pl.col("disliked_aspects").list.len() > 0)["rating"].mean()
    assert liked > disliked + 0.6
    score = pl.col("score")
    by_star = truth.group_by("rating").agg(score.min().alias("lo"), score.max().alias("hi"))
    lo_hi = by_star.sort("rating").select("lo", "hi").rows()
    assert all(hi < next_lo for (_, hi), (next_lo, _) in zip(lo_hi, lo_hi[1:]))  # stars = cut score


def test_recent_visits_of_a_category_lower_the_rating(out):
    _, _, _, truth, _ = out
    by_recent = truth.group_by(pl.col("n_recent_same_category") > 0).agg(pl.col("rating").mean())
    means = dict(by_recent.iter_rows())
    assert means[False] > means[True] + 0.15  # repeat_effect < 0: satiation


def test_text_names_the_aspects_that_drove_the_rating(out):
    _, reviews, _, truth, _ = out
    with_text = 0
    for r, liked, disliked in zip(reviews, truth["liked_aspects"], truth["disliked_aspects"]):
        if r["text"] is not None:
            with_text += 1
            assert all(a in r["text"] for a in [*liked, *disliked])
    assert 0.6 * len(reviews) < with_text < 0.9 * len(reviews)


def test_descriptions_mention_the_place_aspects(out):
    _, _, meta, _, places = out
    aspects = dict(places.select("place_id", "aspects").iter_rows())
    for m in meta:
        assert 2 <= len(aspects[m["gmap_id"]]) <= 4
        assert all(a.lower() in m["description"].lower() for a in aspects[m["gmap_id"]])


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    small = SyntheticConfig(n_users=40, n_places=30, seed=7)
    runs = [write_synthetic_google_local(cfg, tmp_path / name).paths for cfg, name in
            [(small, "a"), (small, "b"), (SyntheticConfig(n_users=40, n_places=30, seed=8), "c")]]
    for key in runs[0]:
        assert runs[0][key].read_bytes() == runs[1][key].read_bytes(), key
    assert runs[0]["review"].read_bytes() != runs[2]["review"].read_bytes()


@pytest.mark.parametrize("bad", [dict(mountain_view_share=0.0), dict(n_places=5),
                                 dict(star_shares=(0.5, 0.5)), dict(ratings_per_user_mean=4.0)])
def test_config_rejects_impossible_values(bad):
    with pytest.raises(ValueError):
        SyntheticConfig(**bad)
