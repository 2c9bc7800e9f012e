"""The PIE objectives against hand-worked numbers. Eq. 4-7: clipping on both sides, the token
mask, the reward, the batch-mean baseline, the ratio statistics. The PPO-style loss: the
advantage-weighted sum at ratio 1, min() clipping only on the side the advantage pushes, zero
gradient there, the k3 KL term and its gradient, and the (normalised) advantages."""

import math

import pytest
import torch

from recpie_core.explain.pie import (
    advantages,
    apply_baseline,
    kl_k3,
    pie_loss,
    ppo_clipped,
    ppo_loss,
    rating_reward,
    ratio_stats,
)


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


# --- the PPO-style objective ------------------------------------------------------------------

def test_ppo_loss_at_ratio_one_is_the_advantage_weighted_token_sum():
    logp, mask = torch.zeros(2, 2), torch.ones(2, 2)
    loss = ppo_loss(logp, logp, logp, mask, advantage=torch.tensor([0.5, -1.0]), eps=0.2)
    assert loss.item() == pytest.approx(-(2 * 0.5 + 2 * -1.0) / 2)  # tokens summed, explanations averaged


def test_ppo_loss_clips_only_on_the_side_the_advantage_pushes():
    logp, old, mask = torch.tensor([[1.0, -1.0]]), torch.zeros(1, 2), torch.ones(1, 2)
    # A > 0: e^1 is clipped to 1.2, e^-1 is kept (min picks the unclipped, smaller term)
    up = ppo_loss(logp, old, old, mask, torch.tensor([2.0]), eps=0.2)
    assert up.item() == pytest.approx(-(1.2 * 2 + math.exp(-1) * 2), rel=1e-6)
    # A < 0: e^1 is kept, e^-1 is clipped to 0.8
    down = ppo_loss(logp, old, old, mask, torch.tensor([-2.0]), eps=0.2)
    assert down.item() == pytest.approx(-(math.e * -2 + 0.8 * -2), rel=1e-6)
    assert ppo_clipped(logp, old, torch.tensor([2.0]), 0.2).tolist() == [[True, False]]
    assert ppo_clipped(logp, old, torch.tensor([-2.0]), 0.2).tolist() == [[False, True]]


def test_ppo_loss_ratio_is_to_the_sampling_policy_not_the_reference():
    logp = torch.tensor([[-2.0]])
    loss = ppo_loss(logp, torch.tensor([[-2.1]]), torch.tensor([[-9.0]]), torch.ones(1, 1), torch.tensor([1.0]), 0.2)
    assert loss.item() == pytest.approx(-math.exp(0.1), rel=1e-6)  # kl_coef 0: the reference plays no part


def test_ppo_loss_gradient_is_zero_where_the_clip_acts():
    logp = torch.tensor([[1.0, -1.0, 0.1]], requires_grad=True)
    old = torch.zeros(1, 3)
    ppo_loss(logp, old, old, torch.ones(1, 3), torch.tensor([1.0]), eps=0.2).backward()
    assert logp.grad[0].tolist() == pytest.approx([0.0, -math.exp(-1), -math.exp(0.1)], rel=1e-6)


def test_kl_k3_hand_worked():
    ln2 = math.log(2)
    kl = kl_k3(torch.tensor([[0.0, ln2, 0.3]]), torch.tensor([[ln2, 0.0, 0.3]]))
    assert kl[0].tolist() == pytest.approx([2 - ln2 - 1, 0.5 + ln2 - 1, 0.0], abs=1e-6)


def test_ppo_loss_adds_the_kl_penalty_under_the_mask():
    ln2 = math.log(2)
    logp = torch.tensor([[0.0, ln2, 5.0]], requires_grad=True)
    ref = torch.tensor([[ln2, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss = ppo_loss(logp, logp.detach(), ref, mask, torch.tensor([0.0]), eps=0.2, kl_coef=0.1)
    assert loss.item() == pytest.approx(0.1 * ((1 - ln2) + (ln2 - 0.5)), rel=1e-6)  # = 0.05
    loss.backward()  # d k3 / d logp = 1 - exp(ref - logp)
    assert logp.grad[0].tolist() == pytest.approx([0.1 * (1 - 2), 0.1 * (1 - 0.5), 0.0], rel=1e-6)


def test_advantages_centre_and_optionally_normalise():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert advantages(r).tolist() == [0.5, -0.5, -0.5, 0.5]
    assert advantages(r, normalize=True).tolist() == pytest.approx([1.0, -1.0, -1.0, 1.0])  # population std 0.5
    assert advantages(torch.full((3,), 0.7), normalize=True).tolist() == [0.0, 0.0, 0.0]
    assert advantages(r, baseline="none").tolist() == r.tolist()


def test_group_baseline_centres_each_pair_on_its_own_samples():
    r = torch.tensor([0.9, 0.7, 0.2, 0.4])  # pair A sampled twice, then pair B twice
    assert advantages(r, baseline="group", group_size=2).tolist() == pytest.approx([0.1, -0.1, -0.1, 0.1])
    # the batch mean mixes the pairs: A's worse sample still gets a positive advantage
    assert advantages(r, baseline="batch_mean").tolist() == pytest.approx([0.35, 0.15, -0.35, -0.15])
    assert advantages(r, baseline="group", group_size=2, normalize=True).tolist() == pytest.approx([1, -1, -1, 1])
    assert advantages(torch.tensor([0.5, 0.5, 0.3, 0.3]), "group", True, 2).tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="group_size"):
        advantages(r, baseline="group", group_size=3)


def test_ppo_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        ppo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 2), torch.ones(2, 3), torch.ones(2), eps=0.2)
