"""Run the transformations in ``sql/`` on a fresh in-memory DuckDB connection.

Each file is one transformation named after the table it produces. Its inputs (named
after upstream assets) are registered as views over Parquet paths or in-memory frames,
so a test can pass a five-row table; values arrive as ``$named`` parameters, never
formatted into the SQL. Every call opens its own connection: DuckDB allows one writer
per database file, and Dagster runs steps in separate processes.

DuckDB spills to a private folder beside the output (``sql_to_parquet``) or beside the
first table read (``run_sql``), so inside the home, never in the system's ``/tmp``; it is
named ``<table>.tmp-duckdb-<uuid>`` and removed after the call (``sweep_temp_files`` takes
what a killed process left).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from recpie_core.io import TMP_MARK, atomic_write

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
Input = Path | pl.DataFrame | pl.LazyFrame
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def sql_text(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL transformation {name!r} (looked for {path})")
    return path.read_text()


def parquet_glob(path: Path) -> str:
    """A Parquet table is a file or a folder of part files."""
    path = Path(path)
    if path.is_dir():
        return str(path / "**" / "*.parquet")
    if not path.exists():
        raise FileNotFoundError(f"input table {path} does not exist; materialize its asset first")
    return str(path)


@contextmanager
def _connection(memory_limit: str, beside: Path | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory connection spilling to a temp folder beside ``beside`` (the system's
    temp folder when None: inputs are all in-memory frames), both gone afterwards."""
    if beside is None:
        spill = Path(tempfile.mkdtemp(prefix="recpie-duckdb-"))
    else:
        spill = beside.with_name(f"{beside.name}{TMP_MARK}duckdb-{uuid.uuid4().hex}")
        spill.mkdir(parents=True)
    try:
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(spill),
                                     "preserve_insertion_order": False})
        try:
            con.execute("set enable_progress_bar = false")  # it would print to stdout on long queries
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _register(con: duckdb.DuckDBPyConnection, inputs: Mapping[str, Input]) -> None:
    for name, value in inputs.items():
        if not _NAME.match(name):
            raise ValueError(f"input name {name!r} is not a plain SQL identifier")
        if isinstance(value, (pl.DataFrame, pl.LazyFrame)):
            frame = value.collect() if isinstance(value, pl.LazyFrame) else value
            con.register(name, frame.to_arrow())
        else:
            con.read_parquet(parquet_glob(Path(value))).create_view(name)


def run_sql(name: str, inputs: Mapping[str, Input], params: Mapping[str, Any],
            memory_limit: str = "2GB") -> pl.DataFrame:
    """Run ``sql/<name>.sql`` and return the result as a Polars frame."""
    tables = [Path(v) for v in inputs.values() if not isinstance(v, (pl.DataFrame, pl.LazyFrame))]
    with _connection(memory_limit, tables[0] if tables else None) as con:
        _register(con, inputs)
        return pl.from_arrow(con.sql(sql_text(name), params=dict(params)).to_arrow_table())


def sql_to_parquet(name: str, inputs: Mapping[str, Input], params: Mapping[str, Any], out: Path,
                   memory_limit: str = "2GB", batch_rows: int = 256_000) -> int:
    """Run ``sql/<name>.sql`` and stream the result into ``out`` (atomic). Returns the row count.

    Rows stream through in record batches, so the table never has to fit in memory.
    """
    rows = 0

    def write(tmp_path: Path) -> None:
        nonlocal rows
        with _connection(memory_limit, Path(out)) as con:
            _register(con, inputs)
            reader = con.sql(sql_text(name), params=dict(params)).to_arrow_reader(batch_rows)
            with pq.ParquetWriter(tmp_path, reader.schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows

    atomic_write(Path(out), write)
    return rows
