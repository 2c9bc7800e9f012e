"""The PIE update of the explainer (Algorithm 1, odd step), given a frozen recommender's rewards.

Per step: draw a batch of (user, place) pairs, sample a positive and a negative explanation
for each with the current policy (no gradient; one shared prefill per pair), let the caller
score them (``reward_fn``: the frozen recommender reads the explanation embeddings and
predicts the rating; Eq. 4 turns the error into a reward), then score the same tokens under
the policy (gradient through LoRA and the soft-prompt projector) and the reference (adapters
off, no gradient), and take one AdamW step on Eq. 7 summed over the two polarities. Only
LoRA and projector parameters are in the optimizer; the base LLM and the recommender's
consumer vectors (``user_vecs``) stay fixed.

Differs from the paper: ``baseline="batch_mean"`` is an option (see ``pie.py``); gradient norm
clipping; explanations are screened by ``check_explanation`` before the recommender sees them
(the policy is still scored on the tokens it sampled). A fresh optimizer per call (per round).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from recpie_core.explain.explainer import Explainer
from recpie_core.explain.pie import BASELINES, apply_baseline, pie_loss, ratio_stats
from recpie_core.explain.prompts import check_explanation
from recpie_core.tracking import NullTracker, Tracker

log = logging.getLogger(__name__)

# reward_fn(idx, pos_texts, neg_texts) -> (reward_pos (B,), reward_neg (B,) | None):
# idx are the pairs' positions in the prompt lists given to pie_update; neg_texts is None
# for single-explanation variants.
RewardFn = Callable[[Tensor, list[str], list[str] | None], tuple[Tensor, Tensor | None]]


@dataclass(frozen=True)
class PIEConfig:
    lr: float = 1e-4  # AdamW learning rate (LoRA and projector)
    eps: float = 0.2  # clip range of the ratio to the reference, Eq. 7
    baseline: str = "none"  # "none" (the paper) | "batch_mean" (reward minus the batch mean)
    steps: int = 8  # optimizer steps per call (per round)
    batch_size: int = 32  # pairs per step; each gives a pos and (if given) a neg explanation
    micro_batch: int = 32  # explanations per forward/backward (gradient accumulation below batch)
    gen_batch_size: int = 64  # explanations per generate call (pos + neg count two per pair)
    max_new_tokens: int = 24  # explanation length cap, in tokens
    temperature: float = 1.0  # sampling temperature (1.0: the policy itself)
    top_p: float = 1.0  # nucleus sampling (1.0: the policy itself)
    grad_clip: float = 1.0  # max global gradient norm (0 disables)
    weight_decay: float = 0.0  # AdamW weight decay
    max_explanation_chars: int = 400  # check_explanation cap on what the recommender reads
    seed: int = 0  # batch order and sampling

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must lie in (0, 1): the clip range is [1 - eps, 1 + eps], got {self.eps}")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {BASELINES}, got {self.baseline!r}")
        if min(self.steps, self.batch_size, self.micro_batch, self.gen_batch_size, self.max_new_tokens) < 1:
            raise ValueError("steps, batch sizes and max_new_tokens must be >= 1")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("grad_clip and weight_decay must be >= 0")


@dataclass
class PIEStats:
    steps: int  # optimizer steps taken
    seconds: float  # wall time of the whole update
    history: list[dict[str, float]] = field(default_factory=list)  # the metrics logged per step
    n_problems: int = 0  # explanations check_explanation flagged

    @property
    def mean_reward(self) -> float:
        return sum(h["reward_mean"] for h in self.history) / max(len(self.history), 1)


def _pad_cat(tensors: list[Tensor]) -> Tensor:
    T = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, T - t.shape[1])) for t in tensors])


def pie_update(explainer: Explainer, pos_prompts: Sequence[str], neg_prompts: Sequence[str] | None,
               user_vecs: Tensor, reward_fn: RewardFn, cfg: PIEConfig = PIEConfig(),
               tracker: Tracker = NullTracker(), step_offset: int = 0) -> PIEStats:
    """``cfg.steps`` PIE steps over the given pairs; metrics go to ``tracker`` at
    ``step_offset + step``. ``user_vecs`` (N, user_dim) are the recommender's consumer vectors."""
    n = len(pos_prompts)
    if neg_prompts is not None and len(neg_prompts) != n:
        raise ValueError(f"{n} positive prompts but {len(neg_prompts)} negative ones")
    if user_vecs.shape[0] != n:
        raise ValueError(f"{n} prompts but {user_vecs.shape[0]} user vectors")
    user_vecs = user_vecs.detach()
    opt = torch.optim.AdamW(explainer.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    order, cursor = torch.randperm(n, generator=g), 0
    stats, t0 = PIEStats(steps=0, seconds=0.0), time.perf_counter()
    polarities = [("pos", pos_prompts)] + ([("neg", neg_prompts)] if neg_prompts is not None else [])

    for step in range(cfg.steps):
        if cursor + cfg.batch_size > n:  # a new pass over the pairs, reshuffled
            order, cursor = torch.randperm(n, generator=g), 0
        idx = order[cursor:cursor + cfg.batch_size]  # (B,)
        cursor += cfg.batch_size
        vecs = user_vecs[idx]

        # 1. sample explanations with the current policy (both polarities share their prefill)
        prompts_b = {pol: [prompts[i] for i in idx.tolist()] for pol, prompts in polarities}
        gen_seed = cfg.seed * 100_003 + step_offset + step
        sample = dict(max_new_tokens=cfg.max_new_tokens, seed=gen_seed, temperature=cfg.temperature, top_p=cfg.top_p)
        if "neg" in prompts_b:
            ids_b = dict(zip(("pos", "neg"), explainer.generate_pair_ids(
                prompts_b["pos"], prompts_b["neg"], vecs, batch_size=max(cfg.gen_batch_size // 2, 1), **sample)))
        else:
            ids_b = {"pos": explainer.generate_ids(prompts_b["pos"], vecs, batch_size=cfg.gen_batch_size, **sample)}
        batch, texts = {}, {}
        for pol, ids in ids_b.items():
            checked = [check_explanation(t, cfg.max_explanation_chars) for t in explainer.decode(ids)]
            stats.n_problems += sum(bool(problems) for _, problems in checked)
            batch[pol], texts[pol] = (prompts_b[pol], ids), [t for t, _ in checked]

        # 2. rewards from the caller's frozen recommender
        r_pos, r_neg = reward_fn(idx, texts["pos"], texts.get("neg"))
        rewards = {"pos": r_pos.detach().float().cpu(), "neg": None if r_neg is None else r_neg.detach().float().cpu()}

        # 3. policy and reference log-probs, Eq. 7 per polarity, one optimizer step
        explainer.model.train()
        opt.zero_grad(set_to_none=True)
        loss_total, logps, refs, masks = 0.0, [], [], []
        for pol, (p, ids) in batch.items():
            r = apply_baseline(rewards[pol], cfg.baseline)  # baseline over the whole batch
            for s in range(0, len(p), cfg.micro_batch):
                sl = slice(s, s + cfg.micro_batch)
                logp, mask = explainer.sequence_logprobs(p[sl], vecs[sl], ids[sl])
                logp_ref, _ = explainer.sequence_logprobs(p[sl], vecs[sl], ids[sl], use_adapter=False)
                r_sl = r[sl].to(logp.device)
                loss = pie_loss(logp, logp_ref, mask, r_sl, cfg.eps) * (len(r_sl) / len(p))
                loss.backward()
                loss_total += loss.item()
                logps.append(logp.detach().cpu()), refs.append(logp_ref.cpu()), masks.append(mask.cpu())
        grad_norm = torch.nn.utils.clip_grad_norm_(explainer.trainable_parameters(),
                                                   cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        opt.step()
        explainer.model.eval()

        # 4. log
        all_r = torch.cat([r for r in rewards.values() if r is not None])
        metrics = {"loss": loss_total, "reward_mean": all_r.mean().item(),
                   "reward_pos": rewards["pos"].mean().item(), "grad_norm": float(grad_norm),
                   **ratio_stats(_pad_cat(logps), _pad_cat(refs), _pad_cat(masks), cfg.eps),
                   "tokens_mean": torch.cat([m.sum(1) for m in masks]).mean().item()}
        if rewards["neg"] is not None:
            metrics["reward_neg"] = rewards["neg"].mean().item()
        tracker.log_metrics(metrics, step=step_offset + step)
        stats.history.append(metrics)
        stats.steps += 1
        log.info("pie step %d: reward %.4f loss %.4f clipped %.3f", step, metrics["reward_mean"],
                 metrics["loss"], metrics["clipped_frac"])

    stats.seconds = time.perf_counter() - t0
    return stats
