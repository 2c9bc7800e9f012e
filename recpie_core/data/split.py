"""The Mountain View filter and the user-temporal split (SQL in ``sql/``), with their checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from recpie_core.sql import Input, run_sql, sql_to_parquet

FILTER_MODES = ("users", "places")


@dataclass(frozen=True)
class FilterConfig:
    zip_min: int = 94035  # inclusive zip range of "Mountain View" (the paper's zip codes)
    zip_max: int = 94043
    mode: str = "users"  # 'users': all ratings of users with >= 1 rating in range; 'places': only in-range places
    min_ratings: int = 5  # users with fewer kept ratings are dropped

    def __post_init__(self):
        if self.mode not in FILTER_MODES:
            raise ValueError(f"filter mode must be one of {FILTER_MODES}, got {self.mode!r}")
        if not (0 <= self.zip_min <= self.zip_max <= 99999):
            raise ValueError(f"zip range {self.zip_min}-{self.zip_max} is not a range of 5-digit zips")
        if self.min_ratings < 2:
            raise ValueError("min_ratings must be at least 2: a user needs a train and a test rating")


@dataclass(frozen=True)
class SplitConfig:
    test_frac: float = 0.2  # newest share of each user's ratings held out for test
    valid_frac: float = 0.1  # newest share of each user's train ratings used for model selection
    hist_len: int = 20  # most recent places carried in each row's history

    def __post_init__(self):
        if not 0 < self.test_frac < 1:
            raise ValueError(f"test_frac must be in (0, 1), got {self.test_frac}")
        if not 0 <= self.valid_frac < 1:
            raise ValueError(f"valid_frac must be in [0, 1), got {self.valid_frac}")
        if self.hist_len < 1:
            raise ValueError(f"hist_len must be >= 1, got {self.hist_len}")


def filter_mountain_view(raw_reviews: Input, raw_places: Input, cfg: FilterConfig, out: Path) -> int:
    """``sql/mountain_view_ratings.sql`` -> ``out`` (one row per rating). Returns the row count."""
    return sql_to_parquet("mountain_view_ratings", {"raw_reviews": raw_reviews, "raw_places": raw_places},
                          asdict(cfg), out)


def split_user_temporal(ratings: Input, cfg: SplitConfig, out: Path) -> int:
    """``sql/user_temporal_split.sql`` -> ``out`` (one row per rating). Returns the row count."""
    return sql_to_parquet("user_temporal_split", {"mountain_view_ratings": ratings}, asdict(cfg), out)


def split_leaks(split: Input) -> dict[str, int]:
    """Violation counts of the split's invariants; all zero for a sound split.

    test_older_than_train: test ratings older than the same user's newest train rating;
    out_of_order: positions that do not follow the (ts, place_id) order;
    history_lookahead: history items that are not exactly the ratings before their row;
    bad_split_values: rows whose split is neither 'train' nor 'test'.
    """
    row = run_sql("split_leaks", {"user_temporal_split": split}, {}).row(0, named=True)
    return {k: int(v) for k, v in row.items()}


def split_summary(split: pl.DataFrame) -> dict[str, int]:
    """Row, user and place counts per split part, for asset metadata."""
    parts = {
        "train": (pl.col("split") == "train") & ~pl.col("valid"),
        "valid": (pl.col("split") == "train") & pl.col("valid"),
        "test": pl.col("split") == "test",
    }
    out = {"users": split["user_id"].n_unique(), "places": split["place_id"].n_unique()}
    for name, cond in parts.items():
        out[f"{name}_rows"] = split.filter(cond).height
    return out
