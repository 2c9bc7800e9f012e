"""Shared fixtures for the explainer tests.

The slow tests use the real SmolLM2-135M (the packaged GGUF), converted once per session
into a temporary models folder; each test then builds its own ``Explainer`` from that cache
in about a second. Torch runs on one thread during these tests (restored after each): on
2 shared cores a second OpenMP thread mostly waits for a descheduled peer (measured here:
a 16-token batch-8 generate took 17 s on 2 threads under load, 3 s on 1).
"""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def tiny_tokenizer():
    """Character-level tokenizer with the two ChatML special tokens, built offline (one per module)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = ["<unk>", "\n"] + [chr(i) for i in range(32, 127)]
    tk = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<|im_start|>",
                                  eos_token="<|im_end|>", additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tok.chat_template = CHAT_TEMPLATE
    return tok


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every explainer test on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="session")
def llm_cache(tmp_path_factory):
    """A models folder holding SmolLM2 converted from the packaged GGUF (once per session)."""
    from recpie_core.explain.llm import LLMConfig, converted_model_dir

    folder = tmp_path_factory.mktemp("models")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    converted_model_dir(LLMConfig(), folder)
    torch.set_num_threads(before)
    return folder


@pytest.fixture
def explainer(llm_cache):
    """A fresh SmolLM2 explainer (LoRA + 2 soft tokens) on the CPU, from the session cache."""
    from recpie_core.explain.explainer import Explainer
    from recpie_core.explain.llm import LLMConfig

    return Explainer.create(LLMConfig(device="cpu", dtype="float32"), llm_cache, seed=0)


@pytest.fixture
def cafe_world():
    """A toy split of 4 consumers and 6 places, every place a named quiet cafe: (split, places,
    RatingData with histories of 3)."""
    import polars as pl

    from recpie_core.data.batches import load_rating_data
    from recpie_core.rec.toy import make_toy_split

    split, places = make_toy_split(n_users=4, n_places=6, ratings_per_user=5, seed=0)
    places = places.with_columns(pl.format("Place {}", pl.col("place_id")).alias("name"),
                                 pl.lit("A quiet cafe with good coffee.").alias("description"))
    return split, places, load_rating_data(split, places, hist_len=3)
