"""The Mountain View filter and the user-temporal split."""

import dagster as dg
import polars as pl

from recpie_assets.metadata import table_metadata
from recpie_assets.resources import RecpieResource
from recpie_core.data.split import filter_mountain_view, split_summary, split_user_temporal
from recpie_core.io import scan_table


@dg.asset(deps=["raw_reviews", "raw_places"], kinds={"duckdb", "parquet"}, group_name="data")
def mountain_view_ratings(recpie: RecpieResource) -> dg.MaterializeResult:
    """Ratings kept by the zip filter (``sql/mountain_view_ratings.sql``), one row per rating."""
    home, cfg = recpie.paths, recpie.get_profile().filter
    filter_mountain_view(home.table("raw_reviews"), home.table("raw_places"), cfg, home.table("mountain_view_ratings"))
    stats = scan_table(home.table("mountain_view_ratings")).select(
        pl.col("user_id").n_unique().alias("users"), pl.col("place_id").n_unique().alias("places")).collect()
    return dg.MaterializeResult(metadata={
        **table_metadata(home.table("mountain_view_ratings")),
        "mode": cfg.mode, "zip_range": f"{cfg.zip_min}-{cfg.zip_max}", "min_ratings": cfg.min_ratings,
        "users": stats["users"].item(), "places": stats["places"].item(),
    })


@dg.asset(deps=[mountain_view_ratings], kinds={"duckdb", "parquet"}, group_name="data")
def user_temporal_split(recpie: RecpieResource) -> dg.MaterializeResult:
    """Per user, oldest ratings train and newest test (``sql/user_temporal_split.sql``), with histories."""
    home, cfg = recpie.paths, recpie.get_profile().split
    split_user_temporal(home.table("mountain_view_ratings"), cfg, home.table("user_temporal_split"))
    summary = split_summary(pl.read_parquet(home.table("user_temporal_split"),
                                            columns=["user_id", "place_id", "split", "valid"]))
    return dg.MaterializeResult(metadata={
        **table_metadata(home.table("user_temporal_split")),
        **summary, "test_frac": cfg.test_frac, "valid_frac": cfg.valid_frac, "hist_len": cfg.hist_len,
    })
