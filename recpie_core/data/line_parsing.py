"""Lines of a chunk in, accepted rows and rejected rows (with their reasons) out.

Two paths, checked against each other:

- The per-line path (``check_review``, ``check_place``: ``json.loads`` and plain Python)
  is the definition of a valid line, and gives every rejection its reason.
- The fast path, for reviews only (``parse_reviews``): lines that cannot be a JSON object
  (not ``{...}``, blank, invalid UTF-8; found with numpy by ``prepare_reviews`` on the
  reader thread) go straight to the per-line path. The rest are parsed together by
  ``pl.read_ndjson`` with an explicit schema; if that parse still fails (a syntax error
  inside ``{...}``), the block is bisected down to 64 lines, so one bad line costs a few
  small re-parses, not the whole chunk.
- The fast path only ever *accepts*. Its schema and checks make anything unusual
  visible (integers are read as Int64, which turns ``4.0`` or ``"4"`` into null; a
  string field that reads like a coerced number, bool, list or object is suspect), and a
  row that is not clearly valid is handed, with its raw line, to the per-line path,
  which decides whether to accept it. Both paths therefore classify a line identically
  wherever it sits (tested on hand-picked and on randomly mutated lines).

Review rules (the per-line path is the definition):

- ``user_id``: a string of digits, or a non-negative JSON integer (written as digits).
- ``gmap_id``: a non-empty string (empty counts as missing).
- ``time``: an integer, an integral number (``1.6e12``) or a string of an integer.
- ``rating``: the same forms as ``time`` (``4``, ``4.0``, ``"4"``), then 1 to 5.
- ``name``, ``text``: a string, else stored as null; lone UTF-16 surrogates (``"\\ud800"``)
  become U+FFFD. ``pics``: a list counts its pictures, anything else none. ``resp``: an
  object means a response. These optional fields never reject a line.
- duplicate keys in an object: the first value wins (as in the Polars parser).

Place (meta) lines are few and parsed line by line; only ``gmap_id`` is required, by the
same rule as in a review. A ``latitude`` or ``longitude`` that is present but unusable (not a
number, NaN or Infinity, or past +-90 / +-180) is stored as null and counted in
``Parsed.notes`` with why. Duplicates across lines are not found here (google_local).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import polars as pl

from recpie_core.data.line_chunks import MAX_LINE_BYTES, RAW_MAX_CHARS, Chunk, LongLine

# The tables' schemas (google_local re-exports them): what the parsers below produce.
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

_BISECT_MIN_LINES = 64            # a failing block this small is parsed line by line


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


def _gmap_id_reason(place) -> str | None:
    """Why a ``gmap_id`` value rejects its line (review or meta alike), or None if it is a non-empty string."""
    if place is None or place == "":
        return "missing gmap_id"
    if not isinstance(place, str):
        return "bad gmap_id"
    return None


def check_review(raw: bytes) -> tuple[tuple | None, str | None]:
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
    if (reason := _gmap_id_reason(place)) is not None:
        return None, reason
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


def _coordinate(obj: dict, key: str, limit: float, notes: Counter) -> float | None:
    """A finite number within +-limit; else None, counted in ``notes`` unless absent or null."""
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        notes[f"{key} not a number"] += 1
        return None
    v = float(v)
    if not np.isfinite(v):
        notes[f"{key} NaN or Infinity"] += 1
        return None
    if abs(v) > limit:
        notes[f"{key} out of range"] += 1
        return None
    return v


def check_place(raw: bytes, notes: Counter | None = None) -> tuple[tuple | None, str | None]:
    """(row without file/line, None) or (None, reason), for one meta line.

    Only ``gmap_id`` is required; an optional field of an unexpected type is stored as null.
    Unusable coordinates are counted in ``notes`` (see the module docstring).
    """
    notes = Counter() if notes is None else notes
    obj, reason = _load_object(raw)
    if obj is None:
        return None, reason
    get = obj.get
    place = get("gmap_id")
    if (reason := _gmap_id_reason(place)) is not None:
        return None, reason
    category = get("category")
    if isinstance(category, str):
        category = [category]
    category = [_as_text(c) for c in category if isinstance(c, str)] if isinstance(category, list) else None
    n_reviews = get("num_of_reviews")
    n_reviews = _as_int(n_reviews) if isinstance(n_reviews, (int, float)) else None
    return (_as_text(place), _as_text(get("name")), _as_text(get("address")), _as_text(get("description")),
            _coordinate(obj, "latitude", 90, notes), _coordinate(obj, "longitude", 180, notes), category,
            _as_float(get("avg_rating")),
            n_reviews, _as_text(get("price")), _as_text(get("state")), _as_text(get("url"))), None


def raw_text(raw: bytes) -> str:
    """The raw line as stored in a rejected table: undecodable bytes escaped, cut at RAW_MAX_CHARS."""
    text = raw.decode("utf-8", errors="backslashreplace")
    if len(text) > RAW_MAX_CHARS:
        text = text[:RAW_MAX_CHARS] + f" ... [cut: line is {len(raw)} bytes]"
    return text


# --- the fast path: many review lines at once ----------------------------------------------


class Lines:
    """Line boundaries of a chunk: line i is data[starts[i]:ends[i]] (ends[i] is its b"\\n").

    ``plausible`` marks the lines worth a fast parse (set by prepare_reviews).
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
        """Mask of the lines that are not valid UTF-8 (as ``bytes.decode`` judges them).

        The bytes >= 0x80 are checked together (utf8_error_positions); only the lines that
        check flags are decoded, so a file of raw UTF-8 text costs no per-line Python.
        """
        bad = np.zeros(len(self), dtype=bool)
        for i in np.unique(np.searchsorted(self.ends, utf8_error_positions(self.arr))).tolist():
            try:
                self.raw(i).decode("utf-8")
            except UnicodeDecodeError:
                bad[i] = True
        return bad


def utf8_error_positions(arr: np.ndarray) -> np.ndarray:
    """Positions in ``arr`` (uint8) of the bytes that break strict UTF-8, sorted; empty if valid.

    Strict as in Unicode Table 3-7 and ``bytes.decode``: no overlong forms, no surrogates,
    nothing past U+10FFFF. Flagged: a byte that is neither a continuation nor a lead whose
    continuations follow, and a continuation byte no lead claims. Vectorised over the bytes
    >= 0x80 only (ASCII text costs one comparison per byte).
    """
    pos = np.flatnonzero(arr >= 0x80)
    if len(pos) == 0:
        return pos
    b = arr[pos]
    after = [np.zeros(len(pos), np.uint8) for _ in range(3)]    # the 1st-3rd byte after each (0 past the end)
    for k, out in enumerate(after, start=1):
        inside = pos + k < len(arr)
        out[inside] = arr[pos[inside] + k]
    b1, b2, b3 = after
    cont = (b & 0xC0) == 0x80
    n_bytes = np.select([(b >= 0xC2) & (b <= 0xDF), (b >= 0xE0) & (b <= 0xEF), (b >= 0xF0) & (b <= 0xF4)],
                        [2, 3, 4], 0)
    lo = np.select([b == 0xE0, b == 0xF0], [0xA0, 0x90], 0x80)    # the second byte's range
    hi = np.select([b == 0xED, b == 0xF4], [0x9F, 0x8F], 0xBF)
    good_lead = ((n_bytes >= 2) & (b1 >= lo) & (b1 <= hi)
                 & ((n_bytes < 3) | ((b2 & 0xC0) == 0x80))
                 & ((n_bytes < 4) | ((b3 & 0xC0) == 0x80)))
    lead_pos, lead_len = pos[good_lead], n_bytes[good_lead]
    # A good lead's followers are continuations, never leads: the claimed spans are disjoint.
    claimed = np.concatenate([lead_pos[lead_len > k] + k for k in (1, 2, 3)])
    cont_pos = pos[cont]
    unclaimed = ~np.isin(cont_pos, claimed, assume_unique=True)
    return np.sort(np.concatenate([pos[~cont & ~good_lead], cont_pos[unclaimed]]))


def _parse_fast(lines: Lines, idx: np.ndarray) -> tuple[list[tuple[pl.DataFrame, np.ndarray]], list[np.ndarray]]:
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
    user_id = pl.col("user_id").cast(pl.Utf8, strict=False)    # Binary in the fast parser's schema
    ok = pl.all_horizontal(
        user_id.str.contains(r"^[0-9]+$").fill_null(False),
        (pl.col("gmap_id").str.len_bytes() > 0).fill_null(False),
        pl.col("time").is_not_null(),
        pl.col("rating").is_between(1, 5).fill_null(False),
        *[~pl.col(c).str.contains(_COERCED).fill_null(False) for c in ("name", "text", "gmap_id")],
        # Polars reads a lone surrogate escape as NUL: such rows go line by line.
        *[~pl.col(c).str.contains("\x00", literal=True).fill_null(False) for c in ("name", "text", "gmap_id")],
    )
    out = df.select(
        user_id.alias("user_id"),
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


class Parsed(NamedTuple):
    """What a chunk of one file became. ``raw(line)`` gives a line's bytes back."""
    accepted: pl.DataFrame      # in the table's schema, in line order
    rejected: pl.DataFrame      # REJECTED_SCHEMA
    n_lines: int
    raw: Callable[[int], bytes]
    notes: Counter | None = None     # parsed lines with a field stored as null, by why (places)


def rejected_frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=REJECTED_SCHEMA, orient="row")


def _long_line(chunk: Chunk, file: str, schema: pl.Schema) -> Parsed:
    head, n = chunk.data
    rejected = rejected_frame([(file, chunk.first_line, "line too long",
                                raw_text(head[:RAW_MAX_CHARS]) + f" ... [cut: line is {n} bytes]")])
    return Parsed(pl.DataFrame(schema=schema), rejected, 1, lambda line: head)


def prepare_reviews(data: bytes) -> Lines:
    """Line boundaries and the lines worth a fast parse (numpy; runs on the reader thread)."""
    lines = Lines(data)
    lines.plausible = lines.could_be_objects()
    if not data.isascii():               # invalid UTF-8 would fail the whole parse: set it aside
        lines.plausible &= ~lines.invalid_utf8()
    return lines


def parse_reviews(chunk: Chunk, file: str) -> Parsed:
    """One chunk of review lines: the fast path, and the per-line path for what it left (on a parse worker)."""
    if isinstance(chunk.data, LongLine):
        return _long_line(chunk, file, REVIEW_SCHEMA)
    lines = chunk.prepared if chunk.prepared is not None else prepare_reviews(chunk.data)
    plausible = lines.plausible
    parsed, left = _parse_fast(lines, np.flatnonzero(plausible))
    frames, unsure = [], [np.flatnonzero(~plausible), *left]
    for df, idx in parsed:
        good, not_sure = _fast_reviews(df, idx, chunk.first_line, file)
        frames.append(good)
        unsure.append(not_sure)
    slow_rows, rejected = [], []
    for i in np.sort(np.concatenate(unsure)).tolist():
        row, reason = check_review(lines.raw(i))
        if row is None:
            rejected.append((file, chunk.first_line + i, reason, raw_text(lines.raw(i))))
        else:
            slow_rows.append((*row, file, chunk.first_line + i))
    if slow_rows:
        frames.append(pl.DataFrame(slow_rows, schema=REVIEW_SCHEMA, orient="row"))
    accepted = pl.concat(frames) if frames else pl.DataFrame(schema=REVIEW_SCHEMA)
    if slow_rows and len(frames) > 1:
        accepted = accepted.sort("line")
    return Parsed(accepted, rejected_frame(rejected), len(lines),
                  lambda line: lines.raw(line - chunk.first_line))


def split_lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1]


def parse_places(chunk: Chunk, file: str) -> Parsed:
    """One chunk of meta lines, line by line."""
    if isinstance(chunk.data, LongLine):
        return _long_line(chunk, file, PLACE_SCHEMA)
    raws = chunk.prepared if chunk.prepared is not None else split_lines(chunk.data)
    rows, rejected, notes = [], [], Counter()
    for i, raw in enumerate(raws):
        row, reason = check_place(raw, notes)
        if row is None:
            rejected.append((file, chunk.first_line + i, reason, raw_text(raw)))
        else:
            rows.append((*row, file, chunk.first_line + i))
    return Parsed(pl.DataFrame(rows, schema=PLACE_SCHEMA, orient="row"), rejected_frame(rejected),
                  len(raws), lambda line: raws[line - chunk.first_line], notes)

