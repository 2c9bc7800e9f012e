"""reward_signal: what the explainer can change of the PIE reward, on a recommender that reads
explanations carrying the rating, one whose explanations carry noise, and one that ignores them."""

from dataclasses import replace

import pytest
import torch

from recpie_core.rec.fit import FitConfig, fit_rating_model
from recpie_core.rec.registry import build_model
from recpie_core.reward_signal import reward_signal

DIM = 8


def explanations(tensors, informative: bool, seed: int):
    """(N, DIM) embeddings: the row's rating in the first coordinate (informative) or pure noise."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(tensors), DIM, generator=g) * 0.1
    if informative:
        noise[:, 0] += 4 * (tensors.rating - 0.5)
    return tensors.with_explanations(noise, -noise)


def _trained(data, informative: bool):
    data = replace(data, train=explanations(data.train, informative, 0), valid=explanations(data.valid, informative, 1))
    torch.manual_seed(0)
    model = build_model("recpie", data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories, expl_dim=DIM)
    fit = fit_rating_model(model, data, FitConfig(epochs=8, patience=8, lr=0.01, batch_size=128, progress=False))
    return fit.model, data.valid


@pytest.fixture(scope="module")
def informed(learnable_data):
    return _trained(learnable_data, informative=True)


@pytest.fixture(scope="module")
def uninformed(learnable_data):
    return _trained(learnable_data, informative=False)


def test_a_reader_of_informative_explanations_gains_from_its_own(informed):
    model, valid = informed
    s = reward_signal(model, valid, swaps=8)
    assert s.rows == len(valid) and s.swaps == 8
    assert s.own_gain > 0.02  # its own texts predict its rating better than other rows' texts
    assert s.share > 0.3


def test_noise_explanations_leave_little_for_the_explainer(informed, uninformed):
    s = reward_signal(*uninformed, swaps=8)
    assert abs(s.own_gain) < 0.01
    assert s.share < reward_signal(*informed, swaps=8).share / 3


def test_zero_projections_make_the_reward_independent_of_the_texts(learnable_data):
    model, valid = _trained(learnable_data, informative=True)  # its own copy: the weights are zeroed
    with torch.no_grad():
        model.pos_proj.weight.zero_()
        model.neg_proj.weight.zero_()
    s = reward_signal(model, valid, swaps=4)
    assert s.within_std == pytest.approx(0.0, abs=1e-6) and s.own_gain == pytest.approx(0.0, abs=1e-6)
    assert s.across_std > 0.01


def test_rows_without_explanations_are_refused(tiny_data):
    model = build_model("recpie", tiny_data.vocab.n_users, tiny_data.vocab.n_places, tiny_data.vocab.n_categories)
    with pytest.raises(ValueError, match="explanation embeddings"):
        reward_signal(model, tiny_data.valid)
