"""What the explainer is told about a rating row: the history as place names, the candidate.

One row per row of the split table, keyed by (user_id, place_id, ts). Text fields come
from ``raw_places`` unchanged (untrusted: the prompt builder sanitises them).
"""

from __future__ import annotations

import polars as pl

KEY = ("user_id", "place_id", "ts")


def place_labels(places: pl.DataFrame) -> pl.DataFrame:
    """place_id -> label "Name (Category)", name, description."""
    return places.select(
        "place_id",
        pl.col("name").fill_null("an unnamed place").alias("place_name"),
        pl.col("description").alias("place_description"),
        pl.col("category").list.first().alias("place_category"),
    ).with_columns(
        pl.when(pl.col("place_category").is_not_null())
        .then(pl.format("{} ({})", pl.col("place_name"), pl.col("place_category")))
        .otherwise(pl.col("place_name")).alias("label")
    )


def row_contexts(rows: pl.DataFrame, places: pl.DataFrame, max_history: int = 10) -> pl.DataFrame:
    """For each split row: ``history`` (list of "Name (Category)", oldest first, at most
    ``max_history`` of the newest), ``place_name``, ``place_category``, ``place_description``.
    Rows keep their order; places missing from ``raw_places`` read as "an unknown place".
    """
    labels = place_labels(places)
    label_of = dict(zip(labels["place_id"].to_list(), labels["label"].to_list()))
    out = rows.select(*KEY, "hist_place_ids").with_row_index("_row")
    history = out["hist_place_ids"].list.tail(max_history).list.eval(
        pl.element().replace_strict(label_of, default="an unknown place", return_dtype=pl.String))
    out = out.with_columns(history.alias("history")).join(
        labels.select("place_id", "place_name", "place_category", "place_description"),
        on="place_id", how="left", maintain_order="left")
    return out.with_columns(pl.col("place_name").fill_null("an unknown place")).sort("_row").drop(
        "_row", "hist_place_ids")
