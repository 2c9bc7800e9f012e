"""The Mountain View filter and the user-temporal split."""

from pathlib import Path

import dagster as dg
import polars as pl

from recpie_assets.metadata import table_metadata
from recpie_assets.resources import RecpieResource
from recpie_core.data.split import filter_mountain_view, split_summary, split_user_temporal
from recpie_core.io import scan_table


@dg.asset(kinds={"duckdb", "parquet"}, group_name="data")
def mountain_view_ratings(recpie: RecpieResource, raw_reviews: Path, raw_places: Path) -> dg.MaterializeResult:
    """Ratings kept by the zip filter (``sql/mountain_view_ratings.sql``), one row per rating."""
    out, cfg = recpie.paths.table("mountain_view_ratings"), recpie.get_profile().filter
    filter_mountain_view(raw_reviews, raw_places, cfg, out)
    stats = scan_table(out).select(pl.col("user_id").n_unique().alias("users"),
                                   pl.col("place_id").n_unique().alias("places")).collect()
    return dg.MaterializeResult(metadata={
        **table_metadata(out),
        "mode": cfg.mode, "zip_range": f"{cfg.zip_min}-{cfg.zip_max}", "min_ratings": cfg.min_ratings,
        "users": stats["users"].item(), "places": stats["places"].item(),
    })


@dg.asset(kinds={"duckdb", "parquet"}, group_name="data")
def user_temporal_split(recpie: RecpieResource, mountain_view_ratings: Path) -> dg.MaterializeResult:
    """Per user, oldest ratings train and newest test (``sql/user_temporal_split.sql``), with histories."""
    out, cfg = recpie.paths.table("user_temporal_split"), recpie.get_profile().split
    split_user_temporal(mountain_view_ratings, cfg, out)
    summary = split_summary(pl.read_parquet(out, columns=["user_id", "place_id", "split", "valid"]))
    return dg.MaterializeResult(metadata={
        **table_metadata(out),
        **summary, "test_frac": cfg.test_frac, "valid_frac": cfg.valid_frac, "hist_len": cfg.hist_len,
    })
