"""``DirectConfig``: how the LLM rates a pair directly (the llm_direct baseline).

Apart from ``direct.py`` so that profiles, the code location and a data step
read it without importing torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DirectConfig:
    max_new_tokens: int = 6  # room for "4", "Rating: 4", "I'd say 4"
    batch_size: int = 64  # prompts per generate call
    greedy: bool = True  # the model's most likely answer, not a sample
    seed: int = 0  # used only when greedy is False
    system_prompt: str | None = "You rate places for consumers from 1 to 5."  # replaces the explainer's
    reply_prefix: str = "Rating:"  # starts the reply (SmolLM2 rarely answers with a digit without it)

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")
