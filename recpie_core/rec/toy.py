"""A small rating table with a known, learnable signal, for the recommenders' tests and bench.

Not the Google Local generator (``recpie_core/data/synthetic.py`` and ``synthetic_writer.py`` write real-format
files); this makes the ``user_temporal_split`` table directly, in memory:

    stars = round(3.6 + user bias + place bias + user-category affinity
                  + 0.6 * [candidate's category == the previous place's category] + noise)

clipped to 1..5. Each user rates ``ratings_per_user`` distinct places in time order; the
oldest 80% are ``train`` (the newest ~10% of those flagged ``valid``), the rest ``test``;
histories are all earlier ratings of the user.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def make_toy_split(n_users: int = 60, n_places: int = 40, n_categories: int = 4, ratings_per_user: int = 20,
                   noise: float = 0.3, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """-> (split table, places table with a one-element ``category`` list per place)."""
    if ratings_per_user > n_places:
        raise ValueError("ratings_per_user cannot exceed n_places: a user rates each place once")
    rng = np.random.default_rng(seed)
    user_bias = rng.normal(0.0, 0.5, n_users)
    place_bias = rng.normal(0.0, 0.5, n_places)
    place_cat = rng.integers(0, n_categories, n_places)
    affinity = rng.normal(0.0, 0.7, (n_users, n_categories))
    R = ratings_per_user
    places = np.argsort(rng.random((n_users, n_places)), axis=1)[:, :R]  # (U, R) distinct places, in time order
    cats = place_cat[places]  # (U, R)
    same = np.zeros((n_users, R))
    same[:, 1:] = cats[:, 1:] == cats[:, :-1]
    score = (3.6 + user_bias[:, None] + place_bias[places] + np.take_along_axis(affinity, cats, axis=1)
             + 0.6 * same + rng.normal(0.0, noise, (n_users, R)))
    stars = np.clip(np.rint(score), 1, 5).astype(np.int64)  # (U, R)

    n_train = int(np.floor(R * 0.8))
    n_valid = max(1, int(round(n_train * 0.1)))
    pos = np.arange(R)
    split = np.where(pos < n_train, "train", "test")
    valid = (pos >= n_train - n_valid) & (pos < n_train)
    place_ids = np.array([f"p{i:05d}" for i in range(n_places)])
    user_ids = [f"u{u:05d}" for u in range(n_users)]
    rows = {k: [] for k in ("user_id", "place_id", "rating", "ts", "split", "valid", "hist_place_ids", "hist_ratings")}
    for u in range(n_users):
        pids, r = place_ids[places[u]].tolist(), stars[u].tolist()
        rows["user_id"] += [user_ids[u]] * R
        rows["place_id"] += pids
        rows["rating"] += r
        rows["ts"] += (1_600_000_000 + 86_400 * pos + u).tolist()
        rows["split"] += split.tolist()
        rows["valid"] += valid.tolist()
        rows["hist_place_ids"] += [pids[:i] for i in range(R)]
        rows["hist_ratings"] += [r[:i] for i in range(R)]
    split_df = pl.DataFrame(rows, schema={
        "user_id": pl.String, "place_id": pl.String, "rating": pl.Int64, "ts": pl.Int64, "split": pl.String,
        "valid": pl.Boolean, "hist_place_ids": pl.List(pl.String), "hist_ratings": pl.List(pl.Int64)})
    places_df = pl.DataFrame({"place_id": place_ids.tolist(),
                              "category": [[f"c{c}"] for c in place_cat.tolist()]})
    return split_df, places_df
