"""Materialization metadata shared by the assets: row counts, column schemas, previews."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

from recpie_core.io import scan_table


def rounded(summary: dict, digits: int = 4) -> dict:
    """A step's summary for the UI: floats (and floats in lists) to ``digits`` decimals."""
    def r(v):
        if isinstance(v, float):
            return round(v, digits)
        return [r(x) for x in v] if isinstance(v, list) else v
    return {k: r(v) for k, v in summary.items()}


def markdown_table(df: pl.DataFrame, max_chars: int = 60) -> str:
    """A small frame as a markdown table (cells cut at ``max_chars``)."""
    def cell(v) -> str:
        s = "" if v is None else str(v)
        s = s.replace("|", "\\|").replace("\n", " ")
        return s if len(s) <= max_chars else s[: max_chars - 1] + "…"

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join(lines)


def table_metadata(path: Path, preview_rows: int = 5) -> dict:
    """``dagster/row_count``, ``dagster/column_schema``, the path and a preview of a Parquet table."""
    lazy = scan_table(path)
    schema = lazy.collect_schema()
    rows = lazy.select(pl.len()).collect().item()
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, str(dtype)) for name, dtype in schema.items()]
        ),
        "path": dg.MetadataValue.path(str(path)),
        "preview": dg.MetadataValue.md(markdown_table(lazy.head(preview_rows).collect())),
    }
