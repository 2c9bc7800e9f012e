"""Writing the ingested tables: Parquet part folders and duplicate keys.

``PartWriter`` streams rows of one schema into ``folder/part-NNNNN.parquet`` files, in row
groups, on a writer thread. Publishing the finished folders is up to the caller
(``google_local``, with ``recpie_core.io.commit_version``).

Duplicate keys are found across the whole input in bounded memory: a Bloom filter of
64-bit key hashes (``SeenFilter``, 128 MB, whatever the input size) flags rows whose key
*may* have been seen. Flagged rows go to a staging table with their raw line and are
settled at the end by ``resolve_candidates``, comparing keys exactly against the accepted
rows (DuckDB, fresh in-memory connection with a memory limit and a private temp folder),
so a hash collision never rejects a row. The first row by file order and line is kept.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from recpie_core.io import fsync_path

ROWS_PER_PART = 2_000_000         # rows per Parquet part file
ROWS_PER_GROUP = 128_000          # rows per Parquet row group
DUCKDB_MEMORY_LIMIT = "512MB"     # for the exact duplicate check


class PartWriter:
    """Rows of one schema into ``folder/part-NNNNN.parquet``, in row groups, on a writer thread."""

    def __init__(self, folder: Path, schema: pl.Schema, pool: ThreadPoolExecutor):
        self.folder, self.schema, self.pool = folder, schema, pool
        folder.mkdir(parents=True)
        self.arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.rows = 0                      # rows handed over so far
        self.pending: list[Future] = []
        self._writer: pq.ParquetWriter | None = None
        self._part_rows = 0
        self._parts = 0

    def write(self, df: pl.DataFrame) -> None:
        if df.height == 0:
            return
        # Converted now: Arrow copies the strings out of Polars' views, so a few buffered
        # rows do not keep the whole parse buffers of their chunk alive.
        self.buffer.append(df.to_arrow())
        self.buffered += df.height
        self.rows += df.height
        if self.buffered >= ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        table = pa.concat_tables(self.buffer)
        self.buffer, self.buffered = [], 0
        while self.pending and (self.pending[0].done() or len(self.pending) >= 2):
            self.pending.pop(0).result()       # bounded memory: at most two groups in flight
        self.pending.append(self.pool.submit(self._write_group, table))

    def _write_group(self, table: pa.Table) -> None:
        if table.schema != self.arrow_schema:
            table = table.cast(self.arrow_schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.folder / f"part-{self._parts:05d}.parquet",
                                            self.arrow_schema, **_PARQUET_OPTIONS)
            self._parts += 1
        self._writer.write_table(table, row_group_size=len(table))
        self._part_rows += len(table)
        if self._part_rows >= ROWS_PER_PART:
            self._close_part()

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._part_rows = 0
            fsync_path(self.folder / f"part-{self._parts - 1:05d}.parquet")

    def close(self) -> None:
        """Write what is buffered, wait for the writer; leave at least one (maybe empty) part."""
        self._flush()
        for f in self.pending:
            f.result()
        self.pending = []
        self.pool.submit(self._close_part).result()
        if self._parts == 0:
            pq.write_table(self.arrow_schema.empty_table(), self.folder / "part-00000.parquet")
            fsync_path(self.folder / "part-00000.parquet")
            self._parts = 1
        fsync_path(self.folder)


# Snappy: about 1.4x less CPU to write than zstd level 1 here, for files about 1.7x larger
# (uncompressed would halve the writing again, for 2.4x the disk). Dictionary encoding only
# where values repeat, statistics only on the numbers: on free text both cost time for nothing.
_PARQUET_OPTIONS = dict(compression="snappy", use_dictionary=["file", "state", "price"],
                        write_statistics=["ts", "rating", "line", "latitude", "longitude"])


class SeenFilter:
    """Keys seen so far, as a one-hash Bloom filter over 64-bit key hashes (no false negatives).

    A fixed bit array (2**BITS_LOG2 bits, 128 MB) keeps memory bounded whatever the input
    size; a hit only makes a row a candidate for the exact check. False hits grow with the
    rows seen: about 1% at 10M rows, 6% at 70M.
    """

    BITS_LOG2 = 30

    def __init__(self, bits_log2: int | None = None) -> None:
        self.shift = np.uint64(64 - (bits_log2 or self.BITS_LOG2))
        self.words = np.zeros(1 << ((bits_log2 or self.BITS_LOG2) - 6), dtype=np.uint64)  # calloc: lazy

    def check_and_add(self, h: np.ndarray) -> np.ndarray:
        """Mark ``h`` as seen; return which of them may have been seen before this call."""
        slot = h >> self.shift
        word = (slot >> np.uint64(6)).astype(np.intp)
        bit = np.left_shift(np.uint64(1), slot & np.uint64(63))
        old = self.words[word]
        self.words[word] = old | bit                 # where a word repeats, the last write wins:
        lost = (self.words[word] & bit) == 0         # set the bits it dropped (faster than .at alone)
        if lost.any():
            np.bitwise_or.at(self.words, word[lost], bit[lost])
        return (old & bit) != 0


def key_hash(df: pl.DataFrame, keys: list[str]) -> np.ndarray:
    """(rows,) uint64: one 64-bit hash of the ``keys`` columns per row of ``df``."""
    return df.select(pl.struct(keys).hash(seed=0x5EED)).to_series().to_numpy()


_DUPLICATES_SQL = """
-- Exact check of duplicate candidates (rows whose key hash was seen before).
-- inputs: $candidates, $accepted (Parquet globs)   output: one row per candidate
with cand as (
    select * from read_parquet($candidates)
),
known as (   -- candidate keys already in the accepted table
    select distinct {a_keys} from read_parquet($accepted) a
    semi join cand c on {join_ac}
),
final as (
    select cand.* exclude (_file_idx),
        k.{first_key} is not null
            or row_number() over (partition by {c_keys} order by cand._file_idx, cand.line) > 1
            as is_duplicate
    from cand left join known k on {join_ck}
)
select * from final order by file, line
"""


def _duplicates_sql(keys: list[str]) -> str:
    return _DUPLICATES_SQL.format(
        a_keys=", ".join(f"a.{k}" for k in keys),
        c_keys=", ".join(f"cand.{k}" for k in keys),
        join_ac=" and ".join(f"a.{k} = c.{k}" for k in keys),
        join_ck=" and ".join(f"cand.{k} = k.{k}" for k in keys),
        first_key=keys[0],
    )


def resolve_candidates(staging: Path, keys: list[str], duplicate_reason: str,
                       accepted: PartWriter, rejected: PartWriter) -> tuple[Counter, Counter]:
    """Compare candidate keys exactly with the accepted rows: duplicates out, hash collisions back in.

    Reads ``staging/candidates`` and ``staging/accepted``; rows taken back go to ``accepted``,
    duplicates to ``rejected`` with ``duplicate_reason``. Returns (rows taken back, rows
    rejected), each counted per file.
    """
    # Imported here: most of an ingest never needs it, and it costs 0.1 s to import.
    import duckdb
    taken_back: Counter = Counter()
    duplicates: Counter = Counter()
    (staging / "duckdb").mkdir()
    con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT,
                                 "temp_directory": str(staging / "duckdb"),
                                 "preserve_insertion_order": False})
    try:
        con.execute("set enable_progress_bar = false")    # it would print to stdout
        reader = con.sql(_duplicates_sql(keys), params={
            "candidates": str(staging / "candidates" / "*.parquet"),
            "accepted": str(staging / "accepted" / "*.parquet"),
        }).to_arrow_reader(ROWS_PER_GROUP)
        # Rows taken back go to new part files; the query's globs were expanded when it started.
        for batch in reader:
            df = pl.from_arrow(batch)
            dup = df["is_duplicate"]
            back = df.filter(~dup).select(accepted.schema.names())
            accepted.write(back.cast(dict(accepted.schema)))
            for f, n in back.group_by("file").len().iter_rows():
                taken_back[f] += n
            gone = df.filter(dup).select("file", "line", reason=pl.lit(duplicate_reason), raw=pl.col("raw"))
            rejected.write(gone.cast(dict(rejected.schema)))
            for f, n in gone.group_by("file").len().iter_rows():
                duplicates[f] += n
    finally:
        con.close()
    return taken_back, duplicates
