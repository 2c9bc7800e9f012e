"""The PIE objective (paper Sec. 3.4.2, Eq. 4-7) as pure functions over tensors.

Reward (Eq. 4), from the frozen recommender's prediction for the pair the explanation was
written for, on the unit rating scale (r - 1) / 4:

    R_k = 1 / (1 + |y_hat_k - y_k|)                                            (4)

Per-token probability ratio of the policy (LoRA on) to the reference (the same LLM with
the adapters disabled), for explanation k = (z_1 .. z_T) written for input X_k:

    rho_{k,t} = pi_phi(z_t | X_k, z_<t) / pi_ref(z_t | X_k, z_<t)              (5, 6)

Loss, for the positive and the negative explanations alike (the trainer adds the two):

    L = -(1/N) sum_k sum_t clip(rho_{k,t}, 1 - eps, 1 + eps) * R_k             (7)

How this differs from PPO and GRPO:
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
"""

from __future__ import annotations

import torch
from torch import Tensor

BASELINES = ("none", "batch_mean")


def rating_reward(y_hat_unit: Tensor, y_unit: Tensor) -> Tensor:
    """Eq. 4 on the unit scale: 1 for a perfect prediction, 0.5 at the scale's far end."""
    return 1.0 / (1.0 + (y_hat_unit - y_unit).abs())


def apply_baseline(reward: Tensor, baseline: str = "none") -> Tensor:
    """The reward the loss multiplies: as is, or minus the batch mean."""
    if baseline == "none":
        return reward
    if baseline == "batch_mean":
        return reward - reward.mean()
    raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")


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
