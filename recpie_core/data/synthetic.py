"""Synthetic Google Local data with a known latent structure.

Writes ``review-<Region>.json.gz`` and ``meta-<Region>.json.gz`` in the format of the UCSD
"Google Local Data 2021" files (JSON lines, gzip), plus ``truth-*.parquet`` side files
that ingestion never reads.

The latent model, per review of place p by user u:

    score = b_u + b_p + aspect_weight * (#liked - #disliked) + repeat_effect * n_recent + noise

- Each place has 1-3 categories (the first is its *primary* category) and 2-4 aspects from
  ``ASPECTS``, drawn from its primary category's pool; its description names every one.
- Each user likes 3-6 aspects and dislikes 2-4 (common sense decides who likes what:
  "friendly staff" is liked, "long wait" disliked, "live music" divides). ``#liked`` and
  ``#disliked`` count the place's aspects that u likes or dislikes: these are the truth's
  ``liked_aspects`` and ``disliked_aspects`` (the aspects that moved the rating).
- Sequential effect (satiation): ``n_recent`` is how many of u's previous
  ``repeat_window`` places share p's primary category; ``repeat_effect`` < 0 means a
  category visited recently is less appealing now, so variety is rewarded.
- ``b_u``, ``b_p`` and ``noise`` are Gaussian. Stars are the score cut at quantiles of a
  pilot sample, so the star shares match ``star_shares`` (skewed high, as on Google Maps).
- Review text names the liked and disliked aspects ("Great spot! Loved the live music.
  Annoyed by the long wait."); a share of texts is null, as in the real files.

Places sit across California; ``mountain_view_share`` of them in zip codes 94035-94043.
Some users rate only places outside those zip codes. Each user's reviews are in time order
(ms since the epoch, 2016-2021). Same seed, same bytes.

Truth files: ``truth-<Region>`` (one row per review, in review-file order; ``load_truth``),
``truth-places-<Region>`` (``load_place_truth``) and ``truth-users-<Region>`` (likes,
dislikes, b_u).
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from recpie_core.io import atomic_write

# aspect: (valence: +1 most users like it, -1 most dislike it, 0 divides; description sentence)
_ASPECT_TABLE = {
    "live music": (0, "There is live music on most evenings."),
    "vegan options": (0, "The menu has plenty of vegan options."),
    "quiet workspace": (1, "It doubles as a quiet workspace with outlets at every table."),
    "outdoor seating": (1, "There is outdoor seating under the trees."),
    "friendly staff": (1, "The friendly staff know the regulars by name."),
    "long wait": (-1, "Visitors should expect a long wait at peak hours."),
    "fast service": (1, "Fast service keeps the line moving."),
    "free wifi": (1, "Free wifi is available to every guest."),
    "specialty coffee": (1, "They pour specialty coffee from local roasters."),
    "craft beer": (0, "A rotating list of craft beer is on tap."),
    "creative cocktails": (0, "The bar is known for creative cocktails."),
    "happy hour deals": (1, "Weekday happy hour deals draw a crowd."),
    "large portions": (1, "Plates come in large portions."),
    "high prices": (-1, "High prices match the prime location."),
    "cheap eats": (1, "Locals call it a go-to for cheap eats."),
    "kids area": (0, "A kids area keeps the little ones busy."),
    "dog-friendly patio": (0, "Bring your pup to the dog-friendly patio."),
    "easy parking": (1, "There is easy parking in the lot out back."),
    "crowds": (-1, "Weekend crowds fill every corner."),
    "loud music": (-1, "Reviewers mention loud music late into the night."),
    "fresh pastries": (1, "Fresh pastries come out of the oven every morning."),
    "gluten-free options": (0, "Gluten-free options are clearly marked."),
    "late-night hours": (0, "Late-night hours make it a good last stop."),
    "clean restrooms": (1, "Guests appreciate the clean restrooms."),
    "rude staff": (-1, "Some reviewers mention rude staff at the counter."),
    "scenic views": (1, "Scenic views stretch across the bay."),
    "walking trails": (1, "Shaded walking trails loop through the grounds."),
    "modern equipment": (1, "Two floors are filled with modern equipment."),
    "group classes": (0, "Group classes run from dawn to dusk."),
    "rare books": (0, "Shelves of rare books line the back room."),
    "reading nooks": (1, "Cozy reading nooks invite you to stay."),
    "interactive exhibits": (1, "Interactive exhibits cover science and history."),
    "guided tours": (0, "Guided tours start every hour."),
    "sports on TV": (0, "Big screens show sports on TV all day."),
    "spicy food": (0, "The kitchen is famous for spicy food."),
    "brunch menu": (1, "A weekend brunch menu runs until 3pm."),
    "picnic tables": (1, "Picnic tables sit in the shade near the entrance."),
    "cramped space": (-1, "The cramped space fills up quickly."),
}
ASPECTS: tuple[str, ...] = tuple(_ASPECT_TABLE)
_VALENCE = np.array([v for v, _ in _ASPECT_TABLE.values()])
_AID = {a: i for i, a in enumerate(ASPECTS)}
_EVERYWHERE = ("friendly staff", "rude staff", "long wait", "high prices", "easy parking", "crowds")

# primary category: (secondary categories, aspect pool besides _EVERYWHERE, hours, price)
_CATEGORIES = {
    "Cafe": (("Coffee shop", "Breakfast restaurant", "Espresso bar"),
             ("specialty coffee", "quiet workspace", "free wifi", "outdoor seating",
              "fresh pastries", "vegan options", "dog-friendly patio", "cramped space"),
             ("7AM", "6PM"), "$"),
    "Restaurant": (("Mexican restaurant", "Italian restaurant", "Vegan restaurant",
                    "Brunch restaurant", "Thai restaurant"),
                   ("large portions", "vegan options", "gluten-free options", "outdoor seating",
                    "spicy food", "brunch menu", "fast service", "cheap eats", "kids area"),
                   ("11AM", "10PM"), "$$"),
    "Bar": (("Pub", "Sports bar", "Cocktail bar", "Wine bar"),
            ("live music", "craft beer", "creative cocktails", "happy hour deals",
             "sports on TV", "loud music", "late-night hours", "outdoor seating"),
            ("4PM", "2AM"), "$$"),
    "Bakery": (("Dessert shop", "Pastry shop", "Cafe"),
               ("fresh pastries", "specialty coffee", "gluten-free options", "vegan options",
                "cheap eats", "fast service", "cramped space"),
               ("6AM", "3PM"), "$"),
    "Park": (("Hiking area", "Playground", "Dog park"),
             ("walking trails", "scenic views", "kids area", "dog-friendly patio",
              "picnic tables", "clean restrooms"),
             ("6AM", "10PM"), None),
    "Museum": (("Art museum", "Science museum", "History museum"),
               ("interactive exhibits", "guided tours", "kids area", "clean restrooms",
                "scenic views"),
               ("10AM", "5PM"), "$$"),
    "Gym": (("Fitness center", "Yoga studio", "Climbing gym"),
            ("modern equipment", "group classes", "late-night hours", "clean restrooms",
             "loud music", "cramped space"),
            ("5AM", "11PM"), "$$"),
    "Bookstore": (("Used book store", "Comic book store", "Cafe"),
                  ("rare books", "reading nooks", "quiet workspace", "specialty coffee",
                   "free wifi"),
                  ("9AM", "9PM"), "$"),
    "Live music venue": (("Night club", "Concert hall", "Bar"),
                         ("live music", "loud music", "late-night hours", "craft beer",
                          "creative cocktails"),
                         ("7PM", "2AM"), "$$"),
}
_PRIMARY = tuple(_CATEGORIES)
_NAME_NOUN = {"Cafe": "Cafe", "Restaurant": "Kitchen", "Bar": "Tavern", "Bakery": "Bakery",
              "Park": "Park", "Museum": "Museum", "Gym": "Fitness", "Bookstore": "Books",
              "Live music venue": "Music Hall"}
_POOL = np.array([[a in pool or a in _EVERYWHERE for a in ASPECTS]
                  for _, pool, _, _ in _CATEGORIES.values()])  # (n_primary, n_aspects)

# city: (zip codes, latitude, longitude); the first two are the Mountain View zip codes
_CITIES = {
    "Mountain View": ((94039, 94040, 94041, 94042, 94043), 37.386, -122.084),
    "Moffett Field": ((94035,), 37.415, -122.052),
    "Los Altos": ((94022, 94024), 37.385, -122.114),
    "Palo Alto": ((94301, 94303, 94306), 37.442, -122.143),
    "Sunnyvale": ((94085, 94086, 94087), 37.369, -122.036),
    "San Jose": ((95112, 95113, 95125, 95128), 37.338, -121.886),
    "San Francisco": ((94102, 94103, 94110, 94114, 94117), 37.774, -122.419),
    "Oakland": ((94607, 94610, 94612), 37.804, -122.271),
    "Santa Cruz": ((95060, 95062), 36.974, -122.031),
    "Sacramento": ((95811, 95814, 95816), 38.582, -121.494),
    "Fresno": ((93701, 93704, 93721), 36.738, -119.787),
    "Los Angeles": ((90012, 90026, 90028, 90036), 34.052, -118.244),
    "San Diego": ((92101, 92103, 92109), 32.716, -117.161),
}
_CITY = tuple(_CITIES)
_N_MV_CITIES = 2
_STREETS = ("Castro St", "El Camino Real", "Main St", "Oak Ave", "Shoreline Blvd", "Dana St",
            "California St", "Middlefield Rd", "Park Ave", "Mission St", "Broadway", "1st St")
_WORDS = ("Blue", "Golden", "Oak", "Sunny", "Little", "Corner", "Old Town", "Redwood", "Pacific",
          "Harbor", "Maple", "Silver", "Hidden", "Urban", "Copper", "Green Door")
_FIRST = ("Maria", "James", "Wei", "Priya", "David", "Sofia", "Michael", "Ana", "Kevin", "Emily",
          "Jose", "Aisha", "Daniel", "Mei", "Chris", "Laura", "Omar", "Hannah", "Luis", "Yuki")
_LAST = ("Garcia", "Smith", "Nguyen", "Patel", "Kim", "Johnson", "Lopez", "Chen", "Brown",
         "Martinez", "Singh", "Lee", "Davis", "Wong", "Rodriguez", "Miller", "Tran", "Khan")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Review text. All pieces are plain ASCII without quotes, so '"' + text + '"' is valid JSON.
_OPENERS = {1: ("Terrible experience.", "Would not come back."), 2: ("Not great.", "Meh."),
            3: ("It was okay.", "Average overall."), 4: ("Pretty good.", "Nice place."),
            5: ("Great spot!", "Absolutely loved it.")}
_LIKED = ("Loved the {}.", "Really enjoyed the {}.", "Big plus: the {}.")
_DISLIKED = ("Annoyed by the {}.", "Not a fan of the {}.", "Did not like the {}.")
_POS_SENT = [[t.format(a) for t in _LIKED] for a in ASPECTS]
_NEG_SENT = [[t.format(a) for t in _DISLIKED] for a in ASPECTS]
_REPLIES = ("Thank you for your review!", "Thanks for visiting, hope to see you again.",
            "We are sorry to hear that, please reach out to us.")
_PIECES = [*sum(_POS_SENT + _NEG_SENT, []), *sum(_OPENERS.values(), ()), *_REPLIES]
assert not any(c in piece for piece in _PIECES for c in '"\\')

_T_START_MS = 1451606400000  # 2016-01-01 UTC
_T_END_MS = 1633046400000  # 2021-10-01 UTC
_CHUNK_USERS = 2048  # users generated per numpy pass; part of the seed -> bytes contract
_ID_MUL = 1442695040888963407  # coprime with 9e19: user index -> user_id is a bijection


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 600  # reviewers
    n_places: int = 400  # places, each with one meta line (plus duplicates)
    seed: int = 0  # same seed -> byte-identical files
    region: str = "California"  # the <Region> in the file names
    mountain_view_share: float = 0.35  # share of places in zip codes 94035-94043
    outside_only_share: float = 0.3  # share of users who never rate a Mountain View place
    ratings_per_user_mean: float = 15.0  # mean reviews per user
    ratings_per_user_min: int = 5  # every user has at least this many (if places allow)
    ratings_tail_sigma: float = 1.0  # log-normal sigma of the extra reviews (heavy-ish tail)
    aspect_weight: float = 0.8  # score change per liked (+) or disliked (-) aspect of a place
    repeat_window: int = 3  # previous visits that count for the sequential effect
    repeat_effect: float = -0.4  # score change per recent visit of the same primary category
    user_bias_sd: float = 0.4  # sd of b_u (score units)
    place_bias_sd: float = 0.5  # sd of b_p (score units)
    noise_sd: float = 0.6  # sd of the per-review noise (score units)
    star_shares: tuple[float, ...] = (0.06, 0.05, 0.12, 0.25, 0.52)  # target share of 1..5 stars
    text_null_share: float = 0.25  # reviews with text null
    pics_share: float = 0.05  # reviews with pictures
    resp_share: float = 0.1  # reviews with an owner response
    meta_duplicate_share: float = 0.03  # meta lines written twice (identical)
    meta_null_share: float = 0.08  # chance that each optional meta field is null
    meta_missing_key_share: float = 0.03  # chance that each optional meta key is absent
    address_null_share: float = 0.03  # places with address null
    zip4_share: float = 0.15  # addresses with a ZIP+4 code ("CA 94043-1351")
    compresslevel: int = 6  # gzip level: 6 writes ~1.6x faster than 9, files ~5% larger

    def __post_init__(self):
        if self.n_places < 10 or self.n_users < 1:
            raise ValueError("need n_places >= 10 and n_users >= 1 for both place pools to exist")
        if not 0.0 < self.mountain_view_share < 1.0:
            raise ValueError("mountain_view_share must be in (0, 1): both pools must be non-empty")
        if not self.ratings_per_user_mean > self.ratings_per_user_min >= 1:
            raise ValueError("need ratings_per_user_mean > ratings_per_user_min >= 1")
        if len(self.star_shares) != 5 or not math.isclose(sum(self.star_shares), 1.0):
            raise ValueError("star_shares must be 5 shares (1..5 stars) summing to 1")


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
    """One row per place: place_id, categories, aspects, zip, in_mountain_view, place_bias."""
    return pl.read_parquet(truth_paths(out_dir, region)["truth_places"])


# ----------------------------------------------------------------------------- places


@dataclass
class _Places:
    gmap_id: np.ndarray  # (P,) object, "0x80...:0x..."
    name: list[str]
    categories: list[list[str]]  # primary category first
    primary: np.ndarray  # (P,) int, index into _PRIMARY
    aspects: np.ndarray  # (P, 4) int, index into ASPECTS, -1 padded
    bias: np.ndarray  # (P,) float, b_p
    city: np.ndarray  # (P,) int, index into _CITY
    zip: np.ndarray  # (P,) int, 5 digits
    in_mv: np.ndarray  # (P,) bool: zip in 94035-94043
    pools: tuple[tuple[np.ndarray, np.ndarray], ...]  # MV, other: (place ids, cum. popularity)


def _top_k(rng: np.random.Generator, weights: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Row-wise weighted sampling without replacement (Gumbel top-k). weights: (N, A) >= 0;
    k: (N,). Returns (N, A) bool, k[n] True per row (fewer if a row has fewer positive weights)."""
    keys = np.log(weights, where=weights > 0, out=np.full(weights.shape, -np.inf))
    keys += rng.gumbel(size=weights.shape)
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    return (rank < k[:, None]) & (weights > 0)


def _draw_places(rng: np.random.Generator, cfg: SyntheticConfig) -> _Places:
    n = cfg.n_places
    primary = rng.integers(0, len(_PRIMARY), n)
    has = _top_k(rng, _POOL[primary].astype(float), rng.integers(2, 5, n))
    aspects = np.full((n, 4), -1)
    rows, cols = np.nonzero(has)
    aspects[rows, np.arange(len(rows)) - np.searchsorted(rows, rows)] = cols
    in_mv = rng.random(n) < cfg.mountain_view_share
    in_mv[:2] = True, False  # both pools non-empty
    city = np.where(in_mv, rng.random(n) < 0.15, rng.integers(_N_MV_CITIES, len(_CITY), n))
    zips = [_CITIES[_CITY[c]][0] for c in city.tolist()]
    zip_ = np.array([z[k % len(z)] for z, k in zip(zips, rng.integers(0, 60, n).tolist())])
    categories = []
    for c, k in zip(primary.tolist(), rng.integers(0, 3, n).tolist()):
        secondary = _CATEGORIES[_PRIMARY[c]][0]
        more = rng.permutation(len(secondary))[:k]
        categories.append([_PRIMARY[c], *(secondary[i] for i in more)])
    words = rng.integers(0, len(_WORDS), n).tolist()
    name = [f"{_WORDS[w]} {_NAME_NOUN[_PRIMARY[c]]}" for w, c in zip(words, primary.tolist())]
    first = rng.integers(0, 1 << 56, n)
    second = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
              + np.uint64(rng.integers(0, 1 << 63)))  # odd multiplier mod 2^64: unique ids
    gmap_id = np.array([f"0x80{a:014x}:0x{b:x}" for a, b in zip(first.tolist(), second.tolist())],
                       dtype=object)
    popularity = rng.lognormal(0.0, 1.0, n)
    pools = []
    for ids in (np.flatnonzero(in_mv), np.flatnonzero(~in_mv)):
        cum = np.cumsum(popularity[ids])
        pools.append((ids, cum / cum[-1]))
    bias = rng.normal(0, cfg.place_bias_sd, n)
    return _Places(gmap_id, name, categories, primary, aspects, bias, city, zip_, in_mv,
                   tuple(pools))


# ----------------------------------------------------------------------------- users, reviews


@dataclass
class _Users:
    user_id: list[str]  # 21 digits
    name_json: list[str]  # JSON-encoded name
    bias: np.ndarray  # (U,) b_u
    pref: np.ndarray  # (U, n_aspects) int8: +1 like, -1 dislike, 0 indifferent
    mv_share: np.ndarray  # (U,) probability that a review is of a Mountain View place
    n_reviews: np.ndarray  # (U,)
    t0: np.ndarray  # (U,) first possible review time, ms
    span: np.ndarray  # (U,) active period, ms


def _draw_users(
    rng: np.random.Generator, cfg: SyntheticConfig, places: _Places, first: int, n: int
) -> _Users:
    idx = range(first, first + n)
    offset = cfg.seed * 6364136223846793003
    user_id = [str(10**20 + (i * _ID_MUL + offset) % (9 * 10**19)) for i in idx]  # 21 digits
    names = zip(rng.integers(0, len(_FIRST), n).tolist(), rng.integers(0, len(_LAST), n).tolist())
    name_json = [json.dumps(f"{_FIRST[f]} {_LAST[la]}") for f, la in names]
    like_w = np.broadcast_to(np.choose(_VALENCE + 1, [0.03, 1.0, 3.0]), (n, len(ASPECTS)))
    like = _top_k(rng, like_w, rng.integers(3, 7, n))
    dislike_w = np.where(like, 0.0, np.choose(_VALENCE + 1, [3.0, 1.0, 0.03]))
    dislike = _top_k(rng, dislike_w, rng.integers(2, 5, n))
    mv_share = np.where(rng.random(n) < cfg.outside_only_share, 0.0, rng.beta(2.0, 3.0, n))
    extra_mean = cfg.ratings_per_user_mean - cfg.ratings_per_user_min
    mu = math.log(extra_mean) - cfg.ratings_tail_sigma**2 / 2
    n_reviews = cfg.ratings_per_user_min + np.rint(rng.lognormal(mu, cfg.ratings_tail_sigma, n))
    pool = np.where(mv_share > 0, cfg.n_places, len(places.pools[1][0]))  # places u can pick
    n_reviews = np.minimum(n_reviews, pool // 2).astype(np.int64)
    t0 = rng.integers(_T_START_MS, _T_END_MS - 90 * 86_400_000, n)
    span = (_T_END_MS - t0) * rng.uniform(0.1, 1.0, n)
    return _Users(user_id, name_json, rng.normal(0, cfg.user_bias_sd, n),
                  like.astype(np.int8) - dislike.astype(np.int8), mv_share, n_reviews, t0, span)


@dataclass
class _Reviews:
    user: np.ndarray  # (M,) index into the chunk's users, non-decreasing
    place: np.ndarray  # (M,)
    ts: np.ndarray  # (M,) ms since the epoch, increasing per user
    n_recent: np.ndarray  # (M,) recent visits of the same primary category
    liked: np.ndarray  # (M, 4) aspect index or -1: place aspects the user likes
    disliked: np.ndarray  # (M, 4) aspect index or -1: place aspects the user dislikes
    score: np.ndarray  # (M,) latent score


def _choose_places(rng: np.random.Generator, places: _Places, mv_share: np.ndarray) -> np.ndarray:
    """One place per entry of mv_share (M,): the pool by a coin, then by popularity."""
    in_mv = rng.random(len(mv_share)) < mv_share
    out = np.empty(len(mv_share), dtype=np.int64)
    for flag, (ids, cum) in zip((True, False), places.pools):
        sel = in_mv == flag
        pick = np.searchsorted(cum, rng.random(np.count_nonzero(sel)), side="right")
        out[sel] = ids[np.minimum(pick, len(ids) - 1)]
    return out


def _repeated(key: np.ndarray) -> np.ndarray:
    """(M,) bool: True where key equals an earlier key."""
    dup = np.ones(len(key), dtype=bool)
    dup[np.unique(key, return_index=True)[1]] = False
    return dup


def _draw_reviews(
    rng: np.random.Generator, cfg: SyntheticConfig, places: _Places, users: _Users
) -> _Reviews:
    n_users = len(users.bias)
    user = np.repeat(np.arange(n_users), users.n_reviews)
    place = _choose_places(rng, places, users.mv_share[user])
    for _ in range(50):  # a user rates a place once: redraw repeats
        dup = _repeated(user * cfg.n_places + place)
        if not dup.any():
            break
        place[dup] = _choose_places(rng, places, users.mv_share[user[dup]])
    keep = ~_repeated(user * cfg.n_places + place)  # almost always all True
    user, place = user[keep], place[keep]
    m = len(user)

    u = rng.random(m)
    u = u[np.lexsort((u, user))]  # sorted within each user (user is already sorted)
    rank = np.arange(m) - np.searchsorted(user, np.arange(n_users))[user]
    ts = users.t0[user] + (u * users.span[user]).astype(np.int64) + rank  # + rank: no ties

    cat = places.primary[place]
    n_recent = np.zeros(m, dtype=np.int64)
    for lag in range(1, cfg.repeat_window + 1):
        n_recent[lag:] += (cat[lag:] == cat[:-lag]) & (user[lag:] == user[:-lag])

    asp = places.aspects[place]  # (M, 4)
    pref = users.pref[user[:, None], asp] * (asp >= 0)  # (M, 4) in {-1, 0, 1}
    score = (users.bias[user] + places.bias[place] + cfg.aspect_weight * pref.sum(axis=1)
             + cfg.repeat_effect * n_recent + rng.normal(0.0, cfg.noise_sd, m))
    return _Reviews(user, place, ts, n_recent, np.where(pref > 0, asp, -1),
                    np.where(pref < 0, asp, -1), score)


def _star_cutpoints(cfg: SyntheticConfig, places: _Places) -> np.ndarray:
    """Score thresholds 1|2, 2|3, 3|4, 4|5: quantiles of a pilot sample of scores drawn like
    the real ones, so that the star shares match cfg.star_shares whatever the scales."""
    rng = np.random.default_rng([cfg.seed, 4])
    score = _draw_reviews(rng, cfg, places, _draw_users(rng, cfg, places, 0, 4096)).score
    return np.quantile(score, np.cumsum(cfg.star_shares)[:-1])


# ----------------------------------------------------------------------------- lines, tables

_PIC_URL = "https://lh5.googleusercontent.com/p/AF1Qip"
_REVIEW_LINE = ('{"user_id": "%s", "name": %s, "time": %d, "rating": %d, "text": %s, '
                '"pics": %s, "resp": %s, "gmap_id": "%s"}\n')


def _review_text(stars: int, liked: list[int], disliked: list[int], k: int) -> str:
    """JSON string: an opener for the stars, then one sentence per liked/disliked aspect."""
    parts = [_OPENERS[stars][k & 1]]
    parts += [_POS_SENT[a][(k >> 1) % 3] for a in liked if a >= 0]
    parts += [_NEG_SENT[a][(k >> 3) % 3] for a in disliked if a >= 0]
    return '"' + " ".join(parts) + '"'


def _review_lines(rng: np.random.Generator, cfg: SyntheticConfig, places: _Places, users: _Users,
                  rev: _Reviews, stars: np.ndarray) -> str:
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
        resp = f'{{"time": {rt}, "text": "{_REPLIES[k % 2 if r >= 3 else 2]}"}}' if rt else "null"
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
    places: _Places, users: _Users, rev: _Reviews, stars: np.ndarray
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
    like, dislike = users.pref > 0, users.pref < 0
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
    street = _STREETS[rng.integers(len(_STREETS))]
    return f"{name}, {rng.integers(1, 3000)} {street}, {city}, CA {zip_}{plus4}"


def _meta_line(rng: np.random.Generator, cfg: SyntheticConfig, places: _Places, p: int,
               n_reviews: int, star_sum: float, gmap_ids: list[str]) -> str:
    """One meta JSON line; avg_rating and num_of_reviews are those of the written reviews."""
    name, cats, city = places.name[p], places.categories[p], _CITY[places.city[p]]
    _, _, (opens, closes), price = _CATEGORIES[cats[0]]
    sentences = [_ASPECT_TABLE[ASPECTS[a]][1] for a in places.aspects[p] if a >= 0]
    _, lat, lon = _CITIES[city]
    start, closed = rng.integers(7), rng.integers(-7, 7)  # closed one day a week half the time
    hours = [[_DAYS[d % 7], "Closed" if d % 7 == closed else f"{opens}–{closes}"]
             for d in range(start, start + 7)]
    near = dict.fromkeys(rng.integers(len(gmap_ids), size=rng.integers(2, 6)).tolist())
    related = [gmap_ids[q] for q in near if q != p]
    row = {
        "name": name,
        "address": _address(rng, cfg, name, city, places.zip[p]),
        "gmap_id": gmap_ids[p],
        "description": f"{name} is a {cats[0].lower()} in {city}. " + " ".join(sentences),
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

    Users are generated _CHUNK_USERS at a time, so memory is bounded by the chunk and the
    places, whatever n_users. Reviews are grouped by user, in time order within a user.
    """
    paths = truth_paths(out_dir, cfg.region)
    places = _draw_places(np.random.default_rng([cfg.seed, 0]), cfg)
    cuts = _star_cutpoints(cfg, places)
    star_sum, n_rated = np.zeros(cfg.n_places), np.zeros(cfg.n_places, dtype=np.int64)  # per place

    def write_reviews(review_tmp: Path, truth_tmp: Path, users_tmp: Path) -> None:
        with (_gzip_text(review_tmp, cfg.compresslevel) as gz,
              pq.ParquetWriter(truth_tmp, _TRUTH_SCHEMA) as truth,
              pq.ParquetWriter(users_tmp, _USER_SCHEMA) as people):
            for chunk, first in enumerate(range(0, cfg.n_users, _CHUNK_USERS)):
                rng = np.random.default_rng([cfg.seed, 2, chunk])
                users = _draw_users(rng, cfg, places, first, min(_CHUNK_USERS, cfg.n_users - first))
                rev = _draw_reviews(rng, cfg, places, users)
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
    })
    atomic_write(paths["truth_places"], lambda tmp: pq.write_table(place_truth, tmp))
    return SyntheticSummary(paths, cfg.n_users, int(n_rated.sum()), cfg.n_places,
                            len(lines) + len(duplicates))
