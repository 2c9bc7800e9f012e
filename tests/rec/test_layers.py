"""History encoder and attention masks: shapes, padding never attended or read, empty histories."""

import pytest
import torch

from recpie_core.data.batches import RatingBatch
from recpie_core.rec.layers import HistoryEncoder, allowed_keys, make_embedding
from recpie_core.rec.registry import RATING_MODELS, build_model


def left_padded(histories, L, n_places=30):
    """[(places, ratings), ...] -> hist_place, hist_rating, hist_mask (B, L), newest last."""
    B = len(histories)
    hp, hr, hm = torch.zeros(B, L, dtype=torch.long), torch.zeros(B, L), torch.zeros(B, L, dtype=torch.bool)
    for b, (places, ratings) in enumerate(histories):
        n = len(places)
        if n:
            hp[b, L - n:], hr[b, L - n:], hm[b, L - n:] = torch.tensor(places), torch.tensor(ratings), True
    return hp, hr, hm


def encoder(dim=8):
    torch.manual_seed(0)
    return HistoryEncoder(make_embedding(30, dim), dim).eval()


HISTORIES = [([3, 5, 7], [1.0, 0.5, 0.75]), ([], []), ([9], [0.25]), ([1, 2, 3, 4, 5, 6], [0.0] * 6)]


def test_history_encoder_shape_and_empty_history():
    enc = encoder()
    h = enc(*left_padded(HISTORIES, L=6))
    assert h.shape == (4, 8)
    assert torch.isfinite(h).all()
    assert torch.equal(h[1], enc.no_history.detach())  # empty history -> the learned vector


def test_padding_ids_and_ratings_do_not_change_the_output():
    enc = encoder()
    hp, hr, hm = left_padded(HISTORIES, L=6)
    garbage_p = torch.where(hm, hp, torch.randint(1, 30, hp.shape))
    garbage_r = torch.where(hm, hr, torch.rand(hr.shape))
    assert torch.allclose(enc(hp, hr, hm), enc(garbage_p, garbage_r, hm), atol=1e-6)


def test_more_padding_gives_the_same_encoding():
    """The GRU never sees padding: the same history padded to 6 or to 11 encodes the same."""
    enc = encoder()
    assert torch.allclose(enc(*left_padded(HISTORIES, L=6)), enc(*left_padded(HISTORIES, L=11)), atol=1e-6)


def test_order_matters():
    enc = encoder()
    fwd = enc(*left_padded([([3, 5, 7], [1.0, 0.5, 0.75])], L=4))
    rev = enc(*left_padded([([7, 5, 3], [0.75, 0.5, 1.0])], L=4))
    assert not torch.allclose(fwd, rev)


def test_empty_history_rows_keep_gradients_finite():
    enc = HistoryEncoder(make_embedding(30, 8), 8)
    enc(*left_padded(HISTORIES, L=6)).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


def test_allowed_keys_never_point_at_padding():
    mask = torch.tensor([[False, True, True], [False, False, False]])
    allowed = allowed_keys(mask)
    assert not allowed[0, :, 0].any() and allowed[0, :, 1:].all()
    assert allowed[1].all()  # no real key: everything allowed (finite softmax), output discarded
    causal = allowed_keys(mask, causal=True)
    assert causal[0, 1].tolist() == [False, True, False] and causal[0, 2].tolist() == [False, True, True]


@pytest.mark.parametrize("name", list(RATING_MODELS))
def test_models_ignore_padded_positions(name):
    torch.manual_seed(0)
    model = build_model(name, n_users=5, n_places=30, n_categories=4).eval()
    hp, hr, hm = left_padded(HISTORIES, L=6)
    base = dict(user=torch.tensor([1, 2, 3, 4]), place=torch.tensor([4, 5, 6, 7]), category=torch.tensor([1, 2, 3, 0]),
                rating=torch.zeros(4))
    a = model(RatingBatch(hist_place=hp, hist_rating=hr, hist_mask=hm, **base))
    b = model(RatingBatch(hist_place=torch.where(hm, hp, 11), hist_rating=torch.where(hm, hr, 0.9), hist_mask=hm,
                          **base))
    assert a.shape == (4,) and torch.isfinite(a).all()
    assert torch.allclose(a, b, atol=1e-6)
