"""``LoopConfig``: Algorithm 1's rounds, variant, seeds and generation.

Apart from ``loop.py`` so that profiles, the code location and a data step
read it without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from recpie_core.explain.engine_config import EngineConfig
from recpie_core.explain.generation import GenerationConfig

VARIANTS = ("recpie", "explanation_only")
# Which recommender scores round 1's PIE samples: Algorithm 1's recommender_r0, or explanation_only
# (recommender_r0 trained once on the base LLM's explanations). recommender_r0's explanation
# projections never saw a text, so its reward follows which pair was drawn, hardly what the text
# says (bench/reports/reward_signal.md). explanation_only was trained on texts, though it reads
# them hardly better: in one run on the demo and one on the eval world, PIE scored by it (with the
# group baseline) wrote explanations naming more liked aspects, 0.46 and 0.49 against 0.29 and
# 0.32, at the same validation RMSE (bench/reports/pie_rules.md); the eval profile's own run of
# that rule gave 0.28 (bench/reports/eval.md).
ROUND1_REWARDS = ("recommender_r0", "explanation_only")
# How a recommender that reads explanations starts (rec_step), from the recommender it follows (round
# k-1, or round 0 for the variants and the ladder): "warm" trains all of it from there; "scratch" trains
# a fresh one; "probe" trains only the explanation projections over the frozen rest (a linear probe of
# the text); "probe_finetune" then trains all of it at a tenth of the rate (LP-FT, Kumar et al. 2022).
# With several, each is fitted and the lowest mean validation RMSE over seeds is kept. Warm alone, the
# projections start from random weights under a model already at its validation optimum, and on the
# eval world every text-reading fit stopped at epoch 0-1 (bench/reports/rec_starts.md).
REC_STARTS = ("warm", "scratch", "probe", "probe_finetune")


@dataclass(frozen=True)
class LoopConfig:
    rounds: int = 2  # R, alternating rounds after the explanation-free start
    variant: str = "recpie"  # "recpie" | "explanation_only" (no PIE updates)
    pie_pairs: int = 64  # training rows sampled per round for the PIE update
    generation: GenerationConfig = GenerationConfig()  # how explanations are written; the PIE sampler's too
    greedy: bool = True  # the recommender reads the policy's most likely explanation
    seeds: tuple[int, ...] = (0, 1, 2)  # recommender seeds (the LLM side runs once)
    seed: int = 0  # which training rows each round's PIE update draws; the fresh adapters' init
    chunk_rows: int = 1024  # rows per part of the explanation pass: each finished part is kept, a killed pass resumes
    engine: EngineConfig = EngineConfig()  # which engine writes the explanation pass (hf | vllm | auto), vLLM's setup
    round1_reward: str = "recommender_r0"  # ROUND1_REWARDS; later rounds read round k-1's recommender
    rec_starts: tuple[str, ...] = ("warm",)  # REC_STARTS tried per text-reading recommender, best on validation

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.round1_reward not in ROUND1_REWARDS:
            raise ValueError(f"round1_reward must be one of {ROUND1_REWARDS}, got {self.round1_reward!r}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.pie_pairs < 1:
            raise ValueError(f"pie_pairs must be >= 1, got {self.pie_pairs}")
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1 (rows per part of the explanation pass), got {self.chunk_rows}")
        if not self.seeds:
            raise ValueError("give at least one recommender seed")
        unknown = [s for s in self.rec_starts if s not in REC_STARTS]
        if not self.rec_starts or unknown or len(set(self.rec_starts)) != len(self.rec_starts):
            raise ValueError(f"rec_starts must name one or more of {REC_STARTS}, each once, got {self.rec_starts!r}")
