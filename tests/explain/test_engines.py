"""Engine choice and the merged model folder, fast, on a tiny random Llama (no vLLM needed).

- ``choose_engine``: "hf", "vllm" (one clear line when vLLM is missing), "auto" by device and
  row count against ``cpu_min_rows``; ``EngineConfig`` refuses bad settings.
- ``open_engine`` in an environment without vLLM: "auto" gives the HF engine, whose ids are the
  explainer's own; "vllm" raises the install hint.
- ``merge.merged_model_folder``: the saved folder's logits equal the explainer's with its adapter
  on; the folder is reused for the same adapter and a new one is written for a changed adapter.

The vLLM engine itself is tested in its own environment (tests/vllm, ``make test-vllm``).
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from recpie_core.explain.engine_config import EngineConfig
from recpie_core.explain.engines import HFEngine, choose_engine, open_engine, vllm_installed
from recpie_core.explain.explainer import Explainer
from recpie_core.explain.generation import GenerationConfig
from recpie_core.explain.llm import LLMConfig, add_lora, prepare_tokenizer, randomize_lora
from recpie_core.explain.merge import MERGED_MARK, adapter_digest, merged_model_folder
from recpie_core.explain.soft_prompt import SoftPromptProjector

no_vllm = pytest.mark.skipif(vllm_installed(), reason="vllm is installed here: the missing-vllm paths cannot run")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, tiny_tokenizer):
    """A character-level tokenizer and a 2-layer random Llama, saved to a folder (as a real base is)."""
    tok = tiny_tokenizer
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=512, eos_token_id=tok.eos_token_id,
                                         bos_token_id=tok.bos_token_id, pad_token_id=tok.eos_token_id))
    folder = tmp_path_factory.mktemp("tiny-base")
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def tiny_explainer(folder, seed=1) -> Explainer:
    """The tiny base from its folder, LoRA adapters with non-zero B (a real change), 2 soft tokens."""
    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    prepare_tokenizer(tok, base)
    cfg = LLMConfig(model=str(folder), device="cpu", dtype="float32", system_prompt="Be brief.")
    model = add_lora(base, cfg)
    randomize_lora(model, scale=0.3, seed=seed)
    torch.manual_seed(seed)
    return Explainer(model, tok, SoftPromptProjector(8, 32, 2), cfg)


# --- the choice ---------------------------------------------------------------------------------

def test_hf_and_vllm_are_taken_as_asked():
    assert choose_engine(EngineConfig(engine="hf"), "cuda", 10 ** 6, installed=True)[0] == "hf"
    assert choose_engine(EngineConfig(engine="vllm"), "cpu", 1, installed=True)[0] == "vllm"


def test_asking_for_vllm_without_it_says_how_to_install_in_one_line():
    with pytest.raises(RuntimeError, match=r"not installed: pip install -e \.\[vllm\]") as e:
        choose_engine(EngineConfig(engine="vllm"), "cpu", 10, installed=False)
    assert "\n" not in str(e.value)


def test_auto_takes_vllm_on_cuda_and_on_a_cpu_only_from_the_threshold():
    cfg = EngineConfig(engine="auto", cpu_min_rows=1000)
    assert choose_engine(cfg, "cuda", 1, installed=True)[0] == "vllm"
    assert choose_engine(cfg, "cpu", 999, installed=True)[0] == "hf"
    assert choose_engine(cfg, "cpu", 1000, installed=True)[0] == "vllm"
    assert choose_engine(cfg, "mps", 10 ** 6, installed=True)[0] == "hf"
    for device in ("cpu", "cuda"):  # never asked for: its absence is no error
        choice, why = choose_engine(cfg, device, 10 ** 6, installed=False)
        assert choice == "hf" and "not installed" in why
    with pytest.raises(ValueError, match="n_rows"):
        choose_engine(cfg, "cpu", -1, installed=True)


@pytest.mark.parametrize("bad, match", [(dict(engine="sglang"), "engine must be one of"),
                                        (dict(cpu_min_rows=-1), "cpu_min_rows"),
                                        (dict(block_size=24), "multiple of 16"),
                                        (dict(max_model_len=16), "max_model_len"),
                                        (dict(kv_cache_gb=-1.0), "kv_cache_gb"),
                                        (dict(gpu_memory_utilization=0.0), "gpu_memory_utilization"),
                                        (dict(cpu_threads_bind=" "), "cpu_threads_bind")])
def test_engine_config_refuses_bad_settings(bad, match):
    with pytest.raises(ValueError, match=match):
        EngineConfig(**bad)


# --- open_engine without vLLM -------------------------------------------------------------------

@no_vllm
def test_open_engine_auto_without_vllm_is_the_explainers_own_generation(tiny_base, tmp_path):
    explainer = tiny_explainer(tiny_base)
    prompts, negs = ["Why a cafe?", "Why a park nearby?"], ["Why not a cafe?", "Why not a park nearby?"]
    vecs = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    kw = GenerationConfig(max_new_tokens=5, batch_size=2).generate_kwargs(greedy=True)
    with open_engine(EngineConfig(engine="auto", cpu_min_rows=0), explainer, tmp_path, n_rows=10 ** 6) as engine:
        assert isinstance(engine, HFEngine) and engine.name == "hf"
        assert engine.generate_pair_ids(prompts, negs, vecs, **kw) == explainer.generate_pair_ids(prompts, negs, vecs,
                                                                                                   **kw)
        ids, ended = engine.generate_ids(prompts, vecs, **kw)
        assert (ids, ended) == explainer.generate_ids(prompts, vecs, **kw)
        assert engine.decode(ids) == explainer.decode(ids)
    assert not list(tmp_path.iterdir())  # the HF engine writes nothing


def test_each_finished_batch_is_reported_with_its_rows(tiny_base):
    """What moves the explanation pass's bar within a part (explain_parts.build_in_parts)."""
    explainer = tiny_explainer(tiny_base)
    prompts = ["Why a cafe?", "Why a park nearby?", "Why a museum?"]
    vecs = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    kw = GenerationConfig(max_new_tokens=3, batch_size=2).generate_kwargs(greedy=True)
    for engine in (explainer, HFEngine(explainer)):
        single, pairs = [], []
        ids = engine.generate_ids(prompts, vecs, **kw, on_batch=single.append)
        assert single == [2, 1] and ids == explainer.generate_ids(prompts, vecs, **kw)
        engine.generate_pair_ids(prompts, prompts[::-1], vecs, **kw, on_batch=pairs.append)
        assert pairs == [2, 1]  # pairs, not sequences


@no_vllm
def test_open_engine_vllm_without_vllm_raises_the_install_hint(tiny_base, tmp_path):
    with pytest.raises(RuntimeError, match=r"pip install -e \.\[vllm\]"):
        open_engine(EngineConfig(engine="vllm"), tiny_explainer(tiny_base), tmp_path, n_rows=10)


# --- the merged folder --------------------------------------------------------------------------

def test_merged_folder_computes_what_the_explainer_computes_and_is_reused(tiny_base, tmp_path):
    explainer = tiny_explainer(tiny_base)
    folder = merged_model_folder(explainer, tmp_path)
    assert (folder / MERGED_MARK).is_file() and list(folder.glob("*.safetensors"))
    assert folder.name == f"merged-{adapter_digest(explainer)}"
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ids = torch.tensor([explainer.encode(["Why a cafe?"])[0]])
    with torch.no_grad():
        want = explainer.model(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    assert (want - base).abs().max() > 1e-2  # the adapter changes the output: the test can fail
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert PreTrainedTokenizerFast.from_pretrained(folder).encode("Why?") == explainer.tokenizer.encode("Why?")
    mtime = (folder / MERGED_MARK).stat().st_mtime_ns
    assert merged_model_folder(explainer, tmp_path) == folder and (folder / MERGED_MARK).stat().st_mtime_ns == mtime
    other = merged_model_folder(tiny_explainer(tiny_base, seed=2), tmp_path)  # another round's adapter
    assert other != folder and (other / MERGED_MARK).is_file()
