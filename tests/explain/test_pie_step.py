"""Round 1's PIE step on the real SmolLM2 (slow): the frozen recommender's consumer embeddings make
the soft prompts and a second recommender, when given (``LoopConfig.round1_reward``), scores the
samples. The same samples scored by another recommender get another reward; scored by the same
one, the same reward as without a second recommender."""

import pytest
import torch

from recpie_core.explain.explainer import Explainer
from recpie_core.explain.generation import GenerationConfig
from recpie_core.explain.llm import LLMConfig
from recpie_core.explain.pie_config import PIEConfig
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.explain.prompts import PromptConfig
from recpie_core.explain.text_encoder import SentenceEncoder
from recpie_core.loop import pie_step
from recpie_core.rec.registry import build_model


@pytest.mark.slow
def test_the_scorer_gives_the_reward_and_the_recommender_the_soft_prompts(llm_cache, cafe_world):
    split, places, data = cafe_world
    prompts = build_prompts(split, places, PromptConfig(max_history=2))
    n = (data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories)
    torch.manual_seed(0)
    frozen = build_model("recpie", *n)
    torch.manual_seed(1)
    other = build_model("recpie", *n)
    encoder = SentenceEncoder()
    cfg = PIEConfig(objective="ppo", baseline="batch_mean", steps=1, batch_size=4, micro_batch=4, readout=False,
                    generation=GenerationConfig(max_new_tokens=4))

    def first_step(scorer, recommender=frozen):
        explainer = Explainer.create(LLMConfig(device="cpu", dtype="float32"), llm_cache, seed=0)
        stats = pie_step(explainer, recommender, data, prompts, encoder, cfg, n_pairs=4, seed=3, scorer=scorer)
        return stats.history[0]["reward_mean"]

    alone = first_step(None)
    assert first_step(frozen) == alone
    other_scores = first_step(other)
    assert abs(other_scores - alone) > 1e-4
    # the same scorer, other soft prompts: other samples (had the scorer made them, the same ones)
    assert first_step(other, recommender=other) != other_scores
