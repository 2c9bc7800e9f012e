"""``PIEConfig``: the PIE update's objective, baseline and optimiser.

Apart from ``pie_trainer.py`` so that profiles, the code location and a data step
read it without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from recpie_core.explain.generation import GenerationConfig

BASELINES = ("none", "batch_mean", "group")
OBJECTIVES = ("eq7", "ppo")


@dataclass(frozen=True)
class PIEConfig:
    lr: float = 1e-4  # AdamW learning rate (LoRA and projector)
    objective: str = "eq7"  # "eq7" (the paper: ratio to the reference, clipped, times the reward)
    # | "ppo" (ratio to the sampling policy, min(r A, clip(r) A), A = R - a baseline, k3 KL to the reference)
    eps: float = 0.2  # clip range of the ratio: to the reference (eq7), to the sampler (ppo)
    baseline: str = "none"  # "none" (the paper) | "batch_mean" (reward minus the batch mean) | "group"
    # (minus the mean of group_size samples of the same pair); ppo needs one of the last two
    group_size: int = 1  # samples per pair in a batch ("group": batch_size / group_size pairs per step)
    advantage_norm: bool = False  # also divide R - mean by the std of the same batch or group
    kl_coef: float = 0.0  # ppo: weight of the per-token k3 KL to the reference (eq7 has no KL term: 0)
    ppo_epochs: int = 1  # optimizer passes over each sampled batch (ppo; eq7 takes one)
    steps: int = 8  # sampled batches per call (per round); each gives ppo_epochs optimizer steps
    batch_size: int = 32  # pairs per step; each gives a pos and (if given) a neg explanation
    micro_batch: int = 32  # explanations per forward/backward (gradient accumulation below batch)
    generation: GenerationConfig = GenerationConfig()  # how samples are written: the explanation pass's config
    trim_cut: bool = False  # the recommender reads whole_explanation(text): texts cut at the cap trimmed
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    weight_decay: float = 0.0  # AdamW weight decay
    readout: bool = True  # after the last step, the first step's pairs sampled again (same seed) and scored:
    # the same pairs' reward before and after the update (PIEStats.readout; the per-step reward follows the draw)
    checkpoint_layers: bool = True  # recompute decoder activations in backward: 9.6 -> 3.7 GB at 32 x 195
    # tokens (SmolLM2, fp32), ~25% more time; see Explainer.sequence_logprobs. Not with share_prefix
    share_prefix: bool = False  # score a pair's texts (both polarities, all group_size samples) with one pass
    # over their shared prompt start (Explainer.shared_logprobs): the same objective over about a third of
    # the tokens, without layer checkpointing (transformers drops the KV cache in a checkpointed layer)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must lie in (0, 1): the clip range is [1 - eps, 1 + eps], got {self.eps}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {self.baseline!r}")
        if (self.baseline == "group") != (self.group_size > 1) or self.batch_size % self.group_size:
            raise ValueError(f"baseline='group' needs group_size >= 2 dividing batch_size, and group_size > 1 "
                             f"needs baseline='group' (got {self.baseline!r}, {self.group_size}, {self.batch_size})")
        if self.objective == "ppo" and self.baseline == "none":
            raise ValueError("objective='ppo' needs baseline='batch_mean' or 'group': its advantage is R minus a "
                             "baseline, and the raw reward (always > 0 under Eq. 4) would push every sampled text up")
        if self.advantage_norm and self.baseline == "none":
            raise ValueError("advantage_norm divides R - mean by the batch std; with baseline='none' nothing is "
                             "subtracted and the always-positive reward would only be rescaled")
        if self.kl_coef < 0 or self.ppo_epochs < 1:
            raise ValueError("kl_coef must be >= 0 and ppo_epochs >= 1")
        if self.objective == "eq7" and self.kl_coef:
            raise ValueError("Eq. 7 has no KL term (its clip to the reference bounds the drift); kl_coef is for "
                             "objective='ppo'")
        if self.objective == "eq7" and self.ppo_epochs > 1:
            raise ValueError("Eq. 7's ratio is to the reference, not to the policy that sampled, so a second pass "
                             "over the same samples gets no importance correction; use objective='ppo'")
        if min(self.steps, self.batch_size, self.micro_batch) < 1:
            raise ValueError("steps, batch_size and micro_batch must be >= 1")
        if self.share_prefix and self.checkpoint_layers:
            raise ValueError("share_prefix scores through a KV cache, which transformers drops in a checkpointed "
                             "layer: set checkpoint_layers=False with it")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("grad_clip and weight_decay must be >= 0")
