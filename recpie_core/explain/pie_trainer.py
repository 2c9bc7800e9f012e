"""The PIE update of the explainer (Algorithm 1, odd step), given a frozen recommender's rewards.

Per step: draw a batch of (user, place) pairs, sample a positive and a negative explanation
for each with the current policy as ``cfg.generation`` says (the explanation pass's config; no
gradient; one shared prefill per pair), let the caller score them (``reward_fn``: the frozen
recommender reads the explanation embeddings and predicts the rating; Eq. 4 turns the error
into a reward), then score the same tokens under the reference (adapters off, no gradient)
and under the policy (gradient through LoRA and the soft-prompt projector), and take AdamW
steps on the objective summed over the two polarities (``share_prefix``: a pair's texts are
scored together, their common prompt start computed once, ``Explainer.shared_logprobs``):

- ``objective="eq7"`` (default, the paper): one step on Eq. 7, ratio to the reference;
- ``objective="ppo"``: ``ppo_epochs`` steps on the PPO-style loss over the same samples, the
  ratio to the policy that sampled (its log-probs are the first pass's, detached: the same
  parameters, before any step on this batch; LoRA dropout, if on, differs between passes),
  A = R - batch mean (or, ``baseline="group"``, minus the mean of ``group_size`` samples of the
  same pair), a k3 KL to the reference.

Only LoRA and projector parameters are in the optimizer; the base LLM and the recommender's
consumer vectors (``user_vecs``) stay fixed.

Differs from the paper: the baseline, the PPO objective and the sentence stop are options
(see ``pie.py``, ``endings.py``); gradient norm clipping; explanations are screened by
``screen.screen_generated`` (a flagged one replaced by the neutral fallback; with ``trim_cut``
trimmed by ``whole_explanation`` first) before the recommender sees them, while the policy
is still scored on the tokens it sampled. A fresh optimizer per call (per round).

Logged per step (one sampled batch): ``reward_mean`` (``reward_pos``, ``reward_neg``), ``loss``
(first pass), ``kl_ref`` (mean per-token k3 KL of the sampling policy to the reference),
``clipped_frac`` (share of token gradients the clip zeroed: eq7, ratio to the reference at the
sampling policy; ppo, over all passes, so 0 with one pass), ``ratio_mean/min/max`` and
``log_ratio`` (to the reference, at the sampling policy), ``ended_frac`` (share of explanations
that ended on their own), ``tokens_mean``, ``grad_norm`` (last pass). With ``cfg.readout``, after
the last step: ``readout_before`` and ``readout_after``, the first step's pairs scored again with
the same sampling seed under the updated policy (``PIEStats.readout``). Each step's own reward
mostly follows which pairs it drew (bench/reports/reward_signal.md); this pair of numbers does not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from recpie_core.explain.explainer import Explainer
from recpie_core.explain.generation import GenerationConfig
from recpie_core.explain.pie import (
    advantages,
    kl_k3,
    pie_loss,
    ppo_clipped,
    ppo_loss,
    ratio_stats,
)
from recpie_core.explain.pie_config import PIEConfig
from recpie_core.explain.screen import screen_generated
from recpie_core.tracking import NullTracker, Tracker

log = logging.getLogger(__name__)

# reward_fn(idx, pos_texts, neg_texts) -> (reward_pos (B,), reward_neg (B,) | None):
# idx are the pairs' positions in the prompt lists given to pie_update; neg_texts is None
# for single-explanation variants.
RewardFn = Callable[[Tensor, list[str], list[str] | None], tuple[Tensor, Tensor | None]]


@dataclass
class PIEStats:
    steps: int  # sampled batches (one history row each)
    seconds: float  # wall time of the whole update
    history: list[dict[str, float]] = field(default_factory=list)  # the metrics logged per step
    n_problems: int = 0  # explanations the screen flagged (and replaced by its fallback)
    optimizer_steps: int = 0  # steps * ppo_epochs
    # the first step's batch (pairs, seed) scored before and after the update: "pairs" (distinct), "samples"
    # (the batch), "before", "after" (mean rewards), "diff_se" (standard error of the paired difference)
    readout: dict[str, float] = field(default_factory=dict)

    @property
    def mean_reward(self) -> float:
        return sum(h["reward_mean"] for h in self.history) / max(len(self.history), 1)

    def _quarter(self, last: bool) -> float:
        q = max(len(self.history) // 4, 1)
        part = self.history[-q:] if last else self.history[:q]
        return sum(h["reward_mean"] for h in part) / max(len(part), 1)

    @property
    def reward_first(self) -> float:
        """Mean reward of the first quarter of the steps (at least one step)."""
        return self._quarter(last=False)

    @property
    def reward_last(self) -> float:
        """Mean reward of the last quarter of the steps (at least one step)."""
        return self._quarter(last=True)


def _pad_cat(tensors: list[Tensor]) -> Tensor:
    T = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, T - t.shape[1])) for t in tensors])


def _sample(explainer: Explainer, prompts_b: dict[str, list[str]], vecs: Tensor, gen: GenerationConfig,
            seed: int) -> dict[str, tuple[list[list[int]], list[bool]]]:
    """Per polarity: (completion ids, ended on its own) under the current policy."""
    kw = {**gen.generate_kwargs(greedy=False), "seed": seed}
    if "neg" in prompts_b:  # both polarities share their prefill
        pos, neg, pos_end, neg_end = explainer.generate_pair_ids(prompts_b["pos"], prompts_b["neg"], vecs, **kw)
        return {"pos": (pos, pos_end), "neg": (neg, neg_end)}
    return {"pos": explainer.generate_ids(prompts_b["pos"], vecs, **kw)}


def pie_update(explainer: Explainer, pos_prompts: Sequence[str], neg_prompts: Sequence[str] | None,
               user_vecs: Tensor, reward_fn: RewardFn, cfg: PIEConfig = PIEConfig(),
               tracker: Tracker = NullTracker(), step_offset: int = 0) -> PIEStats:
    """``cfg.steps`` PIE steps over the given pairs; metrics go to ``tracker`` at
    ``step_offset + step``. ``user_vecs`` (N, user_dim) are the recommender's consumer vectors.
    The same arguments give the same update: LoRA dropout draws from torch's global generator,
    seeded here from the sampling seed and restored afterwards."""
    with torch.random.fork_rng():
        torch.manual_seed(cfg.generation.seed * 100_003 + step_offset)
        return _pie_update(explainer, pos_prompts, neg_prompts, user_vecs, reward_fn, cfg, tracker, step_offset)


def _pie_update(explainer: Explainer, pos_prompts: Sequence[str], neg_prompts: Sequence[str] | None,
                user_vecs: Tensor, reward_fn: RewardFn, cfg: PIEConfig, tracker: Tracker,
                step_offset: int) -> PIEStats:
    n = len(pos_prompts)
    if neg_prompts is not None and len(neg_prompts) != n:
        raise ValueError(f"{n} positive prompts but {len(neg_prompts)} negative ones")
    if user_vecs.shape[0] != n:
        raise ValueError(f"{n} prompts but {user_vecs.shape[0]} user vectors")
    user_vecs = user_vecs.detach()
    opt = torch.optim.AdamW(explainer.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = cfg.generation
    g = torch.Generator().manual_seed(gen.seed)
    order, cursor = torch.randperm(n, generator=g), 0
    stats, t0 = PIEStats(steps=0, seconds=0.0), time.perf_counter()
    polarities = [("pos", pos_prompts)] + ([("neg", neg_prompts)] if neg_prompts is not None else [])

    pairs = cfg.batch_size // cfg.group_size  # distinct pairs per step
    for step in range(cfg.steps):
        if cursor + pairs > n:  # a new pass over the pairs, reshuffled
            order, cursor = torch.randperm(n, generator=g), 0
        idx = order[cursor:cursor + pairs].repeat_interleave(cfg.group_size)  # (B,): each pair group_size times
        cursor += pairs
        vecs = user_vecs[idx]

        # 1. sample explanations with the current policy; 2. rewards from the caller's frozen recommender
        prompts_b = {pol: [prompts[i] for i in idx.tolist()] for pol, prompts in polarities}
        seed = gen.seed * 100_003 + step_offset + step
        sampled, rewards, ended, n_problems = _sample_and_score(explainer, prompts_b, idx, vecs, reward_fn, cfg, seed)
        stats.n_problems += n_problems
        if step == 0:
            first = (prompts_b, idx, vecs, seed, rewards)
        # advantages per polarity over the batch
        adv = {pol: advantages(rewards[pol], cfg.baseline, cfg.advantage_norm, cfg.group_size) for pol in sampled}

        # 3. reference and policy log-probs, the objective over both polarities, ppo_epochs optimizer steps
        chunks = _chunks(list(sampled), len(idx), cfg)
        refs: list[Tensor] = []
        olds: list[Tensor] = []
        masks: list[Tensor] = []
        loss_first, n_clipped, n_tokens = 0.0, 0.0, 0.0
        explainer.model.train()
        for epoch in range(cfg.ppo_epochs):
            opt.zero_grad(set_to_none=True)
            for c, chunk in enumerate(chunks):
                k = torch.tensor([j for _, j in chunk])
                p = [prompts_b[pol][j] for pol, j in chunk]
                ids = [sampled[pol][0][j] for pol, j in chunk]
                a = torch.stack([adv[pol][j] for pol, j in chunk])
                texts = (p, vecs[k], ids, idx[k].tolist())  # a text's pair is its group
                logp, mask = _score(explainer, cfg, *texts, use_adapter=True)
                if epoch == 0:
                    refs.append(_score(explainer, cfg, *texts, use_adapter=False)[0])
                    olds.append(logp.detach())  # the sampling policy: no step taken on this batch yet
                    masks.append(mask)
                a = a.to(logp.device)
                if cfg.objective == "eq7":
                    loss = pie_loss(logp, refs[c], mask, a, cfg.eps)
                else:
                    loss = ppo_loss(logp, olds[c], refs[c], mask, a, cfg.eps, cfg.kl_coef)
                    n_clipped += (ppo_clipped(logp.detach(), olds[c], a, cfg.eps) * mask).sum().item()
                    n_tokens += mask.sum().item()
                loss = loss * (len(a) / len(idx))
                loss.backward()
                if epoch == 0:
                    loss_first += loss.item()
            grad_norm = torch.nn.utils.clip_grad_norm_(explainer.trainable_parameters(),
                                                       cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            opt.step()
            stats.optimizer_steps += 1
        explainer.model.eval()

        # 4. log
        old, ref, mask = (_pad_cat([t.cpu() for t in ts]) for ts in (olds, refs, masks))  # (2B, T) each
        all_r = torch.cat([r for r in rewards.values() if r is not None])
        metrics = {"loss": loss_first, "reward_mean": all_r.mean().item(),
                   "reward_pos": rewards["pos"].mean().item(), "grad_norm": float(grad_norm),
                   **ratio_stats(old, ref, mask, cfg.eps),
                   "kl_ref": ((kl_k3(old, ref) * mask).sum() / mask.sum().clamp(min=1)).item(),
                   "ended_frac": sum(ended) / max(len(ended), 1),
                   "tokens_mean": mask.sum(1).mean().item()}
        if cfg.objective == "ppo":
            metrics["clipped_frac"] = n_clipped / max(n_tokens, 1.0)
        if rewards["neg"] is not None:
            metrics["reward_neg"] = rewards["neg"].mean().item()
        tracker.log_metrics(metrics, step=step_offset + step)
        stats.history.append(metrics)
        stats.steps += 1
        log.info("pie step %d: reward %.4f loss %.4f kl %.4f clipped %.3f ended %.2f", step, metrics["reward_mean"],
                 metrics["loss"], metrics["kl_ref"], metrics["clipped_frac"], metrics["ended_frac"])

    if cfg.readout and stats.steps:
        stats.readout = _readout(explainer, reward_fn, cfg, *first)
        tracker.log_metrics({"readout_before": stats.readout["before"], "readout_after": stats.readout["after"]},
                            step=step_offset + stats.steps - 1)
        log.info("pie readout: the first step's %d pairs scored %.4f before the update, %.4f after (se %.4f)",
                 stats.readout["pairs"], stats.readout["before"], stats.readout["after"], stats.readout["diff_se"])
    stats.seconds = time.perf_counter() - t0
    return stats


def _chunks(polarities: list[str], batch: int, cfg: PIEConfig) -> list[list[tuple[str, int]]]:
    """The batch's texts, (polarity, sample) each, in forward/backward chunks of ``cfg.micro_batch``:
    polarity by polarity, or with ``cfg.share_prefix`` sample by sample, both polarities together,
    so that a pair's texts (consecutive samples, ``group_size`` of them) share a chunk and its prefill.
    The loss is a mean over texts, so the order of the texts does not change the objective."""
    texts = ([(pol, j) for j in range(batch) for pol in polarities] if cfg.share_prefix
             else [(pol, j) for pol in polarities for j in range(batch)])
    return [texts[s:s + cfg.micro_batch] for s in range(0, len(texts), cfg.micro_batch)]


def _score(explainer: Explainer, cfg: PIEConfig, prompts: list[str], vecs: Tensor, ids: list[list[int]],
           pairs: list[int], use_adapter: bool) -> tuple[Tensor, Tensor]:
    """(logp, mask) of a chunk's texts under the policy or the reference; with ``cfg.share_prefix``
    the texts of one pair (``pairs``) share one pass over their common prompt start."""
    if cfg.share_prefix:
        return explainer.shared_logprobs(prompts, vecs, ids, pairs, use_adapter=use_adapter)
    return explainer.sequence_logprobs(prompts, vecs, ids, use_adapter=use_adapter,
                                       checkpoint_layers=cfg.checkpoint_layers)


def _sample_and_score(explainer: Explainer, prompts_b: dict[str, list[str]], idx: Tensor, vecs: Tensor,
                      reward_fn: RewardFn, cfg: PIEConfig, seed: int):
    """One batch under the current policy: (sampled ids and endings per polarity, rewards per
    polarity on the CPU (``neg`` None for single-explanation variants), endings, screen flags)."""
    sampled = _sample(explainer, prompts_b, vecs, cfg.generation, seed=seed)
    texts, ended, n_problems = {}, [], 0
    for pol, (ids, ends) in sampled.items():
        texts[pol], _, problems = screen_generated(explainer.decode(ids), ends, cfg.trim_cut, cfg.generation.max_chars)
        n_problems += sum(bool(p) for p in problems)
        ended += ends
    r_pos, r_neg = reward_fn(idx, texts["pos"], texts.get("neg"))
    rewards = {"pos": r_pos.detach().float().cpu(), "neg": None if r_neg is None else r_neg.detach().float().cpu()}
    return sampled, rewards, ended, n_problems


def _readout(explainer: Explainer, reward_fn: RewardFn, cfg: PIEConfig, prompts_b: dict[str, list[str]],
             idx: Tensor, vecs: Tensor, seed: int, before: dict[str, Tensor | None]) -> dict[str, float]:
    """The first step's batch sampled again with its seed under the updated policy and scored: a
    paired before/after over the same pairs and the same sampling stream."""
    with torch.no_grad():
        _, after, _, _ = _sample_and_score(explainer, prompts_b, idx, vecs, reward_fn, cfg, seed)
    b, a = (torch.stack([r for r in rs.values() if r is not None]).mean(0) for rs in (before, after))  # (B,)
    diff = a - b  # per sample, over its polarities (the pipeline's reward is one per pair, for both texts)
    se = (diff.std() / len(diff) ** 0.5).item() if len(diff) > 1 else float("nan")
    return {"pairs": len(set(idx.tolist())), "samples": len(diff), "before": b.mean().item(),
            "after": a.mean().item(), "diff_se": se}
