"""A killed explanation step resumes where it stopped (real SmolLM2 and MiniLM, slow): the step
(``steps.generate_explanations``) runs in a subprocess that is SIGKILLed once its first part is
on disk; the rerun generates only the rows of the missing parts (counted at the explainer) and
writes the table an uninterrupted run writes, then removes the parts.

Run as a script (``python tests/explain/test_explain_resume.py ARGS_JSON``), this file is the
process that is killed: the step on one torch thread, as the tests run it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recpie_core import steps, store
from recpie_core.explain.generation import GenerationConfig
from recpie_core.profiles import get_profile
from recpie_core.rec.toy import make_toy_split
from recpie_core.store import Caches

GEN = GenerationConfig(max_new_tokens=4, batch_size=4)


def tiny_profile():
    """The smoke profile on fp32 CPU with 4-token explanations, in parts of 3 rows, sampled (not
    greedy: the resumed table can only match if each part's seed ignores what was done before)."""
    smoke = get_profile("smoke").with_generation(GEN)
    return replace(smoke, loop=replace(smoke.loop, chunk_rows=3, greedy=False),
                   llm=replace(smoke.llm, device="cpu", dtype="float32"))


def explain(args: dict, out: str, encoder_cache: str) -> steps.Written:
    cache = Caches(llm=Path(args["llm"]), text_encoder=Path(encoder_cache))
    return steps.generate_explanations(Path(args["split"]), Path(args["places"]), Path(args["recommender"]), None,
                                       Path(out), Path(out).with_suffix(".sample.parquet"), tiny_profile(), cache)


@pytest.fixture
def step_inputs(tmp_path, llm_cache):
    """20 rating rows (12 train, 4 valid, 4 test: 8 parts of at most 3) and round 0's recommender."""
    split, places = make_toy_split(n_users=4, n_places=6, ratings_per_user=5, seed=0)
    places = places.with_columns(pl.format("Place {}", pl.col("place_id")).alias("name"),
                                 pl.lit("A quiet cafe with good coffee.").alias("description"))
    split.write_parquet(tmp_path / "split.parquet")
    places.write_parquet(tmp_path / "places.parquet")
    cache = Caches(llm=llm_cache, text_encoder=tmp_path / "encoder0.safetensors")
    rec = steps.train_recommender_r0(tmp_path / "split.parquet", tmp_path / "places.parquet",
                                     tmp_path / "recommender_r0", tiny_profile(), cache).path
    return {"split": str(tmp_path / "split.parquet"), "places": str(tmp_path / "places.parquet"),
            "recommender": str(rec), "llm": str(llm_cache)}


def run_until_first_part(args: dict, out: Path, log: Path) -> dict[str, int]:
    """The step in a subprocess, SIGKILLed as soon as a part is written; the parts it left, with their rows."""
    parts = store.explanation_parts(out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, __file__, json.dumps({**args, "out": str(out)})],
                                env=env, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 900
        while proc.poll() is None and time.monotonic() < deadline:
            if any(parts.rglob("*.parquet")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        else:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert not out.exists()
    return {p.name.removesuffix(".parquet"): pl.read_parquet(p).height for p in sorted(parts.rglob("*.parquet"))}


@pytest.mark.slow
def test_a_killed_step_makes_only_the_missing_parts(step_inputs, tmp_path, monkeypatch):
    from recpie_core.explain.explainer import Explainer

    out = tmp_path / "explanations_r1.parquet"
    left = run_until_first_part(step_inputs, out, tmp_path / "killed.log")
    assert 1 <= len(left) < 8, left
    assert set(left) <= {f"{s}-{i:05d}" for s, n in (("train", 4), ("valid", 2), ("test", 2)) for i in range(n)}

    generated = []
    real = Explainer.generate_pair_ids

    def counted(self, pos_prompts, *args, **kwargs):
        generated.append(len(pos_prompts))
        return real(self, pos_prompts, *args, **kwargs)

    monkeypatch.setattr(Explainer, "generate_pair_ids", counted)
    resumed = explain(step_inputs, str(out), str(tmp_path / "encoder1.safetensors"))
    assert resumed.summary["parts_resumed"] == len(left)
    assert sum(generated) == 20 - sum(left.values())  # only the missing parts' rows were generated
    assert not store.explanation_parts(out).exists()  # the parts go once the table is written

    generated.clear()
    whole = explain(step_inputs, str(tmp_path / "whole.parquet"), str(tmp_path / "encoder2.safetensors"))
    assert whole.summary["parts_resumed"] == 0 and sum(generated) == 20
    table = pl.read_parquet(out)
    assert_frame_equal(table, pl.read_parquet(whole.path))
    assert table["split"].to_list() == ["train"] * 12 + ["valid"] * 4 + ["test"] * 4
    assert (table["pos_text"].str.len_chars() > 0).all() and (table["neg_text"].str.len_chars() > 0).all()


if __name__ == "__main__":  # the process the test kills
    import torch

    torch.set_num_threads(1)
    given = json.loads(sys.argv[1])
    explain(given, given["out"], str(Path(given["out"]).with_name("encoder_killed.safetensors")))
