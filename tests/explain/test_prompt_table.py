"""The prompt table on the synthetic world: the history, as the prompt shows it, reveals what a
consumer likes. A simple probe reads each history place's excerpt and the consumer's stars
out of the prompt text and recovers the consumer's liked aspects far above chance; in the
popularity-only world (choice_strength 0) it does clearly worse."""

import gzip
import json
import random
import re

import polars as pl
import pytest

from recpie_core.data.synthetic import ASPECTS, SyntheticConfig
from recpie_core.data.synthetic_writer import load_truth, truth_paths, write_synthetic_google_local
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.explain.quality import mentions
from recpie_core.profiles import get_profile

ITEM = re.compile(r'\("[^"]*"; "([^"]*)"; rated (\d) of 5\)')  # ("category"; "excerpt"; rated r of 5)


def last_rows(out_dir, hist_len: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each user's newest review as a split row with its history, and the places table."""
    truth = load_truth(out_dir).sort("user_id", "ts")
    rows = truth.group_by("user_id", maintain_order=True).agg(
        pl.col("place_id").last(), pl.col("ts").last(),
        pl.col("place_id").slice(0, pl.len() - 1).tail(hist_len).alias("hist_place_ids"),
        pl.col("rating").slice(0, pl.len() - 1).tail(hist_len).alias("hist_ratings"))
    with gzip.open(truth_paths(out_dir)["meta"], "rt") as fh:
        meta = [json.loads(line) for line in fh]
    places = pl.DataFrame([{"place_id": m["gmap_id"], "name": m["name"], "description": m["description"],
                            "category": m.get("category")} for m in meta]).unique("place_id")
    return rows, places


def probe_precision(out_dir, seed: int = 0) -> tuple[float, float, float]:
    """Against the truth's liked aspects, over users with 4+ history places: the precision of
    the probe's top 3; of 3 aspects drawn at random from those the history names; and of 3
    drawn from the whole vocabulary (the share of aspects a consumer likes).

    The probe: an aspect scores, per history place that names it, the consumer's stars there
    minus their mean over the history, plus 0.5 (having gone there at all says something)."""
    cfg = get_profile("demo").prompt
    rows, places = last_rows(out_dir, cfg.max_history)
    prompts = build_prompts(rows, places, cfg)
    likes = dict(pl.read_parquet(truth_paths(out_dir)["truth_users"]).select("user_id", "likes").iter_rows())
    rng = random.Random(seed)
    hits = chance = n = 0
    base = []
    for user, prompt in prompts.select("user_id", "pos_prompt").iter_rows():
        items = ITEM.findall(prompt.split("Please generate")[0])
        if len(items) < 4:
            continue
        mean = sum(int(r) for _, r in items) / len(items)
        named = [a for a in ASPECTS if any(mentions(text, a) for text, _ in items)]
        score = {a: sum(int(r) - mean + 0.5 for text, r in items if mentions(text, a)) for a in named}
        top = sorted(named, key=lambda a: -score[a])[:3]
        hits += sum(a in likes[user] for a in top)
        chance += sum(a in likes[user] for a in rng.sample(named, min(3, len(named))))
        n += len(top)
        base.append(len(likes[user]) / len(ASPECTS))
    return hits / n, chance / n, sum(base) / len(base)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    out = {}
    for strength in (1.0, 0.0):
        folder = tmp_path_factory.mktemp(f"world{strength}")
        write_synthetic_google_local(SyntheticConfig(n_users=300, n_places=150, seed=5, choice_strength=strength),
                                     folder)
        out[strength] = probe_precision(folder)
    return out


def test_the_prompts_history_reveals_liked_aspects_far_above_chance(worlds):
    precision, named, vocabulary = worlds[1.0]
    # seed 5: about 0.27 against 0.20 for the named aspects and 0.12 for the vocabulary
    assert precision > 2 * vocabulary and precision > 1.25 * named, worlds


def test_a_popularity_only_world_reveals_less(worlds):
    assert worlds[0.0][0] < worlds[1.0][0] - 0.05, worlds
