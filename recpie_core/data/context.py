"""What the explainer is told about a rating row: the consumer's history and the candidate.

One row per row of the split table, keyed by (user_id, place_id, ts). Text fields come
from ``raw_places`` unchanged (untrusted: the prompt builder sanitises them).
"""

from __future__ import annotations

import polars as pl

KEY = ("user_id", "place_id", "ts")
UNKNOWN_PLACE = "an unknown place"


def place_labels(places: pl.DataFrame) -> pl.DataFrame:
    """place_id -> place_name, place_description, place_category (the first category)."""
    return places.select(
        "place_id",
        pl.col("name").fill_null("an unnamed place").alias("place_name"),
        pl.col("description").alias("place_description"),
        pl.col("category").list.first().alias("place_category"),
    )


def row_contexts(rows: pl.DataFrame, places: pl.DataFrame, max_history: int = 10) -> pl.DataFrame:
    """For each split row: ``history``, a list (oldest first, at most ``max_history`` of the
    newest) of structs ``{name, category, description, rating}`` (the consumer's own stars),
    and ``place_name``, ``place_category``, ``place_description`` of the candidate.
    Rows keep their order; places missing from ``raw_places`` read as "an unknown place".
    """
    labels = place_labels(places).unique("place_id", keep="first")
    out = rows.select(*KEY, "hist_place_ids", "hist_ratings").with_row_index("_row")
    history = (
        out.select("_row", pl.col("hist_place_ids").list.tail(max_history).alias("hid"),
                   pl.col("hist_ratings").list.tail(max_history).alias("hr"))
        .explode("hid", "hr")
        .with_row_index("_pos")
        .join(labels, left_on="hid", right_on="place_id", how="left")
        .filter(pl.col("hid").is_not_null())
        .sort("_pos")
        .group_by("_row", maintain_order=True)
        .agg(pl.struct(name=pl.col("place_name").fill_null(UNKNOWN_PLACE), category="place_category",
                       description="place_description", rating="hr").alias("history"))
    )
    out = (out.join(history, on="_row", how="left")
           .join(labels, on="place_id", how="left", maintain_order="left"))
    return out.with_columns(pl.col("place_name").fill_null(UNKNOWN_PLACE),
                            pl.col("history").fill_null([])).sort("_row").drop(
        "_row", "hist_place_ids", "hist_ratings")
