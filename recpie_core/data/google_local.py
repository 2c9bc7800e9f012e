"""Google Local (UCSD "Google Local Data 2021") JSON-lines files in, Parquet tables out.

Every line read is accounted for: it becomes a row of ``raw_reviews`` / ``raw_places``, or
a row of ``rejected_reviews`` / ``rejected_places`` with its file, 1-based line number,
reason and raw text. ``accepted + rejected == lines_read`` is checked before anything is
written. Blank lines are read and rejected as ``empty line``.

Output layout: each table is a **folder** of Parquet part files
(``raw_reviews.parquet/part-00000.parquet``, ...), always at least one part, so a reader
globs ``<table>/*.parquet`` (``read_table`` does this, and accepts a single file too).
All outputs of a call are built in a private staging folder beside ``out`` and renamed
into place with ``recpie_core.io.atomic_write`` only after every file ended cleanly: a
truncated gzip, an empty file or a crash leaves the previous tables whole.

Reviews take a fast path, checked against a per-line path:

- A reader thread decompresses (ISA-L, in C, GIL released) into chunks of about
  ``chunk_bytes`` that end at a newline, and finds their line boundaries.
- Lines that cannot be a JSON object (not ``{...}``, blank, invalid UTF-8) go straight to
  the per-line path. The rest are parsed together by ``pl.read_ndjson`` with an explicit
  schema; if that parse still fails (a syntax error inside ``{...}``), the chunk is bisected
  down to 64 lines, so one bad line costs a few small re-parses, not the whole chunk.
- The fast path only ever *accepts*. Its schema and checks make anything unusual
  visible (integers are read as Int64, which turns ``4.0`` or ``"4"`` into null; a
  string field that reads like a coerced number, bool, list or object is suspect), and a
  row that is not clearly valid is handed, with its raw line, to the per-line path
  (``json.loads``), which decides whether to accept it and gives every rejection its
  reason. Both paths therefore classify a line identically wherever it sits (tested on
  hand-picked and on randomly mutated lines).

Review rules (the per-line path is the definition):

- ``user_id``: a string of digits, or a non-negative JSON integer (written as digits).
- ``gmap_id``: a non-empty string (empty counts as missing).
- ``time``: an integer, an integral number (``1.6e12``) or a string of an integer.
- ``rating``: the same forms as ``time`` (``4``, ``4.0``, ``"4"``), then 1 to 5.
- ``name``, ``text``: a string, else stored as null; lone UTF-16 surrogates (``"\\ud800"``)
  become U+FFFD. ``pics``: a list counts its pictures, anything else none. ``resp``: an
  object means a response. These optional fields never reject a line.
- duplicate keys in an object: the first value wins (as in the Polars parser).
- the same (``user_id``, ``gmap_id``, ``time``) again: the first by file order and line
  is kept, later ones are rejected as ``duplicate``.

Duplicates are found across the whole input in bounded memory: a Bloom filter of 64-bit
key hashes (128 MB, whatever the input size) flags rows whose key *may* have been seen.
Flagged rows go to a staging table with their raw line and are settled at the end by
comparing keys exactly against the accepted rows (DuckDB, fresh in-memory connection with
a memory limit and a private temp folder), so a hash collision never rejects a review.

Places (meta files) are small (about 0.5M lines for California) and are parsed line by
line; duplicate ``gmap_id`` rows keep the first and reject the rest as
``duplicate gmap_id``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from isal import isal_zlib    # ISA-L inflate: zlib's API at 2.3x its speed here (bench/reports/ingest.md)
from tqdm import tqdm

from recpie_core.io import TMP_MARK, atomic_write, fsync_path
from recpie_core.io import scan_table as read_table  # noqa: F401 (the tables written here: file or part folder)

log = logging.getLogger(__name__)

REVIEW_SCHEMA = pl.Schema({
    "user_id": pl.Utf8,
    "place_id": pl.Utf8,          # gmap_id in the source files
    "ts": pl.Int64,               # Unix ms, from time
    "rating": pl.Int8,            # 1-5
    "reviewer_name": pl.Utf8,     # name in the source files
    "text": pl.Utf8,
    "n_pics": pl.Int32,           # len(pics), 0 when absent
    "has_response": pl.Boolean,   # resp is an object
    "file": pl.Utf8,              # source file name
    "line": pl.Int64,             # 1-based line number in that file
})
PLACE_SCHEMA = pl.Schema({
    "place_id": pl.Utf8, "name": pl.Utf8, "address": pl.Utf8, "description": pl.Utf8,
    "latitude": pl.Float64, "longitude": pl.Float64, "category": pl.List(pl.Utf8),
    "avg_rating": pl.Float64, "num_of_reviews": pl.Int64, "price": pl.Utf8, "state": pl.Utf8,
    "url": pl.Utf8, "file": pl.Utf8, "line": pl.Int64,
})
REJECTED_SCHEMA = pl.Schema({"file": pl.Utf8, "line": pl.Int64, "reason": pl.Utf8, "raw": pl.Utf8})

DEFAULT_CHUNK_BYTES = 8 << 20     # decompressed bytes parsed together
RAW_MAX_CHARS = 10_000            # rejected raw lines are cut here, with a note
MAX_LINE_BYTES = 64 << 20         # a longer "line" is rejected unread past this
ROWS_PER_PART = 2_000_000         # rows per Parquet part file
ROWS_PER_GROUP = 128_000          # rows per Parquet row group
DUCKDB_MEMORY_LIMIT = "512MB"     # for the exact duplicate check

_READ_BYTES = 1 << 20             # compressed bytes per read
_INFLATE_BYTES = 4 << 20          # decompressed bytes per inflate call (bounds a gzip bomb)
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_BISECT_MIN_LINES = 64            # a failing block this small is parsed line by line
_PARSE_THREADS = 2                # chunks parsed at once, besides the reader and writer threads

# The fast parser's view of a review line. Int64 never coerces: a value of another JSON
# type reads as null, so the row goes to the per-line path (Int8 panics). String fields
# read any other JSON value as its text (5 -> "5", [1] -> "[1]"), so a string that looks
# like such a text goes line by line (_COERCED). user_id stays Binary, where a number reads
# as null, or past u64 as Polars' debug text ("Static(U128(...))"): neither is all digits.
# (String parses about 20% faster than Binary, and needs no UTF-8 cast afterwards.)
_NDJSON_REVIEW_SCHEMA = pl.Schema({
    "user_id": pl.Binary, "name": pl.String, "time": pl.Int64, "rating": pl.Int64,
    "text": pl.String, "pics": pl.List(pl.Null), "resp": pl.Struct({}), "gmap_id": pl.String,
})
_COERCED = r"^(?:-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false)$|^[\[{]"
_DIGITS = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class SourceError(ValueError):
    """A source folder or file that cannot be ingested at all (the message names it)."""


@dataclass(frozen=True)
class SourceFiles:
    reviews: list[Path]
    meta: list[Path]


@dataclass
class FileCounts:
    lines: int = 0
    accepted: int = 0
    rejected: int = 0


@dataclass
class IngestSummary:
    lines_read: int = 0
    accepted: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    per_file: dict[str, FileCounts] = field(default_factory=dict)
    duplicates: int = 0
    bytes_read: int = 0           # bytes of the source files (compressed size for .gz)
    seconds: float = 0.0


def find_source_files(folder: Path) -> SourceFiles:
    """The review and meta files in ``folder`` (``review-*.json[.gz]``, ``meta-*.json[.gz]``), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"Google Local source folder {folder} does not exist (or is not a folder)")

    def matching(prefix: str) -> list[Path]:
        return sorted(p for p in folder.iterdir()
                      if p.is_file() and p.name.startswith(prefix)
                      and (p.name.endswith(".json") or p.name.endswith(".json.gz")))

    reviews = matching("review-")
    if not reviews:
        raise SourceError(f"no review files (review-*.json or review-*.json.gz) in {folder}")
    return SourceFiles(reviews=reviews, meta=matching("meta-"))


# --- reading: bytes -> newline-terminated chunks -------------------------------------------


class _LongLine(NamedTuple):
    """One line over MAX_LINE_BYTES: only its start is kept."""
    head: bytes
    n_bytes: int


class _Chunk(NamedTuple):
    data: bytes | _LongLine    # whole lines, ending with b"\n"
    first_line: int            # 1-based number of its first line
    source_pos: int            # source bytes read so far (for progress)
    prepared: Sized | None = None    # what the reader thread worked out ahead (see _Kind.prepare)


def _file_blocks(path: Path, pos: list[int]) -> Iterator[bytes]:
    """Decompressed content of ``path`` in blocks; raises SourceError unless it ends cleanly.

    gzip is recognised by its magic bytes. Multi-member files and zero padding are read as
    ``gzip`` does; a file that ends inside a member is truncated, and nothing it yielded
    must be kept (the caller discards its whole output on the exception).
    """
    with open(path, "rb", buffering=0) as fh:
        def read() -> bytes:
            b = fh.read(_READ_BYTES)
            pos[0] += len(b)
            return b

        pending = read()
        if not pending:
            raise SourceError(f"{path}: empty file (0 bytes)")
        if not pending.startswith(_GZIP_MAGIC):
            if path.name.endswith(".gz"):
                raise SourceError(f"{path}: named .gz but is not a gzip file")
            while pending:
                yield pending
                pending = read()
            return
        inflater = isal_zlib.decompressobj(31)
        while True:
            if not pending:
                pending = read()
                if not pending:
                    if not inflater.eof:
                        raise SourceError(f"{path}: truncated gzip file (ends inside the compressed data)")
                    return
            if inflater.eof:                    # between members
                pending = pending.lstrip(b"\0")
                if not pending:
                    continue
                while len(pending) < 2 and (more := read()):
                    pending += more
                if not pending.startswith(_GZIP_MAGIC):
                    raise SourceError(f"{path}: unexpected bytes after the end of the gzip data")
                inflater = isal_zlib.decompressobj(31)
            try:
                out = inflater.decompress(pending, _INFLATE_BYTES)
            except isal_zlib.error as e:
                raise SourceError(f"{path}: corrupt gzip data ({e})") from None
            pending = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            if out:
                yield out


class _Pending:
    """Decompressed bytes not yet cut into chunks: ``pieces`` minus the first ``skip`` bytes."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.skip = 0
        self.size = 0

    def add(self, block: bytes) -> None:
        self.pieces.append(block)
        self.size += len(block)

    def newline_from(self, target: int) -> tuple[int, int] | None:
        """(piece, index) of the first newline at or after logical offset ``target``."""
        offset = -self.skip
        for k, p in enumerate(self.pieces):
            start = max(self.skip if k == 0 else 0, target - offset)
            if start < len(p) and (j := p.find(b"\n", start)) >= 0:
                return k, j
            offset += len(p)
        return None

    def last_newline(self) -> tuple[int, int] | None:
        for k in range(len(self.pieces) - 1, -1, -1):
            if (j := self.pieces[k].rfind(b"\n", self.skip if k == 0 else 0)) >= 0:
                return k, j
        return None

    def cut(self, k: int, j: int) -> bytes:
        """Everything up to piece ``k``, byte ``j`` included, as one buffer (one copy)."""
        views = [memoryview(p) for p in self.pieces[: k + 1]]
        views[0] = views[0][self.skip:] if k else views[0][self.skip: j + 1]
        if k:
            views[k] = views[k][: j + 1]
        data = b"".join(views)
        self.pieces, self.skip = self.pieces[k:], j + 1
        if self.skip == len(self.pieces[0]):
            self.pieces, self.skip = self.pieces[1:], 0
        self.size -= len(data)
        return data

    def take_all(self) -> bytes:
        data = b"".join([memoryview(self.pieces[0])[self.skip:], *self.pieces[1:]]) if self.pieces else b""
        self.pieces, self.skip, self.size = [], 0, 0
        return data


def _line_chunks(path: Path, chunk_bytes: int) -> Iterator[tuple[bytes | _LongLine, int]]:
    """Cut the content of ``path`` into (whole lines of about ``chunk_bytes``, source bytes read)."""
    pos = [0]
    pending = _Pending()
    long_line: list | None = None    # [head, size] while skipping the rest of an over-long line
    first, empty = True, True
    for block in _file_blocks(path, pos):
        if first:
            block, first = block.removeprefix(_BOM), False
        if long_line is not None:
            j = block.find(b"\n")
            if j < 0:
                long_line[1] += len(block)
                continue
            yield _LongLine(long_line[0], long_line[1] + j), pos[0]
            long_line, block = None, block[j + 1:]
        pending.add(block)
        while pending.size >= chunk_bytes:
            at = pending.newline_from(chunk_bytes - 1) or pending.last_newline()
            if at is None:                   # one line so far, and no end in sight
                if pending.size > MAX_LINE_BYTES:
                    head = pending.take_all()
                    long_line, empty = [head[: RAW_MAX_CHARS * 4], len(head)], False
                break
            empty = False
            yield pending.cut(*at), pos[0]
    if long_line is not None:
        yield _LongLine(long_line[0], long_line[1]), pos[0]
    rest = pending.take_all()
    if rest:
        yield (rest if rest.endswith(b"\n") else rest + b"\n"), pos[0]
    elif empty:
        raise SourceError(f"{path}: no lines (the file decompresses to nothing)")


_END = object()


def _prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Run ``items`` in a thread, ``depth`` items ahead (decompression overlaps parsing)."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:    # handed to the consumer, raised there
            q.put(e)
        finally:
            items.close()

    thread = threading.Thread(target=produce, name="recpie-read", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


# --- the per-line path: the definition of what a valid line is -------------------------------


def _first_wins(pairs: list[tuple]) -> dict:
    obj: dict = {}
    for k, v in pairs:
        obj.setdefault(k, v)
    return obj


def _load_object(raw: bytes) -> tuple[dict | None, str | None]:
    """Parse one line: (object, None) or (None, reason)."""
    if len(raw) > MAX_LINE_BYTES:
        return None, "line too long"
    if not raw.strip(b" \t\r"):
        return None, "empty line"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid UTF-8"
    try:
        obj = json.loads(text, object_pairs_hook=_first_wins)
    except RecursionError:     # Polars parses up to ~1000 levels, json's default limit is lower
        with _recursion_limit(2_000):
            try:
                obj = json.loads(text, object_pairs_hook=_first_wins)
            except (ValueError, RecursionError):
                return None, "malformed JSON"
    except ValueError:
        return None, "malformed JSON"
    if not isinstance(obj, dict):
        return None, "not an object"
    return obj, None


@contextmanager
def _recursion_limit(n: int):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, n))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _as_int(v) -> int | None:
    """An integer, an integral float or a string of an integer, within int64; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, float):
        v = int(v) if v.is_integer() else None
    elif isinstance(v, str):
        v = int(v) if _INTEGER.fullmatch(v) else None
    elif not isinstance(v, int):
        return None
    return v if v is not None and _INT64_MIN <= v <= _INT64_MAX else None


def _as_text(v) -> str | None:
    if not isinstance(v, str):
        return None
    if not v.isascii() and _SURROGATE.search(v):
        v = _SURROGATE.sub("\ufffd", v)
    return v


def _check_review(raw: bytes) -> tuple[tuple | None, str | None]:
    """(row without file/line, None) or (None, reason), for one review line."""
    obj, reason = _load_object(raw)
    if obj is None:
        return None, reason
    get = obj.get
    uid = get("user_id")
    if uid is None or uid == "":
        return None, "missing user_id"
    if isinstance(uid, int) and not isinstance(uid, bool) and uid >= 0:
        uid = str(uid)
    elif not (isinstance(uid, str) and _DIGITS.fullmatch(uid)):
        return None, "bad user_id"
    place = get("gmap_id")
    if place is None or place == "":
        return None, "missing gmap_id"
    if not isinstance(place, str):
        return None, "bad gmap_id"
    if get("time") is None:
        return None, "missing time"
    ts = _as_int(get("time"))
    if ts is None:
        return None, "bad time"
    if get("rating") is None:
        return None, "missing rating"
    rating = _as_int(get("rating"))
    if rating is None:
        return None, "bad rating"
    if not 1 <= rating <= 5:
        return None, "rating out of range"
    pics = get("pics")
    return (uid, _as_text(place), ts, rating, _as_text(get("name")), _as_text(get("text")),
            len(pics) if isinstance(pics, list) else 0, isinstance(get("resp"), dict)), None


def _as_float(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def _check_place(raw: bytes) -> tuple[tuple | None, str | None]:
    """(row without file/line, None) or (None, reason), for one meta line.

    Only ``gmap_id`` is required; an optional field of an unexpected type is stored as null.
    """
    obj, reason = _load_object(raw)
    if obj is None:
        return None, reason
    get = obj.get
    place = get("gmap_id")
    if place is None or place == "":
        return None, "missing gmap_id"
    if not isinstance(place, str):
        return None, "bad gmap_id"
    category = get("category")
    if isinstance(category, str):
        category = [category]
    category = [_as_text(c) for c in category if isinstance(c, str)] if isinstance(category, list) else None
    n_reviews = get("num_of_reviews")
    n_reviews = _as_int(n_reviews) if isinstance(n_reviews, (int, float)) else None
    return (_as_text(place), _as_text(get("name")), _as_text(get("address")), _as_text(get("description")),
            _as_float(get("latitude")), _as_float(get("longitude")), category, _as_float(get("avg_rating")),
            n_reviews, _as_text(get("price")), _as_text(get("state")), _as_text(get("url"))), None


def _raw_text(raw: bytes) -> str:
    """The raw line as stored in a rejected table: undecodable bytes escaped, cut at RAW_MAX_CHARS."""
    text = raw.decode("utf-8", errors="backslashreplace")
    if len(text) > RAW_MAX_CHARS:
        text = text[:RAW_MAX_CHARS] + f" ... [cut: line is {len(raw)} bytes]"
    return text


# --- the fast path: many review lines at once ----------------------------------------------


class _Lines:
    """Line boundaries of a chunk: line i is data[starts[i]:ends[i]] (ends[i] is its b"\\n").

    ``plausible`` marks the lines worth a fast parse (set by _prepare_reviews).
    """

    def __init__(self, data: bytes):
        self.data = data
        arr = np.frombuffer(data, np.uint8)
        self.ends = np.flatnonzero(arr == 10)
        self.starts = np.empty_like(self.ends)
        self.starts[:1] = 0
        self.starts[1:] = self.ends[:-1] + 1
        self.arr = arr
        self.plausible: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ends)

    def raw(self, i: int) -> bytes:
        return self.data[self.starts[i]:self.ends[i]]

    def could_be_objects(self) -> np.ndarray:
        """Lines that start with '{' and end with '}' (before an optional '\\r'), not too long."""
        last = self.ends - 1
        last = last - ((last > self.starts) & (self.arr[np.maximum(last, 0)] == 13))
        ok = (last > self.starts) & (self.ends - self.starts <= MAX_LINE_BYTES)
        ok &= self.arr[np.minimum(self.starts, len(self.arr) - 1)] == ord("{")
        ok &= self.arr[np.maximum(last, 0)] == ord("}")
        return ok

    def join(self, idx: np.ndarray) -> bytes:
        """The lines ``idx`` (sorted), with their newlines, as one buffer."""
        if len(idx) == len(self) or len(idx) == 0:
            return self.data if len(idx) else b""
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        view = memoryview(self.data)
        parts = [view[self.starts[run[0]]: self.ends[run[-1]] + 1] for run in np.split(idx, breaks)]
        return b"".join(parts)

    def invalid_utf8(self) -> np.ndarray:
        """Mask of the lines that are not valid UTF-8 (only lines with a byte >= 0x80 are decoded)."""
        bad = np.zeros(len(self), dtype=bool)
        for i in np.unique(np.searchsorted(self.ends, np.flatnonzero(self.arr >= 0x80))).tolist():
            try:
                self.raw(i).decode("utf-8")
            except UnicodeDecodeError:
                bad[i] = True
        return bad


def _parse_fast(lines: _Lines, idx: np.ndarray) -> tuple[list[tuple[pl.DataFrame, np.ndarray]], list[np.ndarray]]:
    """Parse lines ``idx`` with Polars: ([(frame, its line indices)], [line indices left over]).

    A parse that fails, or returns a row count other than the line count, is retried on
    halves down to _BISECT_MIN_LINES; what still fails is left to the per-line path.
    """
    if len(idx) == 0:
        return [], []
    try:
        df = pl.read_ndjson(lines.join(idx), schema=_NDJSON_REVIEW_SCHEMA, ignore_errors=True)
        if df.height == len(idx):
            return [(df, idx)], []
    except (Exception, pl.exceptions.PanicException):
        pass
    if len(idx) <= _BISECT_MIN_LINES:
        return [], [idx]
    mid = len(idx) // 2
    a_parsed, a_left = _parse_fast(lines, idx[:mid])
    b_parsed, b_left = _parse_fast(lines, idx[mid:])
    return a_parsed + b_parsed, a_left + b_left


def _fast_reviews(df: pl.DataFrame, line_idx: np.ndarray, first_line: int, file: str
                  ) -> tuple[pl.DataFrame, np.ndarray]:
    """Rows the fast parse shows to be valid, in REVIEW_SCHEMA; and the line indices it could not vouch for."""
    def utf8(c: str) -> pl.Expr:
        return pl.col(c).cast(pl.Utf8, strict=False)

    ok = pl.all_horizontal(
        utf8("user_id").str.contains(r"^[0-9]+$").fill_null(False),
        (pl.col("gmap_id").str.len_bytes() > 0).fill_null(False),
        pl.col("time").is_not_null(),
        pl.col("rating").is_between(1, 5).fill_null(False),
        *[~pl.col(c).str.contains(_COERCED).fill_null(False) for c in ("name", "text", "gmap_id")],
        # Polars reads a lone surrogate escape as NUL: such rows go line by line.
        *[~pl.col(c).str.contains("\x00", literal=True).fill_null(False) for c in ("name", "text", "gmap_id")],
    )
    out = df.select(
        utf8("user_id").alias("user_id"),
        pl.col("gmap_id").alias("place_id"),
        pl.col("time").alias("ts"),
        pl.col("rating").cast(pl.Int8, strict=False),
        pl.col("name").alias("reviewer_name"),
        pl.col("text"),
        pl.col("pics").list.len().fill_null(0).cast(pl.Int32).alias("n_pics"),
        pl.col("resp").is_not_null().alias("has_response"),
        pl.lit(file, pl.Utf8).alias("file"),
        (pl.Series(line_idx, dtype=pl.Int64) + first_line).alias("line"),
        ok.alias("_ok"),
    )
    ok_mask = out["_ok"]
    if ok_mask.all():
        return out.drop("_ok"), line_idx[:0]
    return out.filter(ok_mask).drop("_ok"), line_idx[~ok_mask.to_numpy()]


class _Parsed(NamedTuple):
    """What a chunk of one file became. ``raw(line)`` gives a line's bytes back."""
    accepted: pl.DataFrame      # in the table's schema, in line order
    rejected: pl.DataFrame      # REJECTED_SCHEMA
    n_lines: int
    raw: Callable[[int], bytes]


def _rejected_frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=REJECTED_SCHEMA, orient="row")


def _long_line(chunk: _Chunk, file: str, schema: pl.Schema) -> _Parsed:
    head, n = chunk.data
    rejected = _rejected_frame([(file, chunk.first_line, "line too long",
                                 _raw_text(head[:RAW_MAX_CHARS]) + f" ... [cut: line is {n} bytes]")])
    return _Parsed(pl.DataFrame(schema=schema), rejected, 1, lambda line: head)


def _prepare_reviews(data: bytes) -> _Lines:
    """Line boundaries and the lines worth a fast parse (numpy; runs on the reader thread)."""
    lines = _Lines(data)
    lines.plausible = lines.could_be_objects()
    if not data.isascii():               # invalid UTF-8 would fail the whole parse: set it aside
        lines.plausible &= ~lines.invalid_utf8()
    return lines


def _parse_reviews(chunk: _Chunk, file: str) -> _Parsed:
    if isinstance(chunk.data, _LongLine):
        return _long_line(chunk, file, REVIEW_SCHEMA)
    lines = chunk.prepared or _prepare_reviews(chunk.data)
    plausible = lines.plausible
    parsed, left = _parse_fast(lines, np.flatnonzero(plausible))
    frames, unsure = [], [np.flatnonzero(~plausible), *left]
    for df, idx in parsed:
        good, not_sure = _fast_reviews(df, idx, chunk.first_line, file)
        frames.append(good)
        unsure.append(not_sure)
    slow_rows, rejected = [], []
    for i in np.sort(np.concatenate(unsure)).tolist():
        row, reason = _check_review(lines.raw(i))
        if row is None:
            rejected.append((file, chunk.first_line + i, reason, _raw_text(lines.raw(i))))
        else:
            slow_rows.append((*row, file, chunk.first_line + i))
    if slow_rows:
        frames.append(pl.DataFrame(slow_rows, schema=REVIEW_SCHEMA, orient="row"))
    accepted = pl.concat(frames) if frames else pl.DataFrame(schema=REVIEW_SCHEMA)
    if slow_rows and len(frames) > 1:
        accepted = accepted.sort("line")
    return _Parsed(accepted, _rejected_frame(rejected), len(lines),
                   lambda line: lines.raw(line - chunk.first_line))


def _split_lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def _parse_places(chunk: _Chunk, file: str) -> _Parsed:
    if isinstance(chunk.data, _LongLine):
        return _long_line(chunk, file, PLACE_SCHEMA)
    raws = chunk.prepared if chunk.prepared is not None else _split_lines(chunk.data)
    rows, rejected = [], []
    for i, raw in enumerate(raws):
        row, reason = _check_place(raw)
        if row is None:
            rejected.append((file, chunk.first_line + i, reason, _raw_text(raw)))
        else:
            rows.append((*row, file, chunk.first_line + i))
    return _Parsed(pl.DataFrame(rows, schema=PLACE_SCHEMA, orient="row"), _rejected_frame(rejected),
                   len(raws), lambda line: raws[line - chunk.first_line])


def _iter_parsed(path: Path, kind: _Kind, chunk_bytes: int) -> Iterator[tuple[_Parsed, int]]:
    """Parsed chunks of ``path`` in order, with the source bytes read so far.

    Three stages overlap: the reader thread decompresses and cuts chunks, _PARSE_THREADS
    workers parse them (Polars releases the GIL), and the caller settles duplicates and
    hands rows to the writer while the next chunks parse.
    """
    def read() -> Iterator[_Chunk]:       # runs on the reader thread
        line = 1
        for data, pos in _line_chunks(Path(path), chunk_bytes):
            prepared = None if isinstance(data, _LongLine) else kind.prepare(data)
            yield _Chunk(data, line, pos, prepared)
            line += 1 if prepared is None else len(prepared)

    name = Path(path).name
    with ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="recpie-parse") as pool:
        in_flight: deque[tuple[Future, _Chunk]] = deque()
        try:
            for chunk in _prefetch(read()):
                in_flight.append((pool.submit(kind.parse, chunk, name), chunk))
                if len(in_flight) > _PARSE_THREADS:
                    yield _settled(*in_flight.popleft())
            while in_flight:
                yield _settled(*in_flight.popleft())
        finally:
            for future, _ in in_flight:
                future.cancel()


def _settled(future: Future, chunk: _Chunk) -> tuple[_Parsed, int]:
    parsed = future.result()
    assert parsed.n_lines == (1 if chunk.prepared is None else len(chunk.prepared))   # line numbers hold
    return parsed, chunk.source_pos


def iter_reviews(path: Path, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
                 ) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Stream one review file as (accepted, rejected) frame pairs, chunk by chunk.

    Accepted frames are in REVIEW_SCHEMA, rejected ones in REJECTED_SCHEMA. Duplicates are
    not removed here (that needs the whole input: ``ingest_reviews``). Raises SourceError
    for an empty or truncated file, after yielding what came before: keep nothing from a
    file that raised.
    """
    for parsed, _ in _iter_parsed(path, _REVIEWS, chunk_bytes):
        yield parsed.accepted, parsed.rejected


# --- writing: Parquet parts, duplicates, one commit ------------------------------------------


class _PartWriter:
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


class _SeenFilter:
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


def _key_hash(df: pl.DataFrame, keys: list[str]) -> np.ndarray:
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


@dataclass(frozen=True)
class _Kind:
    """What differs between reviews and places."""
    name: str
    prepare: Callable[[bytes], Sized]    # on the reader thread; len() is the chunk's line count
    parse: Callable[[_Chunk, str], _Parsed]
    schema: pl.Schema
    keys: list[str]
    duplicate_reason: str


_REVIEWS = _Kind("reviews", _prepare_reviews, _parse_reviews, REVIEW_SCHEMA, ["user_id", "place_id", "ts"], "duplicate")
_PLACES = _Kind("places", _split_lines, _parse_places, PLACE_SCHEMA, ["place_id"], "duplicate gmap_id")


def ingest_reviews(files: list[Path], out: Path, rejected_out: Path, *,
                   chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> IngestSummary:
    """Ingest review files into ``out`` (raw_reviews) and ``rejected_out`` (rejected_reviews).

    Both are folders of Parquet parts, replaced together only when every file read cleanly.
    Raises SourceError naming the file for an empty, truncated or corrupt file.
    """
    if not files:
        raise SourceError("no review files to ingest")
    return _ingest(_REVIEWS, files, Path(out), Path(rejected_out), chunk_bytes)


def ingest_places(files: list[Path], out: Path, rejected_out: Path, *,
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> IngestSummary:
    """Ingest meta files into ``out`` (raw_places) and ``rejected_out`` (rejected_places).

    No meta files gives empty tables (the folder may hold reviews only).
    """
    return _ingest(_PLACES, files, Path(out), Path(rejected_out), chunk_bytes)


def _ingest(kind: _Kind, files: list[Path], out: Path, rejected_out: Path, chunk_bytes: int) -> IngestSummary:
    started = time.perf_counter()
    files = [Path(f) for f in files]
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise SourceError(f"two source files share a name, so 'file' could not tell them apart: {names}")
    for target in (out, rejected_out):
        for stale in target.parent.glob(f"{target.name}{TMP_MARK}*"):   # left by a killed run
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f"{out.name}{TMP_MARK}staging-{uuid.uuid4().hex}"
    summary = IngestSummary(per_file={n: FileCounts() for n in names})
    reasons: Counter = Counter()
    candidate_schema = pl.Schema({**kind.schema, "_file_idx": pl.Int32, "raw": pl.Utf8})
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="recpie-write") as pool:
            accepted = _PartWriter(staging / "accepted", kind.schema, pool)
            rejected = _PartWriter(staging / "rejected", REJECTED_SCHEMA, pool)
            candidates = _PartWriter(staging / "candidates", candidate_schema, pool)
            seen = _SeenFilter()
            total = sum(f.stat().st_size for f in files if f.is_file())
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"ingest {kind.name}", disable=None) as bar:
                done = 0
                for file_idx, path in enumerate(files):
                    if not path.is_file():
                        raise SourceError(f"{path}: source file does not exist")
                    counts = summary.per_file[path.name]
                    file_started = time.perf_counter()
                    for parsed, pos in _iter_parsed(path, kind, chunk_bytes):
                        counts.lines += parsed.n_lines
                        rejected.write(parsed.rejected)
                        reasons.update(parsed.rejected["reason"].to_list())
                        counts.rejected += parsed.rejected.height
                        new, dup_rows = _split_duplicates(parsed, kind, seen, file_idx, candidates)
                        accepted.write(new)
                        counts.accepted += new.height
                        if dup_rows:
                            rejected.write(_rejected_frame(dup_rows))
                            reasons[kind.duplicate_reason] += len(dup_rows)
                            counts.rejected += len(dup_rows)
                        bar.update(done + pos - bar.n)
                    done += path.stat().st_size
                    log.info("%s: %d lines, %d kept so far, %d rejected so far (%.1f s)", path.name,
                             counts.lines, counts.accepted, counts.rejected, time.perf_counter() - file_started)
            seen = None                          # 128 MB back before DuckDB runs
            accepted.close()
            candidates.close()
            if candidates.rows:
                _resolve_candidates(kind, staging, accepted, rejected, summary, reasons)
            accepted.close()
            rejected.close()
        summary.lines_read = sum(c.lines for c in summary.per_file.values())
        summary.accepted = sum(c.accepted for c in summary.per_file.values())
        summary.rejected = sum(c.rejected for c in summary.per_file.values())
        summary.rejected_by_reason = dict(sorted(reasons.items()))
        summary.duplicates = reasons[kind.duplicate_reason]
        summary.bytes_read = sum(f.stat().st_size for f in files)
        if (summary.accepted + summary.rejected != summary.lines_read
                or summary.accepted != accepted.rows or summary.rejected != rejected.rows
                or sum(reasons.values()) != summary.rejected):
            raise RuntimeError(f"ingest accounting does not close, nothing written: {summary}")
        _commit(staging / "rejected", rejected_out)
        _commit(staging / "accepted", out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    log.info("%s: %d lines, %d accepted, %d rejected %s in %.1f s", kind.name, summary.lines_read,
             summary.accepted, summary.rejected, summary.rejected_by_reason, summary.seconds)
    return summary


def _split_duplicates(parsed: _Parsed, kind: _Kind, seen: _SeenFilter, file_idx: int,
                      candidates: _PartWriter) -> tuple[pl.DataFrame, list[tuple]]:
    """Rows whose key is new; duplicates within the chunk (exact) as rejected rows.

    Rows whose key may have been seen in an earlier chunk go to ``candidates`` for the exact check.
    """
    df = parsed.accepted
    if df.height == 0:
        return df, []
    h = _key_hash(df, kind.keys)
    dup_rows = []
    if (np.diff(np.sort(h)) == 0).any():   # same hash twice in the chunk: compare the keys themselves
        first = df.select(pl.struct(kind.keys).is_first_distinct()).to_series()
        dups = df.filter(~first)
        dup_rows = [(f, line, kind.duplicate_reason, _raw_text(parsed.raw(line)))
                    for f, line in dups.select("file", "line").iter_rows()]
        df, h = df.filter(first), h[first.to_numpy()]
    hit = seen.check_and_add(h)
    if hit.any():
        mask = pl.Series(hit)
        cand = df.filter(mask)
        raws = [_raw_text(parsed.raw(line)) for line in cand["line"].to_list()]
        candidates.write(cand.with_columns(_file_idx=pl.lit(file_idx, pl.Int32), raw=pl.Series(raws, dtype=pl.Utf8)))
        df = df.filter(~mask)
    return df, dup_rows


def _resolve_candidates(kind: _Kind, staging: Path, accepted: _PartWriter, rejected: _PartWriter,
                        summary: IngestSummary, reasons: Counter) -> None:
    """Compare candidate keys exactly with the accepted rows: duplicates out, hash collisions back in."""
    import duckdb    # here: most of an ingest never needs it, and it costs 0.1 s to import
    (staging / "duckdb").mkdir()
    con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT,
                                 "temp_directory": str(staging / "duckdb"),
                                 "preserve_insertion_order": False})
    try:
        con.execute("set enable_progress_bar = false")    # it would print to stdout
        reader = con.sql(_duplicates_sql(kind.keys), params={
            "candidates": str(staging / "candidates" / "*.parquet"),
            "accepted": str(staging / "accepted" / "*.parquet"),
        }).to_arrow_reader(ROWS_PER_GROUP)
        # Rows taken back go to new part files; the query's globs were expanded when it started.
        for batch in reader:
            df = pl.from_arrow(batch)
            dup = df["is_duplicate"]
            back = df.filter(~dup).select(kind.schema.names())
            accepted.write(back.cast(dict(kind.schema)))
            for f, n in back.group_by("file").len().iter_rows():
                summary.per_file[f].accepted += n
            gone = df.filter(dup).select("file", "line", reason=pl.lit(kind.duplicate_reason), raw=pl.col("raw"))
            rejected.write(gone.cast(dict(REJECTED_SCHEMA)))
            for f, n in gone.group_by("file").len().iter_rows():
                summary.per_file[f].rejected += n
            reasons[kind.duplicate_reason] += gone.height
    finally:
        con.close()


def _commit(folder: Path, target: Path) -> None:
    if target.is_file() or target.is_symlink():    # an older single-file table: a folder replaces it
        target.unlink()
    atomic_write(target, lambda tmp: os.replace(folder, tmp))
