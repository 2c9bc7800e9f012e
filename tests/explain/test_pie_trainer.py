"""The PIE update on the real SmolLM2-135M (slow): steps move the LoRA and soft-prompt
parameters and no base weight (TRL's ``test_train_peft_config`` pattern), log the ratio
statistics, and really learn: a reward for replies that start with "A" raises that
token's log-probability under the policy within a few steps."""

import pytest
import torch

from recpie_core.explain.pie_trainer import PIEConfig, pie_update

pytestmark = pytest.mark.slow


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


def test_pie_steps_train_lora_and_projector_only(explainer):
    prompts = ["Why visit a cafe?", "Why visit a park?"]
    before = snapshot(explainer)
    tracker = ListTracker()
    seen = []

    def reward_fn(idx, pos, neg):
        seen.append((idx.tolist(), pos, neg))
        return torch.ones(len(idx)), torch.full((len(idx),), 0.5)

    stats = pie_update(explainer, prompts, ["Why not?", "Why not here?"], torch.randn(2, 8), reward_fn,
                       PIEConfig(lr=1e-3, steps=2, batch_size=2, max_new_tokens=4), tracker, step_offset=10)
    assert stats.steps == 2 and len(stats.history) == 2
    assert [s for s, _ in tracker.rows] == [10, 11]
    first = tracker.rows[0][1]
    assert first["ratio_mean"] == pytest.approx(1.0) and first["clipped_frac"] == 0.0  # LoRA B starts at zero
    assert {"reward_mean", "reward_pos", "reward_neg", "ratio_min", "ratio_max", "log_ratio", "loss"} <= set(first)
    assert sorted(seen[0][0]) == [0, 1] and len(seen[0][1]) == len(seen[0][2]) == 2
    after = current(explainer)
    trainable = [n for n in after if "lora_" in n or n.startswith("projector.")]
    assert len(trainable) == 30 * 4 * 2 + 2  # A and B of q, k, v, o in 30 layers; projector weight and bias
    for name, p in after.items():
        moved = not torch.equal(p.detach(), before[name])
        assert moved == (name in trainable), name


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
                       PIEConfig(lr=1e-3, baseline="batch_mean", steps=4, batch_size=16, max_new_tokens=4))
    end = probe()
    assert end > start + 0.2, (start, end, stats.history)
    assert stats.history[-1]["reward_mean"] >= stats.history[0]["reward_mean"]
