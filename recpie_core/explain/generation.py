"""How the explainer writes an explanation: one config for the explanation pass and the PIE sampler.

The PIE update (``pie_trainer.pie_update``) trains the policy on the texts it samples, and the
explanation pass (``loop.explain_step``) writes the texts the recommender reads. Both read one
``GenerationConfig`` (``LoopConfig.generation`` and ``PIEConfig.generation``; a profile sets it
once and hands the same one to both, and ``Profile`` refuses two different ones), so the policy
is trained on texts of the length and ending the recommender will read. What differs stays
with its user: the explanation pass may decode greedily (``LoopConfig.greedy``), the PIE
update always samples and may trim cut texts for its reward (``PIEConfig.trim_cut``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 24  # explanation length cap, in tokens
    batch_size: int = 64  # prompts per generate call; a positive/negative pair counts once (one shared prefill)
    stop_at_sentence: bool = False  # an explanation also stops at its first sentence end ...
    min_new_tokens: int = 8  # ... once it has this many tokens (EOS is never suppressed)
    temperature: float = 1.0  # sampling temperature (1.0: the policy itself)
    top_p: float = 1.0  # nucleus sampling (1.0: the policy itself)
    max_chars: int = 400  # the screen's cap on an explanation's characters (screen.check_explanation)
    seed: int = 0  # what the LLM samples, and the PIE update's batch order

    def __post_init__(self):
        if min(self.max_new_tokens, self.batch_size, self.min_new_tokens, self.max_chars) < 1:
            raise ValueError("max_new_tokens, batch_size, min_new_tokens and max_chars must be >= 1")
        if self.stop_at_sentence and self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens ({self.min_new_tokens}) > max_new_tokens ({self.max_new_tokens}): "
                             "the sentence stop would never fire")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]")

    def generate_kwargs(self, greedy: bool = False) -> dict:
        """Keyword arguments of ``Explainer.generate_ids`` / ``generate_pair_ids`` (which then
        return whether each row ended on its own)."""
        return dict(max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, seed=self.seed, greedy=greedy,
                    temperature=self.temperature, top_p=self.top_p, stop_at_sentence=self.stop_at_sentence,
                    min_new_tokens=self.min_new_tokens, return_ended=True)
