"""Synthetic Google Local files: the latent model's draw (``synthetic.py``) written out.

Writes ``review-<Region>.json.gz`` and ``meta-<Region>.json.gz`` in the format of the UCSD
"Google Local Data 2021" files (JSON lines, gzip, keys in the real files' order), plus
``truth-*.parquet`` side files that ingestion never reads. Users are drawn and written
``CHUNK_USERS`` at a time; the review lines of a chunk are rendered from the chunk's random
stream right after its reviews are drawn, so the same seed gives the same bytes.

Truth files: ``truth-<Region>`` (one row per review, in review-file order; ``load_truth``),
``truth-places-<Region>`` (``load_place_truth``) and ``truth-users-<Region>`` (likes,
dislikes, b_u).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from recpie_core.data import synthetic_vocab as vocab
from recpie_core.data.synthetic import (
    CATEGORY,
    CHUNK_USERS,
    CITY,
    Places,
    Reviews,
    SyntheticConfig,
    Users,
    draw_places,
    draw_reviews,
    draw_users,
    star_cutpoints,
)
from recpie_core.data.synthetic_vocab import ASPECTS
from recpie_core.io import atomic_write

_POS_SENT = [[t.format(a) for t in vocab.LIKED] for a in ASPECTS]
_NEG_SENT = [[t.format(a) for t in vocab.DISLIKED] for a in ASPECTS]


@dataclass(frozen=True)
class SyntheticSummary:
    paths: dict[str, Path]  # "review", "meta", "truth", "truth_places", "truth_users"
    n_users: int
    n_reviews: int
    n_places: int
    n_meta_lines: int  # n_places plus duplicate lines


def truth_paths(out_dir: Path, region: str = "California") -> dict[str, Path]:
    """The files one region's generation writes, by key (as in SyntheticSummary.paths)."""
    names = {"review": f"review-{region}.json.gz", "meta": f"meta-{region}.json.gz",
             "truth": f"truth-{region}.parquet", "truth_places": f"truth-places-{region}.parquet",
             "truth_users": f"truth-users-{region}.parquet"}
    return {key: Path(out_dir) / name for key, name in names.items()}


def load_truth(out_dir: Path, region: str = "California") -> pl.DataFrame:
    """One row per review, in file order: user_id, place_id, ts (ms), rating (1-5),
    liked_aspects, disliked_aspects, n_recent_same_category, score (latent, before stars)."""
    return pl.read_parquet(truth_paths(out_dir, region)["truth"])


def load_place_truth(out_dir: Path, region: str = "California") -> pl.DataFrame:
    """One row per place: place_id, categories, aspects, zip, in_mountain_view, place_bias,
    name_aspect (the aspect its name hints at, or null)."""
    return pl.read_parquet(truth_paths(out_dir, region)["truth_places"])


# ----------------------------------------------------------------------------- lines, tables

_PIC_URL = "https://lh5.googleusercontent.com/p/AF1Qip"
_REVIEW_LINE = ('{"user_id": "%s", "name": %s, "time": %d, "rating": %d, "text": %s, '
                '"pics": %s, "resp": %s, "gmap_id": "%s"}\n')


def _review_text(stars: int, liked: list[int], disliked: list[int], k: int) -> str:
    """JSON string: an opener for the stars, then one sentence per liked/disliked aspect."""
    parts = [vocab.OPENERS[stars][k & 1]]
    parts += [_POS_SENT[a][(k >> 1) % 3] for a in liked if a >= 0]
    parts += [_NEG_SENT[a][(k >> 3) % 3] for a in disliked if a >= 0]
    return '"' + " ".join(parts) + '"'

def _review_lines(rng: np.random.Generator, cfg: SyntheticConfig, places: Places, users: Users,
                  rev: Reviews, stars: np.ndarray) -> str:
    """The chunk's review JSON lines, keys in the real files' order."""
    m = len(stars)
    has_text = (rng.random(m) >= cfg.text_null_share).tolist()
    pick = rng.integers(0, 1 << 30, m).tolist()
    pics = (rng.random(m) < cfg.pics_share).tolist()
    delay = rng.integers(3_600_000, 30 * 86_400_000, m)  # owner replies 1 h to 30 days later
    resp_ts = np.where(rng.random(m) < cfg.resp_share, rev.ts + delay, 0).tolist()
    uid, name, gid = users.user_id, users.name_json, places.gmap_id
    lines = []
    for u, p, t, r, lk, dk, text, k, pic, rt in zip(
        rev.user.tolist(), rev.place.tolist(), rev.ts.tolist(), stars.tolist(), rev.liked.tolist(),
        rev.disliked.tolist(), has_text, pick, pics, resp_ts,
    ):
        text = _review_text(r, lk, dk, k) if text else "null"
        pic = f'[{{"url": ["{_PIC_URL}{k:08x}"]}}]' if pic else "null"
        resp = f'{{"time": {rt}, "text": "{vocab.REPLIES[k % 2 if r >= 3 else 2]}"}}' if rt else "null"
        lines.append(_REVIEW_LINE % (uid[u], name[u], t, r, text, pic, resp, gid[p]))
    return "".join(lines)


def _aspect_lists(counts: np.ndarray, ids: np.ndarray) -> pa.Array:
    """list<string> column: row n holds the next counts[n] aspects of ids (flat, row-major)."""
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    values = pa.array(np.asarray(ASPECTS, dtype=object)[ids], pa.string())
    return pa.ListArray.from_arrays(offsets, values)


_TRUTH_SCHEMA = pa.schema([("user_id", pa.string()), ("place_id", pa.string()), ("ts", pa.int64()),
                           ("rating", pa.int64()), ("liked_aspects", pa.list_(pa.string())),
                           ("disliked_aspects", pa.list_(pa.string())),
                           ("n_recent_same_category", pa.int64()), ("score", pa.float32())])
_USER_SCHEMA = pa.schema([("user_id", pa.string()), ("likes", pa.list_(pa.string())),
                          ("dislikes", pa.list_(pa.string())), ("user_bias", pa.float64()),
                          ("mv_share", pa.float64()), ("n_reviews", pa.int64())])


def _truth_tables(
    places: Places, users: Users, rev: Reviews, stars: np.ndarray
) -> tuple[pa.Table, pa.Table]:
    """The chunk's rows of truth-<Region> (one per review) and truth-users-<Region>."""
    uid = np.asarray(users.user_id, dtype=object)
    reviews = pa.table([
        pa.array(uid[rev.user], pa.string()), pa.array(places.gmap_id[rev.place], pa.string()),
        rev.ts, stars.astype(np.int64),
        _aspect_lists((rev.liked >= 0).sum(axis=1), rev.liked[rev.liked >= 0]),
        _aspect_lists((rev.disliked >= 0).sum(axis=1), rev.disliked[rev.disliked >= 0]),
        rev.n_recent, rev.score.astype(np.float32),
    ], schema=_TRUTH_SCHEMA)
    like, dislike = users.pref[:, :-1] > 0, users.pref[:, :-1] < 0
    people = pa.table([
        pa.array(uid, pa.string()), _aspect_lists(like.sum(axis=1), np.nonzero(like)[1]),
        _aspect_lists(dislike.sum(axis=1), np.nonzero(dislike)[1]), users.bias, users.mv_share,
        np.bincount(rev.user, minlength=len(uid)),
    ], schema=_USER_SCHEMA)
    return reviews, people


def _address(
    rng: np.random.Generator, cfg: SyntheticConfig, name: str, city: str, zip_: int
) -> str | None:
    """"Name, 123 Street, City, CA 94041" (sometimes ZIP+4), or None."""
    if rng.random() < cfg.address_null_share:
        return None
    plus4 = f"-{rng.integers(1000, 10000)}" if rng.random() < cfg.zip4_share else ""
    street = vocab.STREETS[rng.integers(len(vocab.STREETS))]
    return f"{name}, {rng.integers(1, 3000)} {street}, {city}, CA {zip_}{plus4}"


def _meta_line(rng: np.random.Generator, cfg: SyntheticConfig, places: Places, p: int,
               n_reviews: int, star_sum: float, gmap_ids: list[str]) -> str:
    """One meta JSON line; avg_rating and num_of_reviews are those of the written reviews."""
    name, cats, city = places.name[p], places.categories[p], CITY[places.city[p]]
    primary = int(places.primary[p])
    (opens, closes), price = CATEGORY[primary].hours, CATEGORY[primary].price
    _, lat, lon = vocab.CITIES[city]
    start, closed = rng.integers(7), rng.integers(-7, 7)  # closed one day a week half the time
    hours = [[vocab.DAYS[d % 7], "Closed" if d % 7 == closed else f"{opens}–{closes}"]
             for d in range(start, start + 7)]
    near = dict.fromkeys(rng.integers(len(gmap_ids), size=rng.integers(2, 6)).tolist())
    related = [gmap_ids[q] for q in near if q != p]
    row = {
        "name": name,
        "address": _address(rng, cfg, name, city, places.zip[p]),
        "gmap_id": gmap_ids[p],
        "description": places.description[p],
        "latitude": round(lat + rng.normal(0, 0.015), 7),
        "longitude": round(lon + rng.normal(0, 0.015), 7),
        "category": cats,
        "avg_rating": round(star_sum / n_reviews, 1) if n_reviews else None,
        "num_of_reviews": n_reviews,
        "price": price,
        "hours": hours,
        "MISC": {"Service options": ["Dine-in", "Takeout"][: rng.integers(1, 3)],
                 "Accessibility": ["Wheelchair accessible entrance"]},
        "state": f"Open ⋅ Closes {closes}" if rng.random() < 0.6 else f"Closed ⋅ Opens {opens}",
        "relative_results": related,
        "url": f"https://www.google.com/maps/place//data=!4m2!3m1!1s{gmap_ids[p]}"
               "?authuser=-1&hl=en&gl=us",
    }
    for key in ("category", "price", "hours", "MISC", "state", "relative_results"):
        draw = rng.random()
        if draw < cfg.meta_missing_key_share:
            del row[key]
        elif draw < cfg.meta_missing_key_share + cfg.meta_null_share:
            row[key] = None
    return json.dumps(row, ensure_ascii=False) + "\n"


# ----------------------------------------------------------------------------- writer


@contextmanager
def _gzip_text(path: Path, compresslevel: int) -> Iterator[gzip.GzipFile]:
    """Deterministic gzip: no file name and mtime 0 in the header."""
    with (open(path, "wb") as raw,
          gzip.GzipFile(filename="", mode="wb", compresslevel=compresslevel, fileobj=raw,
                        mtime=0) as gz):
        yield gz


def _atomic_all(targets: Sequence[Path], write: Callable[..., None], tmps: tuple = ()) -> None:
    """atomic_write for files written together: write(*tmps), then each moves to its target."""
    if not targets:
        write(*tmps)
        return
    atomic_write(targets[0], lambda tmp: _atomic_all(targets[1:], write, (*tmps, tmp)))


def write_synthetic_google_local(cfg: SyntheticConfig, out_dir: Path) -> SyntheticSummary:
    """Write the review, meta and truth files of one region to out_dir (see module docstring).

    Users are generated CHUNK_USERS at a time, so memory is bounded by the chunk and the
    places, whatever n_users. Reviews are grouped by user, in time order within a user.
    """
    paths = truth_paths(out_dir, cfg.region)
    places = draw_places(np.random.default_rng([cfg.seed, 0]), cfg)
    cuts = star_cutpoints(cfg, places)
    star_sum, n_rated = np.zeros(cfg.n_places), np.zeros(cfg.n_places, dtype=np.int64)  # per place

    def write_reviews(review_tmp: Path, truth_tmp: Path, users_tmp: Path) -> None:
        with (_gzip_text(review_tmp, cfg.compresslevel) as gz,
              pq.ParquetWriter(truth_tmp, _TRUTH_SCHEMA) as truth,
              pq.ParquetWriter(users_tmp, _USER_SCHEMA) as people):
            for chunk, first in enumerate(range(0, cfg.n_users, CHUNK_USERS)):
                rng = np.random.default_rng([cfg.seed, 2, chunk])
                users = draw_users(rng, cfg, places, first, min(CHUNK_USERS, cfg.n_users - first))
                rev = draw_reviews(rng, cfg, places, users)
                stars = np.searchsorted(cuts, rev.score) + 1
                gz.write(_review_lines(rng, cfg, places, users, rev, stars).encode())
                for writer, table in zip((truth, people), _truth_tables(places, users, rev, stars)):
                    writer.write_table(table)
                star_sum[:] += np.bincount(rev.place, weights=stars, minlength=cfg.n_places)
                n_rated[:] += np.bincount(rev.place, minlength=cfg.n_places)

    _atomic_all([paths["review"], paths["truth"], paths["truth_users"]], write_reviews)

    rng = np.random.default_rng([cfg.seed, 3])
    gmap_ids = places.gmap_id.tolist()
    lines = [_meta_line(rng, cfg, places, p, int(n_rated[p]), float(star_sum[p]), gmap_ids)
             for p in range(cfg.n_places)]
    duplicates = [line for line in lines if rng.random() < cfg.meta_duplicate_share]

    def write_meta(tmp: Path) -> None:
        with _gzip_text(tmp, cfg.compresslevel) as gz:
            gz.write("".join(lines + duplicates).encode())

    atomic_write(paths["meta"], write_meta)
    has = places.aspects >= 0
    place_truth = pa.table({
        "place_id": pa.array(gmap_ids, pa.string()),
        "categories": pa.array(places.categories, pa.list_(pa.string())),
        "aspects": _aspect_lists(has.sum(axis=1), places.aspects[has]),
        "zip": pa.array(places.zip.astype(str), pa.string()),
        "in_mountain_view": places.in_mv, "place_bias": places.bias,
        "name_aspect": pa.array(np.where(places.name_aspect >= 0, np.asarray(ASPECTS, dtype=object)[places.name_aspect],
                                         None), pa.string()),
    })
    atomic_write(paths["truth_places"], lambda tmp: pq.write_table(place_truth, tmp))
    return SyntheticSummary(paths, cfg.n_users, int(n_rated.sum()), cfg.n_places,
                            len(lines) + len(duplicates))
