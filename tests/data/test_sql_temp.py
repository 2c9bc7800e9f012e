"""DuckDB's spill folder (issue 10.6): inside the home, beside the table written or read, and
gone after the call; never in the system's temp folder when a table path is involved."""

import os

import duckdb
import polars as pl
import pytest

from recpie_core import sql

REVIEWS = pl.DataFrame({"user_id": ["a", "a"], "place_id": ["p", "q"], "rating": [4, 5], "ts": [1, 2]})
PLACES = pl.DataFrame({"place_id": ["p", "q"], "address": ["1 Castro St, Mountain View, CA 94041", None]})
PARAMS = {"zip_min": 94035, "zip_max": 94043, "mode": "users", "min_ratings": 1}


@pytest.fixture
def spills(monkeypatch):
    """The temp_directory of every DuckDB connection opened, and whether it existed then."""
    seen, connect = [], duckdb.connect

    def spy(*args, config=None, **kwargs):
        seen.append((config["temp_directory"], os.path.isdir(config["temp_directory"])))
        return connect(*args, config=config, **kwargs)

    monkeypatch.setattr(sql.duckdb, "connect", spy)
    return seen


def test_sql_to_parquet_spills_beside_its_output(tmp_path, spills):
    out = tmp_path / "home" / "warehouse" / "copy.parquet"
    rows = sql.sql_to_parquet("mountain_view_ratings", {"raw_reviews": REVIEWS, "raw_places": PLACES}, PARAMS, out)
    assert rows == 2
    [(spill, existed)] = spills
    assert existed and spill.startswith(str(out.parent / "copy.parquet.tmp-duckdb-"))
    assert sorted(p.name for p in out.parent.iterdir()) == ["copy.parquet"]


def test_run_sql_spills_beside_the_table_it_reads(tmp_path, spills):
    table = tmp_path / "warehouse" / "raw_reviews.parquet"
    table.parent.mkdir()
    REVIEWS.write_parquet(table)
    assert sql.run_sql("mountain_view_ratings", {"raw_reviews": table, "raw_places": PLACES}, PARAMS).height == 2
    [(spill, existed)] = spills
    assert existed and spill.startswith(str(table) + ".tmp-duckdb-")
    assert sorted(p.name for p in table.parent.iterdir()) == ["raw_reviews.parquet"]
