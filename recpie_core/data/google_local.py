"""Google Local (UCSD "Google Local Data 2021") JSON-lines files in, Parquet tables out.

Every line read is accounted for: it becomes a row of ``raw_reviews`` / ``raw_places``, or
a row of ``rejected_reviews`` / ``rejected_places`` with its file, 1-based line number,
reason and raw text. ``accepted + rejected == lines_read`` is checked before anything is
written. Blank lines are read and rejected as ``empty line``.

Output layout: each table is a **folder** of Parquet part files
(``raw_reviews.parquet/part-00000.parquet``, ...), always at least one part, so a reader
globs ``<table>/*.parquet`` (``read_table`` does this, and accepts a single file too).
One commit per ingestion: ``ingest_source`` builds all four tables of a source in a staging
folder of ``warehouse/ingest/`` and publishes them as one version only after every file
ended cleanly (``recpie_core.io.commit_version``: each table path is a symlink into
``ingest/current``, swapped in one rename). A truncated gzip, an empty file or a crash at
any point leaves the previous four tables whole; there is never a mix of two sources.
``ingest_reviews`` / ``ingest_places`` do the same for one kind's two tables, anywhere.

Review times outside a ``TimeWindow`` (default 1990-01-01 to a day after the file is read)
are rejected as ``time out of range``; a file whose times read as seconds is named in one
warning. ``find_source_files`` names the entries of the folder it does not read.

This module is the entry point and the driver; three stages overlap, each in its module:

- ``line_chunks``: a reader thread decompresses (ISA-L, GIL released) into chunks of about
  ``chunk_bytes`` that end at a newline. SourceError, which it raises for a file that
  cannot be read at all, is defined there and re-exported here.
- ``line_parsing``: _PARSE_THREADS workers turn chunks into accepted and rejected rows.
  Reviews take a Polars fast path, checked against the per-line path (``json.loads``)
  that defines a valid line; the review rules are listed there. It also holds the
  table schemas, re-exported here.
- ``parquet_parts``: the caller's thread drops duplicate keys and hands rows to a
  writer thread that writes Parquet parts.

Duplicates: the same (``user_id``, ``gmap_id``, ``time``) again, across the whole input,
keeps the first by file order and line and rejects later ones as ``duplicate``; a Bloom
filter flags possible repeats in bounded memory and DuckDB settles them exactly at the
end (``parquet_parts``), so a hash collision never rejects a review.

Places (meta files) are small (about 0.5M lines for California) and are parsed line by
line; duplicate ``gmap_id`` rows keep the first and reject the rest as
``duplicate gmap_id``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from recpie_core.data.line_chunks import Chunk, LongLine, SourceError, line_chunks, prefetch
from recpie_core.data.line_parsing import (
    PLACE_SCHEMA,
    REJECTED_SCHEMA,
    REVIEW_SCHEMA,
    Parsed,
    parse_places,
    parse_reviews,
    prepare_reviews,
    raw_text,
    rejected_frame,
    split_lines,
)
from recpie_core.data.parquet_parts import PartWriter, SeenFilter, key_hash, resolve_candidates
from recpie_core.io import TMP_MARK, commit_version, new_staging, no_phase_hook
from recpie_core.io import scan_table as read_table  # noqa: F401 (the tables written here: file or part folder)
from recpie_core.paths import RecpieHome

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 8 << 20     # decompressed bytes parsed together
_PARSE_THREADS = 2                # chunks parsed at once, besides the reader and writer threads


@dataclass(frozen=True)
class SourceFiles:
    reviews: list[Path]
    meta: list[Path]
    skipped: tuple[tuple[str, str], ...] = ()    # (name, why) of entries that look like data, not read


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
    warnings: list[str] = field(default_factory=list)         # one per file, e.g. times in seconds
    nulled_fields: dict[str, int] = field(default_factory=dict)   # kept lines' fields stored as null, by why


_SOURCE_NAME = re.compile(r"(review|meta)-.*\.json(\.gz)?")
_DATA_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".gz")


def find_source_files(folder: Path) -> SourceFiles:
    """The review and meta files in ``folder`` (``review-*.json[.gz]``, ``meta-*.json[.gz]``), sorted.

    A matching name that is not a readable file (a folder, a dangling link) is an error.
    Entries that look like data but are not read (a name in other case such as
    ``Review-X.JSON.GZ``, another ``.json`` name, a subfolder, a dangling link) are named in
    one warning and in ``skipped``; anything else (``notes.txt``, truth files) is ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"Google Local source folder {folder} does not exist (or is not a folder)")
    reviews, meta, skipped = [], [], []
    for p in sorted(folder.iterdir()):
        if _SOURCE_NAME.fullmatch(p.name):
            if not p.is_file():
                raise SourceError(f"{p}: named like a source file but is "
                                  + ("a dangling link" if p.is_symlink() and not p.exists() else "not a file"))
            (reviews if p.name.startswith("review-") else meta).append(p)
        elif why := _skip_reason(p):
            skipped.append((p.name, why))
    if skipped:
        log.warning("%s: not read: %s", folder, "; ".join(f"{name} ({why})" for name, why in skipped))
    if not reviews:
        raise SourceError(f"no review files (review-*.json or review-*.json.gz) in {folder}"
                          + "".join(f"; not read: {name} ({why})" for name, why in skipped))
    return SourceFiles(reviews=reviews, meta=meta, skipped=tuple(skipped))


def _skip_reason(p: Path) -> str:
    """Why an entry that is not read deserves a word; "" when it does not look like data."""
    if _SOURCE_NAME.fullmatch(p.name.lower()):
        return "name in other case: the match is case-sensitive"
    if p.is_symlink() and not p.exists():
        return "a dangling link"
    if p.is_dir():
        return "a folder: subfolders are not read"
    if p.name.lower().endswith(_DATA_SUFFIXES):
        return "not named review-*.json[.gz] or meta-*.json[.gz]"
    return ""


# --- the pipeline: chunks read, parsed and handed on in order ---------------------------------


@dataclass(frozen=True)
class _Kind:
    """What differs between reviews and places."""
    name: str
    prepare: Callable[[bytes], Sized]    # on the reader thread; len() is the chunk's line count
    parse: Callable[[Chunk, str], Parsed]
    schema: pl.Schema
    keys: list[str]
    duplicate_reason: str
    timed: bool                          # rows carry a ts checked against the TimeWindow


_REVIEWS = _Kind("reviews", prepare_reviews, parse_reviews, REVIEW_SCHEMA, ["user_id", "place_id", "ts"],
                 "duplicate", timed=True)
_PLACES = _Kind("places", split_lines, parse_places, PLACE_SCHEMA, ["place_id"], "duplicate gmap_id", timed=False)


def _iter_parsed(path: Path, kind: _Kind, chunk_bytes: int) -> Iterator[tuple[Parsed, int]]:
    """Parsed chunks of ``path`` in order, with the source bytes read so far.

    Three stages overlap: the reader thread decompresses and cuts chunks, _PARSE_THREADS
    workers parse them (Polars releases the GIL), and the caller settles duplicates and
    hands rows to the writer while the next chunks parse.
    """
    def read() -> Iterator[Chunk]:       # runs on the reader thread
        line = 1
        for data, pos in line_chunks(Path(path), chunk_bytes):
            prepared = None if isinstance(data, LongLine) else kind.prepare(data)
            yield Chunk(data, line, pos, prepared)
            line += 1 if prepared is None else len(prepared)

    name = Path(path).name
    with ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="recpie-parse") as pool:
        in_flight: deque[tuple[Future, Chunk]] = deque()
        try:
            for chunk in prefetch(read()):
                in_flight.append((pool.submit(kind.parse, chunk, name), chunk))
                if len(in_flight) > _PARSE_THREADS:
                    yield _settled(*in_flight.popleft())
            while in_flight:
                yield _settled(*in_flight.popleft())
        finally:
            for future, _ in in_flight:
                future.cancel()


def _settled(future: Future, chunk: Chunk) -> tuple[Parsed, int]:
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


# --- ingesting: every file, one commit ----------------------------------------------------

EARLIEST_TIME_MS = 631_152_000_000    # 1990-01-01 UTC: before any web review, after any time in seconds
TABLES = ("raw_reviews", "rejected_reviews", "raw_places", "rejected_places")


@dataclass(frozen=True)
class TimeWindow:
    """Review times accepted (Unix ms): from ``earliest_ms`` to ``days_ahead`` days after the file is read.

    Other times are rejected as ``time out of range``. The default lower bound, 1990, also
    catches times written in seconds (1.6e9 s reads as January 1970 in ms).
    """
    earliest_ms: int = EARLIEST_TIME_MS
    days_ahead: float = 1.0

    def bounds(self, read_at_s: float) -> tuple[int, int]:
        return self.earliest_ms, int((read_at_s + self.days_ahead * 86_400) * 1000)


def ingest_source(files: SourceFiles, home: RecpieHome, *, window: TimeWindow = TimeWindow(),
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES, on_phase: Callable[[str], None] = no_phase_hook
                  ) -> dict[str, IngestSummary]:
    """Ingest one source into the four TABLES of ``home``, published together or not at all.

    All four are built in a staging folder of ``warehouse/ingest`` and published as one
    version (``recpie_core.io.commit_version``): ``home.table(name)`` stays the path to read.
    Returns the summaries of ``"reviews"`` and ``"places"``. ``on_phase(name)`` is called at
    ``before_commit`` (all built, nothing renamed) and at each step of the commit, for crash tests.
    """
    if not files.reviews:
        raise SourceError("no review files to ingest")
    store = home.warehouse / "ingest"
    staging = new_staging(store)
    try:
        summaries = {"reviews": _build(_REVIEWS, files.reviews, staging, "reviews", chunk_bytes, window),
                     "places": _build(_PLACES, files.meta, staging, "places", chunk_bytes, window)}
        on_phase("before_commit")
        commit_version(staging, store, [home.table(name) for name in TABLES], on_phase)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summaries


def ingest_reviews(files: list[Path], out: Path, rejected_out: Path, *, window: TimeWindow = TimeWindow(),
                   chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> IngestSummary:
    """Ingest review files into ``out`` (raw_reviews) and ``rejected_out`` (rejected_reviews).

    Both are folders of Parquet parts, published together (``_commit_pair``) only when every
    file read cleanly. Raises SourceError naming the file for an empty, truncated or corrupt file.
    """
    if not files:
        raise SourceError("no review files to ingest")
    return _commit_pair(_REVIEWS, files, Path(out), Path(rejected_out), chunk_bytes, window)


def ingest_places(files: list[Path], out: Path, rejected_out: Path, *,
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> IngestSummary:
    """Ingest meta files into ``out`` (raw_places) and ``rejected_out`` (rejected_places).

    No meta files gives empty tables (the folder may hold reviews only).
    """
    return _commit_pair(_PLACES, files, Path(out), Path(rejected_out), chunk_bytes, TimeWindow())


def _commit_pair(kind: _Kind, files: list[Path], out: Path, rejected_out: Path, chunk_bytes: int,
                 window: TimeWindow) -> IngestSummary:
    """One kind's two tables, published together through a version store beside ``out``."""
    store = out.with_name(f"{out.name}.versions")
    staging = new_staging(store)
    try:
        summary = _build(kind, files, staging, kind.name, chunk_bytes, window,
                         names=(out.name, rejected_out.name))
        commit_version(staging, store, [out, rejected_out])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _build(kind: _Kind, files: list[Path], staging: Path, table: str, chunk_bytes: int, window: TimeWindow,
           names: tuple[str, str] | None = None) -> IngestSummary:
    """Write ``staging/raw_<table>.parquet`` and ``staging/rejected_<table>.parquet`` (or ``names``)."""
    started = time.perf_counter()
    files = [Path(f) for f in files]
    file_names = [f.name for f in files]
    if len(set(file_names)) != len(file_names):
        raise SourceError(f"two source files share a name, so 'file' could not tell them apart: {file_names}")
    kept_name, rejected_name = names or (f"raw_{table}.parquet", f"rejected_{table}.parquet")
    work = staging / f"{TMP_MARK}{table}"
    summary = IngestSummary(per_file={n: FileCounts() for n in file_names})
    reasons: Counter = Counter()
    notes: Counter = Counter()
    candidate_schema = pl.Schema({**kind.schema, "_file_idx": pl.Int32, "raw": pl.Utf8})
    with ThreadPoolExecutor(1, thread_name_prefix="recpie-write") as pool:
        accepted = PartWriter(work / "accepted", kind.schema, pool)
        rejected = PartWriter(work / "rejected", REJECTED_SCHEMA, pool)
        candidates = PartWriter(work / "candidates", candidate_schema, pool)
        seen = SeenFilter()
        total = sum(f.stat().st_size for f in files if f.is_file())
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"ingest {kind.name}", disable=None) as bar:
            done = 0
            for file_idx, path in enumerate(files):
                if not path.is_file():
                    raise SourceError(f"{path}: source file does not exist")
                counts = summary.per_file[path.name]
                file_started = time.perf_counter()
                bounds = window.bounds(time.time())
                in_seconds = 0
                for parsed, pos in _iter_parsed(path, kind, chunk_bytes):
                    counts.lines += parsed.n_lines
                    notes.update(parsed.notes or {})
                    rejected.write(parsed.rejected)
                    reasons.update(parsed.rejected["reason"].to_list())
                    counts.rejected += parsed.rejected.height
                    if kind.timed:
                        parsed, late_rows, seconds = _outside_window(parsed, bounds)
                        in_seconds += seconds
                        _reject(late_rows, "time out of range", rejected, reasons, counts)
                    new, dup_rows = _split_duplicates(parsed, kind, seen, file_idx, candidates)
                    accepted.write(new)
                    counts.accepted += new.height
                    _reject(dup_rows, kind.duplicate_reason, rejected, reasons, counts)
                    bar.update(done + pos - bar.n)
                done += path.stat().st_size
                if in_seconds:
                    summary.warnings.append(_seconds_warning(path, in_seconds, counts.lines))
                    log.warning(summary.warnings[-1])
                log.info("%s: %d lines, %d kept so far, %d rejected so far (%.1f s)", path.name,
                         counts.lines, counts.accepted, counts.rejected, time.perf_counter() - file_started)
        seen = None                          # 128 MB back before DuckDB runs
        accepted.close()
        candidates.close()
        if candidates.rows:
            taken_back, duplicates = resolve_candidates(work, kind.keys, kind.duplicate_reason, accepted, rejected)
            for f, n in taken_back.items():
                summary.per_file[f].accepted += n
            for f, n in duplicates.items():
                summary.per_file[f].rejected += n
            reasons[kind.duplicate_reason] += duplicates.total()
        accepted.close()
        rejected.close()
    _close_summary(summary, reasons, kind, files, accepted.rows, rejected.rows)
    summary.nulled_fields = dict(sorted(notes.items()))
    if notes:
        log.warning("%s: fields stored as null: %s", kind.name, summary.nulled_fields)
    os.replace(work / "accepted", staging / kept_name)
    os.replace(work / "rejected", staging / rejected_name)
    shutil.rmtree(work)
    summary.seconds = time.perf_counter() - started
    log.info("%s: %d lines, %d accepted, %d rejected %s in %.1f s", kind.name, summary.lines_read,
             summary.accepted, summary.rejected, summary.rejected_by_reason, summary.seconds)
    return summary


def _close_summary(summary: IngestSummary, reasons: Counter, kind: _Kind, files: list[Path],
                   accepted_rows: int, rejected_rows: int) -> None:
    """Totals from the per-file counts; raises unless every line read is accounted for once."""
    summary.lines_read = sum(c.lines for c in summary.per_file.values())
    summary.accepted = sum(c.accepted for c in summary.per_file.values())
    summary.rejected = sum(c.rejected for c in summary.per_file.values())
    summary.rejected_by_reason = dict(sorted(reasons.items()))
    summary.duplicates = reasons[kind.duplicate_reason]
    summary.bytes_read = sum(f.stat().st_size for f in files)
    if (summary.accepted + summary.rejected != summary.lines_read
            or summary.accepted != accepted_rows or summary.rejected != rejected_rows
            or sum(reasons.values()) != summary.rejected):
        raise RuntimeError(f"ingest accounting does not close, nothing written: {summary}")


def _reject(rows: list[tuple], reason: str, rejected: PartWriter, reasons: Counter, counts: FileCounts) -> None:
    if rows:
        rejected.write(rejected_frame(rows))
        reasons[reason] += len(rows)
        counts.rejected += len(rows)


def _outside_window(parsed: Parsed, bounds: tuple[int, int]) -> tuple[Parsed, list[tuple], int]:
    """``parsed`` without the rows whose time is outside ``bounds``; those as rejected rows;
    and how many of them would be inside ``bounds`` read as seconds."""
    lo, hi = bounds
    ts = parsed.accepted["ts"]
    outside = ~ts.is_between(lo, hi)
    if not outside.any():
        return parsed, [], 0
    late = parsed.accepted.filter(outside)
    rows = [(f, line, "time out of range", raw_text(parsed.raw(line)))
            for f, line in late.select("file", "line").iter_rows()]
    seconds = int(late["ts"].is_between(lo // 1000, hi // 1000).sum())
    return parsed._replace(accepted=parsed.accepted.filter(~outside)), rows, seconds


def _seconds_warning(path: Path, n: int, lines: int) -> str:
    return (f"{path}: {n} of {lines} lines have times that look like seconds, not milliseconds "
            "(rejected as 'time out of range'; multiply them by 1000 to keep them)")


def _split_duplicates(parsed: Parsed, kind: _Kind, seen: SeenFilter, file_idx: int,
                      candidates: PartWriter) -> tuple[pl.DataFrame, list[tuple]]:
    """Rows whose key is new; duplicates within the chunk (exact) as rejected rows.

    Rows whose key may have been seen in an earlier chunk go to ``candidates`` for the exact check.
    """
    df = parsed.accepted
    if df.height == 0:
        return df, []
    h = key_hash(df, kind.keys)
    dup_rows = []
    if (np.diff(np.sort(h)) == 0).any():   # same hash twice in the chunk: compare the keys themselves
        first = df.select(pl.struct(kind.keys).is_first_distinct()).to_series()
        dups = df.filter(~first)
        dup_rows = [(f, line, kind.duplicate_reason, raw_text(parsed.raw(line)))
                    for f, line in dups.select("file", "line").iter_rows()]
        df, h = df.filter(first), h[first.to_numpy()]
    hit = seen.check_and_add(h)
    if hit.any():
        mask = pl.Series(hit)
        cand = df.filter(mask)
        raws = [raw_text(parsed.raw(line)) for line in cand["line"].to_list()]
        candidates.write(cand.with_columns(_file_idx=pl.lit(file_idx, pl.Int32), raw=pl.Series(raws, dtype=pl.Utf8)))
        df = df.filter(~mask)
    return df, dup_rows

