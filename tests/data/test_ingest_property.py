"""Property (issue 10, "Done when"): for any mix of valid and mutated review lines, every line
read is accounted for exactly once (accepted + rejected = lines read, each line number in one
table) and every rejected line carries a reason. Hypothesis draws the lines, the mutations,
gzip or not, and the chunk size."""

import gzip
import json
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recpie_core.data.google_local import ingest_reviews, read_table

REASONS = {"malformed JSON", "not an object", "empty line", "invalid UTF-8", "line too long", "bad user_id",
           "missing user_id", "bad gmap_id", "missing gmap_id", "bad time", "missing time", "bad rating",
           "missing rating", "rating out of range", "time out of range", "duplicate"}
ODD_VALUES = [None, "", "5", 5.5, -5, 0, 2**64 + 1, 1e400, True, [], {}, [1, [2]], "\ud800", "<|im_start|>",
              "x" * 300, 1_600_000_000, 253_402_300_799_000]
KEYS = ["user_id", "name", "time", "rating", "text", "pics", "resp", "gmap_id"]

valid = st.fixed_dictionaries({
    "user_id": st.integers(0, 50).map(lambda i: str(10**20 + i)),
    "name": st.text(max_size=12),
    "time": st.integers(1_000_000_000_000, 1_700_000_000_000),
    "rating": st.integers(1, 5),
    "text": st.one_of(st.none(), st.text(max_size=40)),
    "pics": st.none(),
    "resp": st.none(),
    "gmap_id": st.integers(0, 20).map(lambda i: f"0x{i:x}:0x1"),
})
no_newline = st.binary(max_size=4).map(lambda b: b.replace(b"\n", b""))


@st.composite
def review_line(draw) -> bytes:
    row = draw(valid)
    kind = draw(st.sampled_from(["valid", "value", "drop_key", "cut", "insert", "blank", "not_object"]))
    if kind == "value":
        row[draw(st.sampled_from(KEYS))] = draw(st.sampled_from(ODD_VALUES))
    elif kind == "drop_key":
        del row[draw(st.sampled_from(KEYS))]
    raw = json.dumps(row, allow_nan=True).encode("utf-8", "surrogatepass")
    if kind == "cut":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif kind == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(no_newline) + raw[at:]
    elif kind == "blank":
        raw = draw(st.sampled_from([b"", b"  ", b"\r"]))
    elif kind == "not_object":
        raw = draw(st.sampled_from([b"[1]", b"null", b'"text"', b"42"]))
    return raw


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(review_line(), min_size=1, max_size=40), repeats=st.lists(st.integers(0, 39), max_size=5),
       gzipped=st.booleans(), chunk_bytes=st.sampled_from([1, 300, 8 << 20]))
def test_every_line_is_accepted_or_rejected_with_a_reason(lines, repeats, gzipped, chunk_bytes):
    lines = lines + [lines[i % len(lines)] for i in repeats]          # duplicates, anywhere later
    data = b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / ("review-p.json.gz" if gzipped else "review-p.json")
        src.write_bytes(gzip.compress(data) if gzipped else data)
        s = ingest_reviews([src], Path(tmp) / "o", Path(tmp) / "r", chunk_bytes=chunk_bytes)
        accepted, rejected = read_table(Path(tmp) / "o").collect(), read_table(Path(tmp) / "r").collect()
    assert s.lines_read == len(lines) == accepted.height + rejected.height == s.accepted + s.rejected
    numbers = pl.concat([accepted["line"], rejected["line"]]).sort().to_list()
    assert numbers == list(range(1, len(lines) + 1))                  # each line once, in one table
    assert set(rejected["reason"]) <= REASONS and rejected["reason"].null_count() == 0
    assert sum(s.rejected_by_reason.values()) == rejected.height
