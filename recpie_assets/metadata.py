"""Materialization metadata shared by the assets: row counts, column schemas, previews, tables of
per-model numbers, plots as images the UI shows."""

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


def summary_table(summaries: dict[str, dict], digits: int = 4) -> str:
    """Per-model summaries (``{model: {metric: value}}``) as a markdown table, one row per model,
    the numbers rounded; a key some model lacks is an empty cell."""
    columns = list(dict.fromkeys(k for s in summaries.values() for k, v in s.items()
                                 if isinstance(v, (int, float)) and not isinstance(v, bool)))
    def cell(v) -> str | None:
        return None if v is None else str(round(v, digits) if isinstance(v, float) else v)

    frame = pl.DataFrame({"model": list(summaries), **{c: [cell(s.get(c)) for s in summaries.values()]
                                                       for c in columns}},
                         schema={"model": pl.String, **{c: pl.String for c in columns}})
    return markdown_table(frame)


def image_markdown(path: Path, alt: str, max_width: int = 800, colors: int = 128) -> dg.MetadataValue:
    """A PNG as markdown with the image embedded (a base64 data URI), which the Dagster UI shows
    inline. Kept small for the event log: scaled down to ``max_width`` pixels, on white, in a
    palette of ``colors`` (the eval ladder plot, 1,210 x 495: 59 KB -> 20 KB). A missing file is a line
    saying so, not a failed step."""
    import base64
    import io

    from PIL import Image

    path = Path(path)
    if not path.is_file():
        return dg.MetadataValue.md(f"*{alt}: no plot at {path}*")
    with Image.open(path) as source:
        image = source.convert("RGBA")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    flat = Image.new("RGB", image.size, "white")
    flat.paste(image, mask=image.getchannel("A"))
    buffer = io.BytesIO()
    flat.quantize(colors=colors).save(buffer, format="PNG", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")
