"""Named profiles: one set of settings per scale. Defaults live here, once.

``demo``  the embedded default: synthetic Google Local data, SmolLM2-135M and MiniLM on
          the CPU; the whole pipeline (2 rounds, baselines, report) in minutes on 2 cores.
``eval``  the demo's kind of world, large enough (about 1,000 test rows) for paired intervals
          to separate a 3% difference; one round; about an hour on 2 cores.
``smoke`` the smallest whole run, for tests.
``paper`` the paper's settings: the full Mountain View data (filter mode ``users``),
          Llama 3.1 8B with LoRA, DistilBERT-sized sentence embeddings, lr 0.01, batch 256,
          10 epochs, 10 seeds. Needs a GPU (CUDA, bf16); point ``--source`` at the real files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from recpie_core.data.split import FilterConfig, SplitConfig
from recpie_core.data.synthetic import SyntheticConfig
from recpie_core.explain.direct_config import DirectConfig
from recpie_core.explain.engine_config import EngineConfig
from recpie_core.explain.generation import GenerationConfig
from recpie_core.explain.llm_config import LLMConfig
from recpie_core.explain.pie_config import PIEConfig
from recpie_core.explain.prompts import PromptConfig
from recpie_core.loop_config import REC_STARTS, LoopConfig
from recpie_core.rec.fit_config import FitConfig

BASELINES = ("global_mean", "user_mean", "place_mean", "mf", "ncf", "sasrec", "bert4rec", "din",
             "recpie_no_expl")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # used when no --source is given
    filter: FilterConfig = field(default_factory=FilterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    reject_threshold: float = 0.01  # the rejected-reviews check fails above this share
    fit: FitConfig = field(default_factory=FitConfig)  # every rating model, RecPIE's recommender included
    baselines: tuple[str, ...] = BASELINES  # registry names (rec/registry.py)
    loop: LoopConfig = field(default_factory=LoopConfig)  # rounds, seeds, generation
    llm: LLMConfig = field(default_factory=LLMConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    pie: PIEConfig = field(default_factory=PIEConfig)
    direct: DirectConfig = field(default_factory=DirectConfig)
    encoder: str = ""  # sentence-transformers path; "" = packaged all-MiniLM-L6-v2; "llm" = Ablation 3
    report_bootstrap: int = 2000  # paired bootstrap resamples of the test rows in the report

    def __post_init__(self):
        if self.loop.generation != self.pie.generation:
            raise ValueError(f"profile {self.name!r}: loop.generation and pie.generation differ; the PIE update "
                             "must sample explanations as the explanation pass writes them (give both one "
                             "GenerationConfig)")

    def with_generation(self, generation: GenerationConfig) -> Profile:
        """This profile with ``generation`` for both the explanation pass and the PIE sampler."""
        return replace(self, loop=replace(self.loop, generation=generation),
                       pie=replace(self.pie, generation=generation))

    @property
    def rounds(self) -> int:
        return self.loop.rounds

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.loop.seeds


# The PIE update the demo and eval profiles use: the PPO-style step (pie.py) with GRPO's group
# baseline (4 samples of each pair, minus the pair's mean, over its std), round 1's reward read
# from explanation_only (LoopConfig.round1_reward). Chosen on validation rows of the eval world
# (bench/reports/pie_rules.md): tied with the batch-mean rule on RMSE (0.28630 vs 0.28665 unit),
# and in one run on each world it raised the positive explanations' coverage of the liked aspects
# (0.29 -> 0.46 demo, 0.32 -> 0.49 eval); the eval profile's own run of it did not (0.28,
# bench/reports/eval.md: one draw of 8 steps decides it). On the controlled test of
# tests/explain/test_pie_trainer.py (a reward for one word, real SmolLM2) ppo at lr 2e-3 with 2
# passes per batch learns: the word's share went 0.16 -> 0.44 in 4 steps with this baseline, and
# past +0.3 in 8 (1.0 in 4 with the batch mean, which needs no group to hold a hit); the paper's
# Eq. 7 (no baseline, reward always positive) did not learn at all. The KL term (0.05)
# holds the drift from the base LLM.
# Samples stop at their first sentence end and the recommender scores them trimmed, as the
# explanation pass does (WHOLE, shared by both). The cap: on 160 eval validation rows, the base
# LLM's first sentence hit 32 tokens in 61% of texts, 48 in 37%, 64 in 30%
# (bench/reports/token_cap.md): 48 is where most end on their own, for about a fifth more tokens.
WHOLE = GenerationConfig(max_new_tokens=48, batch_size=64, stop_at_sentence=True, min_new_tokens=6)
# A pair's 8 texts (4 samples x 2 polarities) are scored with one prefill of their shared prompt start
# (share_prefix): the same step over about a third of the tokens, 67 -> 26 s a step on the demo's prompts.
PIE_CHOSEN = PIEConfig(objective="ppo", baseline="group", group_size=4, advantage_norm=True, lr=2e-3, ppo_epochs=2,
                       kl_coef=0.05, batch_size=16, micro_batch=16, generation=WHOLE, trim_cut=True,
                       share_prefix=True, checkpoint_layers=False)
ROUND1_REWARD = "explanation_only"  # goes with PIE_CHOSEN: chosen together (bench/reports/pie_rules.md)
# rec_starts=REC_STARTS: a recommender that reads explanations tries every start from the one before it
# and keeps the best on validation (rec/starts.py). Warm alone read nothing on the eval world: every
# text-reading fit stopped at epoch 0-1 (bench/reports/rec_starts.md: what each start gives each rung).
SMOKE_GEN = GenerationConfig(max_new_tokens=6, batch_size=64)
PAPER_GEN = GenerationConfig(max_new_tokens=64, batch_size=256, stop_at_sentence=True, min_new_tokens=8)
# The paper's explanation pass on a GPU: vLLM when installed (HF otherwise), compiled (CUDA graphs),
# its KV cache sized by the GPU share it may take next to the HF explainer (16 GB in bf16).
PAPER_ENGINE = EngineConfig(engine="auto", enforce_eager=False, kv_cache_gb=0, gpu_memory_utilization=0.6)

PROFILES: dict[str, Profile] = {
    "demo": Profile(
        name="demo",
        description="synthetic Google Local data, SmolLM2-135M and MiniLM on the CPU; minutes on 2 cores",
        # ~70 users, ~450 ratings after the filter: the LLM explains every row twice per round
        # at ~6 explanations/s on 2 CPU cores (bench/reports/generate.md)
        synthetic=SyntheticConfig(n_users=80, n_places=100, ratings_per_user_mean=9.0),
        split=SplitConfig(hist_len=10),
        fit=FitConfig(epochs=30, patience=4, progress=False),
        loop=LoopConfig(rounds=2, pie_pairs=64, generation=WHOLE, seeds=(0, 1, 2), round1_reward=ROUND1_REWARD,
                        rec_starts=REC_STARTS),
        pie=replace(PIE_CHOSEN, steps=4),
        # the history shows what each place is like and how the consumer rated it (README, "Profiles")
        prompt=PromptConfig(max_history=5, description_chars=160, history_excerpt_chars=100, history_ratings=True),
    ),
    "eval": Profile(
        name="eval",
        description="a larger world of the demo's kind (about 1,000 test rows), where the goals are judged; "
                    "about an hour on 2 cores",
        # ~450 users, ~4,100 ratings after the filter, ~1,050 test rows: a paired difference of
        # 0.03 stars is then about two standard errors (the demo's 134 rows cannot carry it)
        synthetic=SyntheticConfig(n_users=750, n_places=400, ratings_per_user_mean=9.0),
        split=SplitConfig(hist_len=10),
        fit=FitConfig(epochs=30, patience=4, progress=False),
        loop=LoopConfig(rounds=1, pie_pairs=256, generation=WHOLE, seeds=(0, 1, 2), round1_reward=ROUND1_REWARD,
                        rec_starts=REC_STARTS),
        pie=replace(PIE_CHOSEN, steps=8),
        prompt=PromptConfig(max_history=5, description_chars=160, history_excerpt_chars=100, history_ratings=True),
    ),
    "smoke": Profile(
        name="smoke",
        description="the smallest whole run (tests): 1 round, 1 seed, a few dozen ratings, short explanations",
        synthetic=SyntheticConfig(n_users=30, n_places=40, ratings_per_user_mean=8.0),
        split=SplitConfig(hist_len=5),
        fit=FitConfig(epochs=3, patience=2, progress=False),
        baselines=("global_mean", "mf", "sasrec", "recpie_no_expl"),
        loop=LoopConfig(rounds=1, pie_pairs=8, generation=SMOKE_GEN, seeds=(0,), rec_starts=REC_STARTS),
        pie=PIEConfig(steps=1, batch_size=4, micro_batch=4, generation=SMOKE_GEN),
        prompt=PromptConfig(max_history=3, description_chars=60),
        direct=DirectConfig(max_new_tokens=3),
    ),
    "paper": Profile(
        name="paper",
        description="the paper's settings: full Mountain View data, Llama 3.1 8B, 10 seeds; needs a GPU",
        synthetic=SyntheticConfig(n_users=50_000, n_places=140_000),
        filter=FilterConfig(mode="users", min_ratings=5),
        split=SplitConfig(hist_len=50),
        fit=FitConfig(lr=0.01, batch_size=256, epochs=10, patience=3, device="cuda"),
        loop=LoopConfig(rounds=3, pie_pairs=4096, generation=PAPER_GEN, greedy=False, seeds=tuple(range(10)),
                        engine=PAPER_ENGINE, rec_starts=REC_STARTS),
        llm=LLMConfig(model="meta-llama/Llama-3.1-8B-Instruct", device="cuda", dtype="bfloat16"),
        pie=PIEConfig(steps=200, batch_size=64, micro_batch=16, generation=PAPER_GEN),
        prompt=PromptConfig(max_history=20),
        direct=DirectConfig(batch_size=128),
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return PROFILES[name]
