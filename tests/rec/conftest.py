"""Toy rating tables with a known signal (``recpie_core.rec.toy``), built once per session."""

import pytest

from recpie_core.data.batches import load_rating_data
from recpie_core.rec.toy import make_toy_split


@pytest.fixture(scope="session")
def tiny_data():
    """60 users x 20 ratings: enough for smoke tests, seconds to train anything."""
    split, places = make_toy_split(n_users=60, n_places=40, ratings_per_user=20, seed=0)
    return load_rating_data(split, places, hist_len=10)


@pytest.fixture(scope="session")
def learnable_data():
    """200 users x 25 ratings (~3.6k training rows): big enough that the signal can be learned."""
    split, places = make_toy_split(n_users=200, n_places=50, ratings_per_user=25, seed=1)
    return load_rating_data(split, places, hist_len=20)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every recommender test on one torch thread (tests/conftest.py)."""
