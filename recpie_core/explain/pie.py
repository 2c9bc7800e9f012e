"""The PIE objective (paper Sec. 3.4.2, Eq. 4-7) and a PPO-style alternative, as pure functions over tensors.

Reward (Eq. 4), from the frozen recommender's prediction for the pair the explanation was
written for, on the unit rating scale (r - 1) / 4:

    R_k = 1 / (1 + |y_hat_k - y_k|)                                            (4)

Per-token probability ratio of the policy (LoRA on) to the reference (the same LLM with
the adapters disabled), for explanation k = (z_1 .. z_T) written for input X_k:

    rho_{k,t} = pi_phi(z_t | X_k, z_<t) / pi_ref(z_t | X_k, z_<t)              (5, 6)

Loss, for the positive and the negative explanations alike (the trainer adds the two):

    L = -(1/N) sum_k sum_t clip(rho_{k,t}, 1 - eps, 1 + eps) * R_k             (7)

How Eq. 7 differs from PPO and GRPO:
- the ratio is taken against the frozen reference (adapters off), not against the policy
  that sampled; so the clip bounds the drift from the base LLM, and once a token's ratio
  leaves [1 - eps, 1 + eps] its gradient is zero (this is the paper's form, kept as is:
  there is no min(rho * A, clip(rho) * A) as in PPO);
- no advantage: the reward multiplies the ratio directly, with no value function and no
  group normalisation; ``baseline="batch_mean"`` (not in the paper) subtracts the batch's
  mean reward, because a reward that is always positive pushes every sampled text up and
  only the differences between rewards carry signal;
- the reward is the recommender's accuracy on the pair, not a reward model or a verifier;
- tokens are summed per explanation (no length normalisation), explanations averaged.

The PPO-style objective (``ppo_loss``, not in the paper; the paper calls its update a "PPO
iteration"), per token of explanation k, with pi_old the policy that sampled the batch:

    r_{k,t} = pi_phi(z_t | ...) / pi_old(z_t | ...)
    A_k     = R_k - mean_batch(R)            (or the mean of the pair's group; optionally / its std)
    KL_{k,t} = exp(q) - q - 1,  q = log pi_ref(z_t | ...) - log pi_phi(z_t | ...)   (k3)
    L = -(1/N) sum_k sum_t [ min(r A_k, clip(r, 1 - eps, 1 + eps) A_k) - beta KL_{k,t} ]

- the ratio is to the sampling policy, so it is 1 in the first optimizer pass over a batch
  and the clip only acts from the second pass on (``ppo_epochs`` > 1): it stops a token's
  push once the policy has moved it by eps, in the direction the advantage asked for;
- the drift from the base LLM is held by the KL term (Schulman's k3 estimator, unbiased
  and >= 0 under samples from pi_phi, as in TRL's GRPO) instead of by the clip;
- the advantage is the batch-mean baseline (GRPO's group, with the batch as the group and
  no value function), or with ``baseline="group"`` the mean over ``group_size`` samples of the
  same pair (GRPO's own group): then a pair that is easy or hard to predict no longer moves the
  advantage, only the explanation does; no entropy bonus;
- tokens are summed per explanation, explanations averaged, as in Eq. 7: one reward is
  spread over the explanation's tokens without a 1/T factor, so the learning rate means the
  same under both objectives, and there is no per-length normalisation (which biases a
  sequence-mean loss towards long texts when A < 0 and short ones when A > 0; Liu et al.
  2025, "Dr. GRPO"). With a length cap the sum is bounded by ``max_new_tokens``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from recpie_core.explain.pie_config import BASELINES


def rating_reward(y_hat_unit: Tensor, y_unit: Tensor) -> Tensor:
    """Eq. 4 on the unit scale: 1 for a perfect prediction, 0.5 at the scale's far end."""
    return 1.0 / (1.0 + (y_hat_unit - y_unit).abs())


def _groups(reward: Tensor, baseline: str, group_size: int) -> Tensor:
    """The reward as (groups, members): the whole batch, or consecutive runs of ``group_size``
    samples of one pair (``baseline="group"``)."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if baseline != "group":
        return reward.reshape(1, -1)
    if group_size < 2 or reward.numel() % group_size:
        raise ValueError(f"baseline 'group' needs group_size >= 2 dividing the batch ({reward.numel()}), "
                         f"got {group_size}")
    return reward.reshape(-1, group_size)


def apply_baseline(reward: Tensor, baseline: str = "none", group_size: int = 1) -> Tensor:
    """The reward the loss multiplies: as is, minus the batch mean, or minus the mean of the
    samples of the same pair (GRPO's group: what the pair alone does to the reward cancels)."""
    if baseline == "none":
        return reward
    r = _groups(reward, baseline, group_size)
    return (r - r.mean(1, keepdim=True)).reshape(reward.shape)


def advantages(reward: Tensor, baseline: str = "batch_mean", normalize: bool = False, group_size: int = 1) -> Tensor:
    """``apply_baseline``, then optionally divided by the standard deviation of the same set the
    mean came from (batch or group; population std, 0 for one reward; equal rewards give zeros)."""
    a = apply_baseline(reward, baseline, group_size)
    if not normalize:
        return a
    std = _groups(reward, baseline, group_size).std(1, correction=0, keepdim=True)
    return (_groups(a, baseline, group_size) / (std + 1e-8)).reshape(reward.shape)


def pie_loss(logp: Tensor, logp_ref: Tensor, mask: Tensor, reward: Tensor, eps: float,
             baseline: str = "none") -> Tensor:
    """Eq. 7. logp, logp_ref, mask: (N, T) completion tokens; reward: (N,). Returns a scalar.

    ``reward`` is treated as a constant (detached); ``logp_ref`` too.
    """
    if not logp.shape == logp_ref.shape == mask.shape or reward.shape != logp.shape[:1]:
        raise ValueError(f"shapes: logp {tuple(logp.shape)}, logp_ref {tuple(logp_ref.shape)}, "
                         f"mask {tuple(mask.shape)}, reward {tuple(reward.shape)}")
    r = apply_baseline(reward.detach().float(), baseline)  # (N,)
    ratio = torch.exp(logp - logp_ref.detach()).clamp(1 - eps, 1 + eps)  # (N, T)
    return -((ratio * mask).sum(dim=1) * r).mean()


def kl_k3(logp: Tensor, logp_ref: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from log-probs of tokens sampled from pi:
    exp(q) - q - 1 with q = logp_ref - logp. (N, T) in, (N, T) out; >= 0, 0 where they agree."""
    q = logp_ref - logp
    return torch.exp(q) - q - 1


def ppo_loss(logp: Tensor, logp_old: Tensor, logp_ref: Tensor, mask: Tensor, advantage: Tensor, eps: float,
             kl_coef: float = 0.0) -> Tensor:
    """The PPO-style objective (module docstring). logp, logp_old, logp_ref, mask: (N, T);
    advantage: (N,). Returns a scalar; ``logp_old``, ``logp_ref`` and ``advantage`` are constants."""
    if (not logp.shape == logp_old.shape == logp_ref.shape == mask.shape
            or advantage.shape != logp.shape[:1]):
        raise ValueError(f"shapes: logp {tuple(logp.shape)}, logp_old {tuple(logp_old.shape)}, "
                         f"logp_ref {tuple(logp_ref.shape)}, mask {tuple(mask.shape)}, "
                         f"advantage {tuple(advantage.shape)}")
    a = advantage.detach().float()[:, None]  # (N, 1)
    ratio = torch.exp(logp - logp_old.detach())  # (N, T)
    surrogate = torch.minimum(ratio * a, ratio.clamp(1 - eps, 1 + eps) * a)  # (N, T)
    per_token = surrogate - kl_coef * kl_k3(logp, logp_ref.detach()) if kl_coef else surrogate  # (N, T)
    return -(per_token * mask).sum(dim=1).mean()


@torch.no_grad()
def ppo_clipped(logp: Tensor, logp_old: Tensor, advantage: Tensor, eps: float) -> Tensor:
    """(N, T) bool: tokens whose PPO gradient the clip zeroes (the ratio has left [1 - eps, 1 + eps]
    on the side the advantage pushes towards)."""
    ratio = torch.exp(logp - logp_old)
    a = advantage[:, None]
    return ((ratio > 1 + eps) & (a > 0)) | ((ratio < 1 - eps) & (a < 0))


@torch.no_grad()
def ratio_stats(logp: Tensor, logp_ref: Tensor, mask: Tensor, eps: float) -> dict[str, float]:
    """Ratio mean/min/max, share of tokens clipped, mean log-ratio, over the unmasked tokens."""
    m = mask.bool()
    if not m.any():
        return {"ratio_mean": 1.0, "ratio_min": 1.0, "ratio_max": 1.0, "clipped_frac": 0.0, "log_ratio": 0.0}
    log_ratio = (logp - logp_ref)[m]
    ratio = log_ratio.exp()
    clipped = (ratio < 1 - eps) | (ratio > 1 + eps)
    return {"ratio_mean": ratio.mean().item(), "ratio_min": ratio.min().item(),
            "ratio_max": ratio.max().item(), "clipped_frac": clipped.float().mean().item(),
            "log_ratio": log_ratio.mean().item()}
