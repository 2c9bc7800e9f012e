"""Synthetic Google Local data: the latent model that decides places, users, visits and ratings.

``synthetic_writer.write_synthetic_google_local`` turns a draw into the files (review and meta
JSON lines in the real format, and the truth side files); the words come from ``synthetic_vocab.py``.

The latent model, per review of place p by user u:

    score = b_u + b_p + aspect_weight * liking(u, p) + repeat_effect * n_recent + noise
    liking(u, p) = #liked - #disliked

- Each place has 1-3 categories (the first is its *primary* category) and 2-4 aspects from
  ``ASPECTS``, drawn from its primary category's pool. As on Google Maps, the name often hints
  at one of them ("Trailside Park", "Quiet Bean Coffee"; ``name_hint_share``), and the
  description opens with one line saying what the place is like ("Cozy cafe with free wifi
  and fresh pastries.", so its first ~100 characters are a fair excerpt), then has one
  sentence per aspect (every aspect is named), then the city.
- Each user likes 3-6 aspects and dislikes 2-4 (common sense decides who likes what:
  "friendly staff" is liked, "long wait" disliked, "live music" divides). ``#liked`` and
  ``#disliked`` count the place's aspects that u likes or dislikes: these are the truth's
  ``liked_aspects`` and ``disliked_aspects`` (the aspects that moved the rating).
- Choice: people go where they expect to like it, so a history reveals taste even without
  its ratings. Within the pool a coin picks (Mountain View or not), u's next place p has
  probability proportional to popularity(p) * exp(choice_strength * liking(u, p)). It is drawn
  by sampling-importance-resampling: ``choice_candidates`` places by popularity, then one of
  them by softmax(choice_strength * liking). Memory stays (reviews in a chunk) x candidates
  whatever ``n_places``; with finitely many candidates the tilt is a little weaker than the
  exact one. ``choice_strength=0`` is popularity alone. A user rates a place once.
- Sequential effect (satiation): ``n_recent`` is how many of u's previous
  ``repeat_window`` places share p's primary category; ``repeat_effect`` < 0 means a
  category visited recently is less appealing now, so variety is rewarded.
- ``b_u``, ``b_p`` and ``noise`` are Gaussian. Stars are the score cut at quantiles of a
  pilot sample, so the star shares match ``star_shares``.
- Review text names the liked and disliked aspects ("Great spot! Loved the live music.
  Annoyed by the long wait."); a share of texts is null, as in the real files.

Where the numbers come from (set once from these anchors, not tuned for any model):

- ``star_shares`` (1..5 stars: 6, 5, 12, 25, 52 %): the J-shape of Google Maps ratings, about
  half 5 stars, a quarter 4, and a tail of 1s larger than the 2s.
- Variance of the latent score over the written reviews. Anchor: on the Netflix Prize,
  baseline predictors (global mean + user and item biases) take RMSE from ~1.13 to ~0.98,
  so biases explain about a quarter of the rating variance (1 - 0.98^2 / 1.13^2); figures
  reported for Yelp- and Google-Local-like data are similar (roughly 25-40 %). So b_u + b_p
  explain ~30 % here, the aspects (the taste an explanation can name) a comparable share,
  and noise the rest. Measured at the defaults (n_users=20000, n_places=5000): b_u + b_p
  31 % (b_u 12, b_p 19), aspects 30 %, satiation 3 %, noise 37 % (the terms covary a little:
  choice ties liking to the place). The true biases alone explain 24 % of the star variance.
- ``choice_strength`` has no such number to copy; 1.0 is moderate (see its comment). At it,
  the aspects over-represented in a user's history hit a true like 1 time in 3, against 1 in 5
  for a random aspect of the same places and 1 in 8 when choice_strength=0
  (tests/data/test_synthetic.py).

Places sit across California; ``mountain_view_share`` of them in zip codes 94035-94043.
Some users rate only places outside those zip codes. Each user's reviews are in time order
(ms since the epoch, 2016-2021). Same seed, same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recpie_core.data import synthetic_vocab as vocab
from recpie_core.data.synthetic_vocab import ASPECTS

_VALENCE = np.array([a.valence for a in vocab.ASPECT_TABLE.values()])
_PRIMARY = tuple(vocab.CATEGORIES)
CATEGORY = tuple(vocab.CATEGORIES.values())
_POOL = np.array([[a in c.pool or a in vocab.EVERYWHERE for a in ASPECTS] for c in CATEGORY])  # (n_primary, n_aspects)
CITY = tuple(vocab.CITIES)
_NAME_WORDS = [a.name_words for a in vocab.ASPECT_TABLE.values()]

_T_START_MS = 1451606400000  # 2016-01-01 UTC
_T_END_MS = 1633046400000  # 2021-10-01 UTC
CHUNK_USERS = 2048  # users generated per numpy pass; part of the seed -> bytes contract
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
    # How much expected liking (#liked - #disliked aspects) steers where a user goes: the pick is
    # drawn with weight popularity * exp(choice_strength * liking); 0.0 is popularity alone. 1.0:
    # one net liked aspect makes a place e ~ 2.7 times as likely as an otherwise equal one, about
    # what one sd of log-popularity does, so taste and popularity weigh alike (moderate: people
    # mostly go where they expect to like it, yet popular places still draw everyone).
    choice_strength: float = 1.0
    choice_candidates: int = 16  # places drawn by popularity per pick, one kept (more: nearer the exact tilt)
    aspect_weight: float = 0.8  # score change per liked (+) or disliked (-) aspect of a place; ~30 % of the variance
    repeat_window: int = 3  # previous visits that count for the sequential effect
    repeat_effect: float = -0.4  # score change per recent visit of the same primary category
    user_bias_sd: float = 0.4  # sd of b_u (score units); with place_bias_sd ~30 % of the score variance
    place_bias_sd: float = 0.5  # sd of b_p (score units)
    noise_sd: float = 0.7  # sd of the per-review noise (score units); ~37 % of the variance
    star_shares: tuple[float, ...] = (0.06, 0.05, 0.12, 0.25, 0.52)  # target share of 1..5 stars
    name_hint_share: float = 0.6  # places whose name has a word hinting at one of its aspects
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
        if not (math.isfinite(self.choice_strength) and self.choice_strength >= 0.0):
            raise ValueError("choice_strength must be finite and >= 0: a negative one sends users where they "
                             "expect to dislike it")
        if self.choice_candidates < 1 or (self.choice_strength > 0 and self.choice_candidates < 2):
            raise ValueError("choice_candidates must be >= 1, and >= 2 when choice_strength > 0: with one "
                             "candidate there is nothing to choose between")
        if not 0.0 <= self.name_hint_share <= 1.0:
            raise ValueError("name_hint_share is a share of places and must be in [0, 1]")


# ----------------------------------------------------------------------------- places


@dataclass
class Places:
    gmap_id: np.ndarray  # (P,) object, "0x80...:0x..."
    name: list[str]
    name_aspect: np.ndarray  # (P,) int, index into ASPECTS of the aspect the name hints at, -1 none
    description: list[str]  # opening line, one sentence per aspect, the city
    categories: list[list[str]]  # primary category first
    primary: np.ndarray  # (P,) int, index into _PRIMARY
    aspects: np.ndarray  # (P, 4) int, index into ASPECTS, -1 padded
    bias: np.ndarray  # (P,) float, b_p
    city: np.ndarray  # (P,) int, index into CITY
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


def _pick(items: Sequence, k: int):
    """items[k mod len]: k is a uniform draw far larger than len(items)."""
    return items[k % len(items)]


def _and(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _description(aspects: list[int], cat: vocab.Category, city: str, k: int) -> str:
    """What the place is like in one line ("Cozy cafe with free wifi and fresh pastries."; the
    adjective may hint at a drawback: "Upscale", "Compact"), one sentence per aspect, the city."""
    table = [vocab.ASPECT_TABLE[ASPECTS[a]] for a in aspects if a >= 0]
    adjectives = [a.adjective for a in table] + list(cat.adjectives)
    opener = f"{_pick(adjectives, k)} {_pick(cat.kinds, k >> 4)}"
    phrases = [a.phrase for a in table if a.phrase is not None]
    opener += f" with {_and(phrases)}." if phrases else "."
    return " ".join([opener, *(a.sentence for a in table), f"Located in {city}."])


def _place_text(rng: np.random.Generator, cfg: SyntheticConfig, primary: np.ndarray, aspects: np.ndarray,
                city: np.ndarray) -> tuple[list[str], np.ndarray, list[str]]:
    """Names and descriptions. Names such as "Quiet Bean Coffee", "Trailside Park", "Redwood
    Kitchen", "Garcia's Books": with probability name_hint_share a word hinting at one of the
    place's aspects (one of its category's own if it has such words, as places name themselves
    after what sets them apart), else a plain word or a surname; sometimes a middle word; a
    category noun. Returns the names, (P,) the hinted aspect (-1: plain) and the descriptions."""
    n = len(primary)
    hint, middle, surname = (rng.random((3, n)) < [[cfg.name_hint_share], [0.3], [0.3]]).tolist()
    picks = rng.integers(0, 1 << 30, (5, n)).T.tolist()
    names, hinted, descriptions = [], [], []
    for p, (c, asp, town, k) in enumerate(zip(primary.tolist(), aspects.tolist(), city.tolist(), picks)):
        cat = CATEGORY[c]
        hintable = [a for a in asp if a >= 0 and _NAME_WORDS[a]]
        hintable = [a for a in hintable if ASPECTS[a] not in vocab.EVERYWHERE] or hintable
        h = _pick(hintable, k[0]) if hint[p] and hintable else -1
        if h >= 0:
            first = _pick(_NAME_WORDS[h], k[1])
        else:
            first = f"{_pick(vocab.LAST, k[1])}'s" if surname[p] else _pick(vocab.PLAIN_WORDS, k[1])
        mid = f" {_pick(cat.middles, k[2])}" if middle[p] and cat.middles and h >= 0 else ""
        names.append(f"{first}{mid} {_pick(cat.nouns, k[3])}")
        hinted.append(h)
        descriptions.append(_description(asp, cat, CITY[town], k[4]))
    return names, np.array(hinted, dtype=np.int64), descriptions


def draw_places(rng: np.random.Generator, cfg: SyntheticConfig) -> Places:
    n = cfg.n_places
    primary = rng.integers(0, len(_PRIMARY), n)
    has = _top_k(rng, _POOL[primary].astype(float), rng.integers(2, 5, n))
    aspects = np.full((n, 4), -1)
    rows, cols = np.nonzero(has)
    aspects[rows, np.arange(len(rows)) - np.searchsorted(rows, rows)] = cols
    in_mv = rng.random(n) < cfg.mountain_view_share
    in_mv[:2] = True, False  # both pools non-empty
    city = np.where(in_mv, rng.random(n) < 0.15, rng.integers(vocab.N_MV_CITIES, len(CITY), n))
    zips = [vocab.CITIES[CITY[c]][0] for c in city.tolist()]
    zip_ = np.array([z[k % len(z)] for z, k in zip(zips, rng.integers(0, 60, n).tolist())])
    categories = []
    for c, k in zip(primary.tolist(), rng.integers(0, 3, n).tolist()):
        secondary = CATEGORY[c].secondary
        more = rng.permutation(len(secondary))[:k]
        categories.append([_PRIMARY[c], *(secondary[i] for i in more)])
    text_rng = np.random.default_rng([cfg.seed, 5])  # its own stream: the words can change, the model stays
    name, name_aspect, description = _place_text(text_rng, cfg, primary, aspects, city)
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
    return Places(gmap_id, name, name_aspect, description, categories, primary, aspects, bias, city, zip_,
                   in_mv, tuple(pools))


# ----------------------------------------------------------------------------- users, reviews


@dataclass
class Users:
    user_id: list[str]  # 21 digits
    name_json: list[str]  # JSON-encoded name
    bias: np.ndarray  # (U,) b_u
    pref: np.ndarray  # (U, n_aspects + 1) int8: +1 like, -1 dislike, 0 indifferent; aspect -1 (padding) is 0
    mv_share: np.ndarray  # (U,) probability that a review is of a Mountain View place
    n_reviews: np.ndarray  # (U,)
    t0: np.ndarray  # (U,) first possible review time, ms
    span: np.ndarray  # (U,) active period, ms


def draw_users(
    rng: np.random.Generator, cfg: SyntheticConfig, places: Places, first: int, n: int
) -> Users:
    idx = range(first, first + n)
    offset = cfg.seed * 6364136223846793003
    user_id = [str(10**20 + (i * _ID_MUL + offset) % (9 * 10**19)) for i in idx]  # 21 digits
    names = zip(rng.integers(0, len(vocab.FIRST), n).tolist(), rng.integers(0, len(vocab.LAST), n).tolist())
    name_json = [json.dumps(f"{vocab.FIRST[f]} {vocab.LAST[la]}") for f, la in names]
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
    pref = np.zeros((n, len(ASPECTS) + 1), dtype=np.int8)
    pref[:, :-1] = like.astype(np.int8) - dislike.astype(np.int8)
    return Users(user_id, name_json, rng.normal(0, cfg.user_bias_sd, n), pref, mv_share, n_reviews, t0, span)


@dataclass
class Reviews:
    user: np.ndarray  # (M,) index into the chunk's users, non-decreasing
    place: np.ndarray  # (M,)
    ts: np.ndarray  # (M,) ms since the epoch, increasing per user
    n_recent: np.ndarray  # (M,) recent visits of the same primary category
    liked: np.ndarray  # (M, 4) aspect index or -1: place aspects the user likes
    disliked: np.ndarray  # (M, 4) aspect index or -1: place aspects the user dislikes
    score: np.ndarray  # (M,) latent score


def _choose_places(rng: np.random.Generator, cfg: SyntheticConfig, places: Places, users: Users,
                   user: np.ndarray) -> np.ndarray:
    """One place per review slot of user (M,): the pool by a coin (Mountain View or not), then
    choice_candidates draws by popularity, one kept by softmax(choice_strength * liking)
    (sampling-importance-resampling; see the module docstring)."""
    m = len(user)
    k = cfg.choice_candidates if cfg.choice_strength > 0 else 1  # strength 0: every candidate equal
    in_mv = rng.random(m) < users.mv_share[user]
    cand = np.empty((m, k), dtype=np.int64)  # (M, K)
    for flag, (ids, cum) in zip((True, False), places.pools):
        sel = in_mv == flag
        pick = np.searchsorted(cum, rng.random((np.count_nonzero(sel), k)), side="right")
        cand[sel] = ids[np.minimum(pick, len(ids) - 1)]
    if k == 1:
        return cand[:, 0]
    liking = users.pref[user[:, None, None], places.aspects[cand]].sum(axis=2)  # (M, K, 4) -> (M, K)
    weight = np.cumsum(np.exp(cfg.choice_strength * np.arange(-4, 5))[liking + 4], axis=1)  # (M, K)
    pick = (weight < rng.random(m)[:, None] * weight[:, -1:]).sum(axis=1)  # inverse CDF: a softmax draw
    return cand[np.arange(m), pick]


def _repeated(key: np.ndarray) -> np.ndarray:
    """(M,) bool: True where key equals an earlier key."""
    dup = np.ones(len(key), dtype=bool)
    dup[np.unique(key, return_index=True)[1]] = False
    return dup


def draw_reviews(
    rng: np.random.Generator, cfg: SyntheticConfig, places: Places, users: Users
) -> Reviews:
    n_users = len(users.bias)
    user = np.repeat(np.arange(n_users), users.n_reviews)
    place = _choose_places(rng, cfg, places, users, user)
    for _ in range(50):  # a user rates a place once: redraw repeats
        dup = _repeated(user * cfg.n_places + place)
        if not dup.any():
            break
        place[dup] = _choose_places(rng, cfg, places, users, user[dup])
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
    pref = users.pref[user[:, None], asp]  # (M, 4) in {-1, 0, 1}
    score = (users.bias[user] + places.bias[place] + cfg.aspect_weight * pref.sum(axis=1)
             + cfg.repeat_effect * n_recent + rng.normal(0.0, cfg.noise_sd, m))
    return Reviews(user, place, ts, n_recent, np.where(pref > 0, asp, -1),
                    np.where(pref < 0, asp, -1), score)


def star_cutpoints(cfg: SyntheticConfig, places: Places) -> np.ndarray:
    """Score thresholds 1|2, 2|3, 3|4, 4|5: quantiles of a pilot sample of scores drawn like
    the real ones, so that the star shares match cfg.star_shares whatever the scales."""
    rng = np.random.default_rng([cfg.seed, 4])
    score = draw_reviews(rng, cfg, places, draw_users(rng, cfg, places, 0, 4096)).score
    return np.quantile(score, np.cumsum(cfg.star_shares)[:-1])
