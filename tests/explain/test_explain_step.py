"""The explanation pass on the real SmolLM2 for a single-explanation variant: every row gets a
positive text and embedding, the negative side is null text and a zero vector (slow)."""

import pytest
import torch

from recpie_core.explain.generation import GenerationConfig
from recpie_core.explain.prompt_table import build_prompts
from recpie_core.explain.prompts import PromptConfig
from recpie_core.explain.text_encoder import SentenceEncoder
from recpie_core.loop import explain_step
from recpie_core.loop_config import LoopConfig
from recpie_core.rec.registry import build_model


@pytest.mark.slow
def test_a_positive_only_pass_writes_null_negatives(explainer, cafe_world):
    split, places, data = cafe_world
    prompts = build_prompts(split, places, PromptConfig(variant="positive_only", max_history=2))
    torch.manual_seed(0)
    recommender = build_model("recpie", data.vocab.n_users, data.vocab.n_places, data.vocab.n_categories)
    cfg = LoopConfig(generation=GenerationConfig(max_new_tokens=4, batch_size=16))
    table = explain_step(explainer, recommender, data, prompts, SentenceEncoder(), cfg)
    assert table.height == split.height
    assert table["neg_text"].null_count() == table.height and table["neg_cut"].null_count() == table.height
    assert table["pos_text"].null_count() == 0 and (table["pos_text"].str.len_chars() > 0).all()
    neg = torch.tensor(table["neg_emb"].to_list())
    assert neg.shape == (table.height, 384) and not neg.any()
