"""The PIE update. Fast: ``PIEConfig`` rejects combinations that cannot work, ``PIEStats``
summarises the first and last quarter. On the real SmolLM2-135M (slow): steps move the LoRA
and soft-prompt parameters and no base weight (TRL's ``test_train_peft_config`` pattern) under
both objectives, log the ratio, KL and ending statistics, and really learn: a reward for
replies that start with "A" raises that token's log-probability, and a reward for mentioning
"coffee" raises the share of sampled explanations that do."""

import re
from dataclasses import replace

import pytest
import torch

from recpie_core.explain.generation import GenerationConfig
from recpie_core.explain.pie_trainer import PIEConfig, PIEStats, pie_update
from recpie_core.profiles import PIE_CHOSEN, get_profile

slow = pytest.mark.slow


@pytest.mark.parametrize("kw", [
    dict(objective="ppo"),  # baseline "none": the advantage would be the raw, always-positive reward
    dict(advantage_norm=True),  # nothing subtracted, only rescaled
    dict(kl_coef=0.1),  # Eq. 7 has no KL term
    dict(ppo_epochs=2, baseline="batch_mean"),  # Eq. 7 has no ratio to the sampler
    dict(objective="grpo"),
    dict(objective="ppo", baseline="batch_mean", kl_coef=-0.1),
    dict(baseline="group"), dict(baseline="batch_mean", group_size=2),  # a group needs both
    dict(objective="ppo", baseline="group", group_size=3, batch_size=16),  # 3 does not divide 16
    dict(share_prefix=True),  # checkpoint_layers (default True) would drop the shared KV cache
])
def test_config_rejects_combinations_that_cannot_work(kw):
    with pytest.raises(ValueError):
        PIEConfig(**kw)


@pytest.mark.parametrize("kw", [
    dict(stop_at_sentence=True, min_new_tokens=30, max_new_tokens=24),  # the stop could never fire
    dict(temperature=0.0), dict(top_p=1.5), dict(batch_size=0),
])
def test_generation_config_rejects_settings_that_cannot_work(kw):
    with pytest.raises(ValueError):
        GenerationConfig(**kw)


def test_config_accepts_the_ppo_objective_and_keeps_eq7_the_default():
    assert PIEConfig().objective == "eq7" and PIEConfig().baseline == "none"
    assert not PIEConfig().generation.stop_at_sentence
    PIEConfig(objective="ppo", baseline="batch_mean", advantage_norm=True, kl_coef=0.05, ppo_epochs=4)


def test_stats_reward_first_and_last_quarter():
    stats = PIEStats(steps=8, seconds=1.0, history=[{"reward_mean": float(r)} for r in range(8)])
    assert (stats.reward_first, stats.reward_last, stats.mean_reward) == (0.5, 6.5, 3.5)
    short = PIEStats(steps=2, seconds=1.0, history=[{"reward_mean": 0.25}, {"reward_mean": 0.75}])
    assert (short.reward_first, short.reward_last) == (0.25, 0.75)


class ListTracker:
    def __init__(self):
        self.rows = []

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, metrics))


def snapshot(explainer):
    params = {f"model.{n}": p.detach().clone() for n, p in explainer.model.named_parameters()}
    params.update({f"projector.{n}": p.detach().clone() for n, p in explainer.projector.named_parameters()})
    return params


def current(explainer):
    return dict([*((f"model.{n}", p) for n, p in explainer.model.named_parameters()),
                 *((f"projector.{n}", p) for n, p in explainer.projector.named_parameters())])


@slow
@pytest.mark.parametrize("objective", ["eq7", "ppo"])
def test_pie_steps_train_lora_and_projector_only(explainer, objective):
    prompts = ["Why visit a cafe?", "Why visit a park?"]
    before = snapshot(explainer)
    tracker = ListTracker()
    seen = []

    def reward_fn(idx, pos, neg):  # rewards that differ within the batch: ppo's advantage is R - mean
        seen.append((idx.tolist(), pos, neg))
        return torch.tensor([1.0, 0.0])[:len(idx)], torch.tensor([0.5, 0.75])[:len(idx)]

    extra = dict(objective="ppo", baseline="batch_mean", kl_coef=0.1, ppo_epochs=2) if objective == "ppo" else {}
    stats = pie_update(explainer, prompts, ["Why not?", "Why not here?"], torch.randn(2, 8), reward_fn,
                       PIEConfig(lr=1e-3, steps=2, batch_size=2, generation=GenerationConfig(max_new_tokens=4),
                                 **extra), tracker, step_offset=10)
    assert stats.steps == 2 and len(stats.history) == 2
    assert stats.optimizer_steps == (4 if objective == "ppo" else 2)
    assert [s for s, _ in tracker.rows] == [10, 11, 11]  # the steps, then the readout at the last step
    first = tracker.rows[0][1]
    assert first["ratio_mean"] == pytest.approx(1.0)  # to the reference, at the sampler: LoRA B starts at zero
    assert first["kl_ref"] == pytest.approx(0.0, abs=1e-7)
    # eq7: nothing clipped at the reference; ppo: the first of the two passes has ratio 1 to the sampler
    assert first["clipped_frac"] == 0.0 if objective == "eq7" else 0.0 <= first["clipped_frac"] <= 0.5
    assert {"reward_mean", "reward_pos", "reward_neg", "ratio_min", "ratio_max", "log_ratio", "loss", "kl_ref",
            "clipped_frac", "ended_frac", "tokens_mean"} <= set(first)
    assert 0.0 <= first["ended_frac"] <= 1.0 and 1 <= first["tokens_mean"] <= 4
    assert tracker.rows[1][1]["kl_ref"] > 0  # the second batch is sampled from the moved policy
    assert sorted(seen[0][0]) == [0, 1] and len(seen[0][1]) == len(seen[0][2]) == 2
    after = current(explainer)
    trainable = [n for n in after if "lora_" in n or n.startswith("projector.")]
    assert len(trainable) == 30 * 4 * 2 + 2  # A and B of q, k, v, o in 30 layers; projector weight and bias
    for name, p in after.items():
        moved = not torch.equal(p.detach(), before[name])
        assert moved == (name in trainable), name


@slow
def test_the_same_update_twice_gives_the_same_weights(explainer):
    """LoRA dropout is on while PIE scores the samples: its draws are seeded by the update."""
    start = {n: p.detach().clone() for n, p in current(explainer).items()}

    def update():
        with torch.no_grad():
            for n, p in current(explainer).items():
                p.copy_(start[n])
        torch.manual_seed(torch.seed())  # whatever the caller's generator holds
        cfg = PIEConfig(objective="ppo", baseline="batch_mean", lr=1e-3, steps=2, batch_size=2, ppo_epochs=2,
                        generation=GenerationConfig(max_new_tokens=4))
        pie_update(explainer, ["Why visit a cafe?", "Why visit a park?"], None, torch.ones(2, 8),
                   lambda idx, pos, neg: (torch.tensor([1.0, 0.0])[:len(idx)], None), cfg)
        return {n: p.detach().clone() for n, p in current(explainer).items()}

    first, second = update(), update()
    assert any(not torch.equal(first[n], start[n]) for n in start)
    assert all(torch.equal(first[n], second[n]) for n in start)


@slow
def test_the_readout_scores_the_first_steps_batch_again(explainer):
    """A reward that reads only which pair it scores: the same pairs give the same readout however
    far the policy moved, and the update's own first step is its "before"."""
    tracker, seen = ListTracker(), []

    def reward_fn(idx, pos, neg):
        seen.append(idx.tolist())
        return idx.float() / 10, idx.float() / 10 + 0.5

    cfg = PIEConfig(objective="ppo", baseline="batch_mean", lr=1e-2, steps=3, batch_size=2,
                    generation=GenerationConfig(max_new_tokens=3))
    prompts = ["Why visit a cafe?", "Why visit a park?", "Why visit a bar?", "Why visit a shop?"]
    stats = pie_update(explainer, prompts, prompts[::-1], torch.randn(4, 8), reward_fn, cfg, tracker)
    assert len(seen) == 4 and seen[-1] == seen[0]  # three steps, then the first step's batch again
    r = stats.readout
    assert (r["pairs"], r["samples"]) == (2, 2) and r["before"] == r["after"]
    assert r["before"] == pytest.approx(stats.history[0]["reward_mean"])
    assert r["diff_se"] == 0.0
    assert tracker.rows[-1] == (2, {"readout_before": r["before"], "readout_after": r["after"]})
    assert pie_update(explainer, prompts, None, torch.randn(4, 8), lambda idx, pos, neg: (idx.float(), None),
                      replace(cfg, readout=False)).readout == {}


@slow
def test_group_baseline_samples_each_pair_group_size_times(explainer):
    seen = []

    def reward_fn(idx, pos, neg):
        seen.append((idx.tolist(), pos))
        return torch.tensor([float(len(t)) for t in pos]), None  # differs between samples of one pair

    cfg = PIEConfig(objective="ppo", baseline="group", group_size=4, batch_size=8, lr=1e-3, steps=2,
                    generation=GenerationConfig(max_new_tokens=6))
    stats = pie_update(explainer, ["Why visit a cafe?", "Why visit a park?", "Why visit a bar?"], None,
                       torch.randn(3, 8), reward_fn, cfg)
    assert stats.steps == 2
    for idx, texts in seen:  # two distinct pairs per step, each as four consecutive samples
        assert len(idx) == 8 and len(set(idx)) == 2 and idx[:4] == [idx[0]] * 4 and idx[4:] == [idx[4]] * 4
        assert len(set(texts[:4])) > 1  # sampled, not copied


@slow
def test_share_prefix_takes_the_same_step_as_one_row_per_text(llm_cache):
    """The same samples and rewards (sampling does not depend on the scorer), scored with one
    prefill per pair or one row per text: the same objective, so the same optimizer step up to
    float rounding. No LoRA dropout: its masks follow the tensors' shapes."""
    from recpie_core.explain.explainer import Explainer
    from recpie_core.explain.llm import LLMConfig

    explainer = Explainer.create(LLMConfig(device="cpu", dtype="float32", lora_dropout=0.0), llm_cache, seed=0)
    start = snapshot(explainer)
    pos = ["Why would a cafe be a good place to visit?", "Why would a park be a good place to visit?"]
    neg = ["Why would a cafe not be a good place to visit?", "Why would a park not be a good place to visit?"]
    u = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    seen = []

    def reward_fn(idx, p, n):
        seen.append((p, n))
        return torch.tensor([len(t) / 40 for t in p]), torch.tensor([1 - len(t) / 80 for t in n])

    steps = {}
    for shared in (False, True):
        with torch.no_grad():
            for name, param in current(explainer).items():
                param.copy_(start[name])
        cfg = PIEConfig(objective="ppo", baseline="group", group_size=2, batch_size=4, micro_batch=4, lr=1e-3,
                        steps=1, ppo_epochs=2, kl_coef=0.05, readout=False, share_prefix=shared,
                        checkpoint_layers=not shared, generation=GenerationConfig(max_new_tokens=6))
        pie_update(explainer, pos, neg, u, reward_fn, cfg)
        steps[shared] = torch.cat([(p.detach() - start[n]).flatten() for n, p in current(explainer).items()])
    assert seen[0] == seen[1]  # the same texts were scored
    plain, shared = steps[False], steps[True]
    assert plain.abs().max() > 0
    assert torch.nn.functional.cosine_similarity(plain, shared, dim=0) > 0.999
    assert (plain - shared).norm() < 0.01 * plain.norm()


@slow
def test_pie_raises_the_log_probability_of_a_rewarded_word(explainer):
    """Reward 1 for replies starting with "A", else 0. With the paper's reward in (0.5, 1] and
    no baseline every sample is pushed up; here the batch-mean baseline is used so that the
    unrewarded replies are pushed down, which shows learning within 4 steps."""
    prompts = ["Why would a cafe be a good place to visit?"] * 16
    u = torch.randn(1, 8, generator=torch.Generator().manual_seed(0)).expand(16, 8)

    def probe():
        with torch.no_grad():
            logp, _ = explainer.sequence_logprobs(prompts[:1], u[:1], ["A"])
        return logp[0, 0].item()

    def reward_fn(idx, pos, neg):
        return torch.tensor([1.0 if t.startswith("A ") else 0.0 for t in pos]), None

    start = probe()
    stats = pie_update(explainer, prompts, None, u, reward_fn,
                       PIEConfig(lr=1e-3, baseline="batch_mean", steps=4, batch_size=16,
                                 generation=GenerationConfig(max_new_tokens=4)))
    end = probe()
    assert end > start + 0.2, (start, end, stats.history)
    assert stats.history[-1]["reward_mean"] >= stats.history[0]["reward_mean"]


COFFEE = re.compile(r"\bcoffee\b", re.IGNORECASE)
CAFE = "Why would a cafe be a good recommendation for this consumer?"


@slow
# The chosen update rule only (profiles.PIE_CHOSEN, its sampler shortened to 12 tokens), for one
# eval round's steps (8). eq7 with the batch-mean baseline (lr 3e-3, 6 steps) learned too, but
# not reliably (0.16 -> 0.53-0.69 in fp32; it missed the +0.3 bar once in bf16), so it is
# evidence, not a test.
def test_a_reward_for_a_word_raises_its_share_of_sampled_explanations(explainer):
    """Reward 1 for mentioning "coffee", else 0, on one cafe prompt: its share of 32 sampled
    explanations (a fixed seed apart from training's) rises from ~0.16 to most of them.
    Measured here (16 samples per step, 12 tokens, ppo at lr 2e-3 with 2 passes): with the
    batch-mean baseline 0.16 -> 1.0 in 4 steps (~85 s); with the chosen group baseline (4 pairs x
    4 samples) 0.16 -> 0.44 in 4 steps, as groups whose 4 samples all miss the word carry no
    advantage; eq7 with the batch-mean baseline needs lr 3e-3 and 6 steps (0.16 -> 0.69); eq7
    without a baseline and a reward in {0.5, 1} (Eq. 4's range) did not learn (0.16 -> 0.22)."""
    cfg = replace(PIE_CHOSEN, steps=get_profile("eval").pie.steps, generation=GenerationConfig(max_new_tokens=12))
    u = torch.randn(1, 8, generator=torch.Generator().manual_seed(0)).expand(32, 8).contiguous()

    def share():
        texts = explainer.generate([CAFE] * 32, u, max_new_tokens=cfg.generation.max_new_tokens, batch_size=32,
                                   seed=12345)
        return sum(bool(COFFEE.search(t)) for t in texts) / 32

    def reward_fn(idx, pos, neg):
        return torch.tensor([1.0 if COFFEE.search(t) else 0.0 for t in pos]), None

    before = share()
    stats = pie_update(explainer, [CAFE] * 16, None, u[:16], reward_fn, cfg)
    after = share()
    assert after >= before + 0.3, (before, after, [h["reward_mean"] for h in stats.history])
    assert stats.reward_last > stats.reward_first
    assert stats.readout["after"] >= stats.readout["before"] + 0.3  # the same pairs, sampled the same way
    assert stats.history[-1]["kl_ref"] > 0 and stats.optimizer_steps == cfg.steps * cfg.ppo_epochs
