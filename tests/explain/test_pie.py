"""The PIE objective (Eq. 4-7) against hand-worked numbers: clipping on both sides, the
token mask, the reward, the batch-mean baseline, and the ratio statistics."""

import math

import pytest
import torch

from recpie_core.explain.pie import apply_baseline, pie_loss, rating_reward, ratio_stats


def test_pie_loss_clips_the_ratio_from_above():
    logp, ref, mask = torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2)
    loss = pie_loss(logp, ref, mask, reward=torch.tensor([0.5]), eps=0.2)
    assert loss.item() == pytest.approx(-(1.0 + 1.2) * 0.5)  # e^1 clipped to 1.2


def test_pie_loss_clips_the_ratio_from_below_and_averages_over_explanations():
    logp = torch.tensor([[-1.0, 0.1], [0.0, 0.0]])
    ref = torch.zeros(2, 2)
    mask = torch.ones(2, 2)
    loss = pie_loss(logp, ref, mask, reward=torch.tensor([1.0, 0.5]), eps=0.2)
    # row 0: e^-1 -> 0.8, e^0.1 = 1.10517 (inside); row 1: 1 + 1
    expected = -((0.8 + math.exp(0.1)) * 1.0 + 2.0 * 0.5) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_pie_loss_ignores_masked_tokens():
    logp = torch.tensor([[0.1, 5.0, -7.0]])
    mask = torch.tensor([[1.0, 0.0, 0.0]])
    loss = pie_loss(logp, torch.zeros(1, 3), mask, reward=torch.tensor([2.0]), eps=0.2)
    assert loss.item() == pytest.approx(-math.exp(0.1) * 2.0, rel=1e-6)


def test_pie_loss_uses_the_ratio_to_the_reference():
    logp = torch.tensor([[-2.0, -3.0]])
    ref = torch.tensor([[-2.1, -3.0]])
    loss = pie_loss(logp, ref, torch.ones(1, 2), reward=torch.tensor([1.0]), eps=0.2)
    assert loss.item() == pytest.approx(-(math.exp(0.1) + 1.0), rel=1e-6)


def test_pie_loss_gradient_is_zero_outside_the_clip_range():
    logp = torch.tensor([[0.0, 1.0, -1.0]], requires_grad=True)
    pie_loss(logp, torch.zeros(1, 3), torch.ones(1, 3), torch.tensor([1.0]), eps=0.2).backward()
    # inside: d/dlogp of -(e^logp * R) = -1 at logp 0; clipped tokens get no gradient
    assert logp.grad[0].tolist() == pytest.approx([-1.0, 0.0, 0.0])


def test_batch_mean_baseline_centres_the_reward():
    r = torch.tensor([1.0, 0.5, 0.75])
    assert apply_baseline(r, "none").tolist() == [1.0, 0.5, 0.75]
    assert apply_baseline(r, "batch_mean").tolist() == pytest.approx([0.25, -0.25, 0.0])
    logp, mask = torch.zeros(3, 2), torch.ones(3, 2)
    assert pie_loss(logp, logp, mask, r, eps=0.2, baseline="batch_mean").item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError):
        apply_baseline(r, "group")


def test_rating_reward_is_eq4_on_the_unit_scale():
    y_hat = torch.tensor([0.75, 0.5, 0.0, 1.0])
    y = torch.tensor([0.75, 1.0, 1.0, 0.75])
    assert rating_reward(y_hat, y).tolist() == pytest.approx([1.0, 1 / 1.5, 0.5, 1 / 1.25])


def test_pie_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        pie_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.ones(3), eps=0.2)


def test_ratio_stats_counts_clipped_tokens_under_the_mask():
    logp = torch.tensor([[0.0, 1.0, 9.0], [-1.0, 0.05, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    s = ratio_stats(logp, torch.zeros(2, 3), mask, eps=0.2)
    assert s["clipped_frac"] == pytest.approx(0.5)  # e^1 and e^-1 of 4 unmasked tokens
    assert s["ratio_max"] == pytest.approx(math.e)
    assert s["ratio_min"] == pytest.approx(math.exp(-1))
    assert s["log_ratio"] == pytest.approx(0.05 / 4)
