"""The typed batch every rating model takes, and the encoding of the split table into it.

Input is the ``user_temporal_split`` table (one row per rating, see
``sql/user_temporal_split.sql``) and, for place metadata, ``raw_places``. Strings become
integer ids here, once: id 0 is reserved for "unknown" (a place or category first seen
after training) and for history padding.

Ratings are carried on the unit scale, (r - 1) / 4, in [0, 1]; ``stars(x) = 1 + 4x``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np
import polars as pl
import torch
from torch import Tensor

SPLITS = ("train", "valid", "test")


def to_unit(stars):
    """Star rating 1..5 -> unit scale [0, 1]."""
    return (stars - 1.0) / 4.0


def to_stars(unit):
    """Unit scale [0, 1] -> star rating 1..5."""
    return 1.0 + 4.0 * unit


@dataclass
class RatingBatch:
    """B rows. Histories are left-padded: the newest item sits at position L-1."""

    user: Tensor  # (B,) long, 1..n_users (0 = unknown)
    place: Tensor  # (B,) long, 1..n_places (0 = unknown)
    category: Tensor  # (B,) long, candidate's main category (0 = unknown)
    hist_place: Tensor  # (B, L) long, 0 at padding
    hist_rating: Tensor  # (B, L) float, unit scale, 0 at padding
    hist_mask: Tensor  # (B, L) bool, True at real history items
    rating: Tensor  # (B,) float, target on the unit scale
    pos_emb: Tensor | None = None  # (B, E) positive-explanation sentence embedding
    neg_emb: Tensor | None = None  # (B, E) negative-explanation sentence embedding

    def to(self, device: torch.device | str):
        """A copy (of the same class) with every tensor on ``device``; other fields are shared."""
        moved = {f.name: (v.to(device) if isinstance(v := getattr(self, f.name), Tensor) else v) for f in fields(self)}
        return type(self)(**moved)

    def __len__(self) -> int:
        return self.user.shape[0]


@dataclass
class RatingTensors(RatingBatch):
    """A whole table as tensors (N rows), plus the key columns to join results back."""

    keys: pl.DataFrame | None = None  # (N rows) user_id, place_id, ts, rating

    def batch(self, idx: Tensor) -> RatingBatch:
        """Rows ``idx`` as a RatingBatch (vectorised gather, no per-row Python)."""
        take = lambda t: None if t is None else t[idx]  # noqa: E731
        return RatingBatch(
            user=self.user[idx], place=self.place[idx], category=self.category[idx],
            hist_place=self.hist_place[idx], hist_rating=self.hist_rating[idx],
            hist_mask=self.hist_mask[idx], rating=self.rating[idx],
            pos_emb=take(self.pos_emb), neg_emb=take(self.neg_emb),
        )

    def with_explanations(self, pos_emb: Tensor | None, neg_emb: Tensor | None) -> RatingTensors:
        """A copy carrying explanation embeddings (N, E) aligned with the rows."""
        if pos_emb is not None and (pos_emb.shape[0] != len(self) or neg_emb is None or neg_emb.shape != pos_emb.shape):
            raise ValueError(f"explanation embeddings must both be ({len(self)}, E); got "
                             f"{None if pos_emb is None else tuple(pos_emb.shape)} and "
                             f"{None if neg_emb is None else tuple(neg_emb.shape)}")
        return replace(self, pos_emb=pos_emb, neg_emb=neg_emb)


@dataclass(frozen=True)
class Vocab:
    """String ids to integer ids. Built from training rows only; 0 means unknown."""

    users: dict[str, int]
    places: dict[str, int]
    categories: dict[str, int]
    place_category: dict[str, str]  # place_id -> main category name

    @property
    def n_users(self) -> int:
        return len(self.users) + 1  # + the unknown id 0

    @property
    def n_places(self) -> int:
        return len(self.places) + 1

    @property
    def n_categories(self) -> int:
        return len(self.categories) + 1


@dataclass
class RatingData:
    """The encoded split: train (model fitting), valid (model selection), test (report only)."""

    vocab: Vocab
    train: RatingTensors
    valid: RatingTensors
    test: RatingTensors
    hist_len: int

    def part(self, name: str) -> RatingTensors:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)


def build_vocab(split: pl.DataFrame, places: pl.DataFrame | None = None) -> Vocab:
    """Ids for every user and place seen in training rows (candidates or histories)."""
    train = split.filter(pl.col("split") == "train")
    users = sorted(train["user_id"].unique().to_list())
    seen = pl.concat([train["place_id"], train["hist_place_ids"].explode().drop_nulls()])
    place_ids = sorted(seen.unique().to_list())
    place_category: dict[str, str] = {}
    if places is not None and "category" in places.columns:
        main = places.select("place_id", pl.col("category").list.first().alias("main")).drop_nulls()
        place_category = dict(zip(main["place_id"].to_list(), main["main"].to_list()))
    cats = sorted({place_category[p] for p in place_ids if p in place_category})
    return Vocab(
        users={u: i + 1 for i, u in enumerate(users)},
        places={p: i + 1 for i, p in enumerate(place_ids)},
        categories={c: i + 1 for i, c in enumerate(cats)},
        place_category=place_category,
    )


def _left_pad(lists: pl.Series, length: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length lists -> (N, length) array, left-padded with 0, and its mask."""
    tails = lists.list.tail(length)
    lens = tails.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = tails.explode().drop_nulls().to_numpy()  # empty lists explode to one null
    n = len(lists)
    out = np.zeros((n, length), dtype=dtype)
    mask = np.zeros((n, length), dtype=bool)
    rows = np.repeat(np.arange(n), lens)
    starts = np.repeat(np.cumsum(lens) - lens, lens)
    cols = length - np.repeat(lens, lens) + (np.arange(lens.sum()) - starts)
    out[rows, cols] = flat
    mask[rows, cols] = True
    return out, mask


def encode(rows: pl.DataFrame, vocab: Vocab, hist_len: int) -> RatingTensors:
    """Encode split-table rows (any subset) into tensors; unknown strings map to 0."""
    ids = lambda col, mapping: col.replace_strict(mapping, default=0, return_dtype=pl.Int64)  # noqa: E731
    cat_of_place = {p: vocab.categories.get(c, 0) for p, c in vocab.place_category.items()}
    enc = rows.select(
        ids(pl.col("user_id"), vocab.users).alias("user"),
        ids(pl.col("place_id"), vocab.places).alias("place"),
        pl.col("place_id").replace_strict(cat_of_place, default=0, return_dtype=pl.Int64).alias("category"),
        pl.col("hist_place_ids").list.eval(ids(pl.element(), vocab.places)).alias("hist_place"),
        pl.col("hist_ratings").cast(pl.List(pl.Float32)).alias("hist_rating"),
        pl.col("rating").cast(pl.Float32).alias("rating"),
    )
    hist_place, mask = _left_pad(enc["hist_place"], hist_len, np.int64)
    hist_rating, _ = _left_pad(enc["hist_rating"], hist_len, np.float32)
    return RatingTensors(
        user=torch.from_numpy(enc["user"].to_numpy().copy()),
        place=torch.from_numpy(enc["place"].to_numpy().copy()),
        category=torch.from_numpy(enc["category"].to_numpy().copy()),
        hist_place=torch.from_numpy(hist_place),
        hist_rating=torch.from_numpy(np.where(mask, to_unit(hist_rating), 0.0).astype(np.float32)),
        hist_mask=torch.from_numpy(mask),
        rating=torch.from_numpy(to_unit(enc["rating"].to_numpy().astype(np.float32))),
        keys=rows.select("user_id", "place_id", "ts", "rating"),
    )


def load_rating_data(split: pl.DataFrame, places: pl.DataFrame | None = None, hist_len: int = 20) -> RatingData:
    """The ``user_temporal_split`` table -> train/valid/test tensors.

    ``valid`` is the rows flagged ``valid`` (the newest part of each user's training
    ratings); ``train`` the other training rows; ``test`` the ``split = 'test'`` rows.
    """
    needed = {"user_id", "place_id", "rating", "ts", "split", "valid", "hist_place_ids", "hist_ratings"}
    missing = needed - set(split.columns)
    if missing:
        raise ValueError(f"split table lacks columns {sorted(missing)}")
    if split.filter(pl.col("split") == "train").is_empty():
        raise ValueError("the split table has no training rows: nothing to train on")
    vocab = build_vocab(split, places)
    part = lambda cond: encode(split.filter(cond), vocab, hist_len)  # noqa: E731
    return RatingData(
        vocab=vocab,
        train=part((pl.col("split") == "train") & ~pl.col("valid")),
        valid=part((pl.col("split") == "train") & pl.col("valid")),
        test=part(pl.col("split") == "test"),
        hist_len=hist_len,
    )


def make_loader(data: RatingTensors, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[RatingBatch]:
    """Batches of ``data``; a permutation per call when ``shuffle`` (seed via ``generator``)."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        yield data.batch(order[start:start + batch_size])
