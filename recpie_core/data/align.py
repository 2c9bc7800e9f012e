"""Rows of a keyed table in the order of a split's tensors.

The prompt and explanation tables are keyed by (user_id, place_id, ts), as the split is;
``RatingTensors.keys`` holds the key of each tensor row. ``align`` puts a table's rows in that
order, so row i of the table belongs to row i of the tensors.
"""

from __future__ import annotations

import polars as pl

from recpie_core.data.batches import RatingTensors
from recpie_core.data.context import KEY


def align(table: pl.DataFrame, tensors: RatingTensors) -> pl.DataFrame:
    """``table`` rows in the order of ``tensors.keys``; every row must be present."""
    keys = tensors.keys.select(*KEY).with_row_index("_row")
    marked = table.unique(list(KEY), keep="first").with_columns(pl.lit(True).alias("_found"))
    out = keys.join(marked, on=list(KEY), how="left").sort("_row")
    missing = out["_found"].null_count()
    if missing:
        raise ValueError(f"{missing} of {len(tensors)} rows have no entry in the table "
                         "(was it built from the same split?)")
    return out.drop("_row", "_found")
