"""The parts machinery of the explanation pass (``recpie_core.explain_parts``) with a cheap real
stand-in for the LLM (a seeded random table per chunk): a pass SIGKILLed after its second part
resumes making only the missing parts and gives the uninterrupted pass's table; the fingerprint
that keys the parts changes with each input the pass reads. The same on the real SmolLM2 through
``steps.generate_explanations``: tests/explain/test_explain_resume.py (slow).

Run as a script (``python tests/test_explain_parts.py PARTS_ROOT KILL_AT``), this file is the
killed process: it runs the stand-in pass and SIGKILLs itself when it reaches chunk KILL_AT.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from recpie_core.explain_parts import Chunk, PartFolder, build_in_parts, fingerprint, plan_chunks

SIZES = {"train": 7, "valid": 0, "test": 4}  # chunks of 2: train 4, test 2
CHUNK_ROWS = 2
KEY = "fp0"


def stand_in(chunk: Chunk, advance=None) -> pl.DataFrame:
    """What an LLM pass makes of a chunk, cheaply: texts and embeddings seeded by the chunk alone."""
    rng = np.random.default_rng([*chunk.split.encode(), chunk.index])
    rows = range(chunk.start, chunk.stop)
    return pl.DataFrame({"split": [chunk.split] * chunk.rows, "row": list(rows),
                         "pos_text": [f"{chunk.split} {i} {rng.integers(1000)}" for i in rows]}).with_columns(
        pl.Series("pos_emb", rng.normal(size=(chunk.rows, 3)).astype(np.float32)))


def run_pass(root: Path, make=stand_in) -> pl.DataFrame:
    return build_in_parts(plan_chunks(SIZES, CHUNK_ROWS), make, PartFolder(root, KEY))


def test_chunks_cover_each_split_in_order():
    chunks = plan_chunks(SIZES, CHUNK_ROWS)
    assert [c.name for c in chunks] == ["train-00000", "train-00001", "train-00002", "train-00003",
                                        "test-00000", "test-00001"]
    assert [(c.start, c.stop) for c in chunks if c.split == "train"] == [(0, 2), (2, 4), (4, 6), (6, 7)]
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        plan_chunks(SIZES, 0)


def test_a_killed_pass_resumes_with_only_the_missing_parts(tmp_path):
    root = tmp_path / "table.parts"
    killed = subprocess.run([sys.executable, __file__, str(root), "2"], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert PartFolder(root, KEY).finished() == ["train-00000", "train-00001"]  # written before the kill

    made = []
    resumed = run_pass(root, lambda c, _: made.append(c.name) or stand_in(c))
    assert made == ["train-00002", "train-00003", "test-00000", "test-00001"]
    uninterrupted = run_pass(tmp_path / "other.parts")
    assert_frame_equal(resumed, uninterrupted)
    assert resumed["row"].to_list() == [*range(7), *range(4)]
    in_memory = build_in_parts(plan_chunks(SIZES, CHUNK_ROWS), stand_in)  # no folder: same table, nothing kept
    assert_frame_equal(in_memory, uninterrupted)

    again = []
    run_pass(root, lambda c, _: again.append(c) or stand_in(c))  # all parts there: nothing is made
    assert again == []
    PartFolder(root, KEY).discard()
    assert not root.exists()


def test_parts_of_other_inputs_are_removed_not_reused(tmp_path):
    run_pass(tmp_path / "p")
    made = []
    folder = PartFolder(tmp_path / "p", "fp1")  # another fingerprint
    assert not (tmp_path / "p" / KEY).exists() and folder.finished() == []
    build_in_parts(plan_chunks(SIZES, CHUNK_ROWS), lambda c, _: made.append(c) or stand_in(c), folder)
    assert len(made) == 6


def test_a_part_of_the_wrong_size_is_refused(tmp_path):
    with pytest.raises(ValueError, match="part train-00000 made 1 rows for a chunk of 2"):
        build_in_parts(plan_chunks(SIZES, CHUNK_ROWS), lambda c, _: stand_in(c).head(1), PartFolder(tmp_path, KEY))
    with pytest.raises(ValueError, match="every split is empty"):
        build_in_parts([], stand_in)


def test_one_bar_counts_resumed_rows_as_done(tmp_path, capsys):
    root = tmp_path / "p"
    folder = PartFolder(root, KEY)
    for chunk in plan_chunks(SIZES, CHUNK_ROWS)[:2]:
        folder.save(chunk, stand_in(chunk))
    build_in_parts(plan_chunks(SIZES, CHUNK_ROWS), stand_in, PartFolder(root, KEY), progress=True)
    err = capsys.readouterr().err  # the bar's first state (2 parts resumed) and its last
    assert "explanations:  36%" in err and "4/11" in err and "11/11" in err


def test_the_bar_moves_within_a_part_as_its_rows_are_made(capsys):
    """One part can be minutes of generation: the bar follows each batch, not only each part."""
    def make(chunk, advance):
        for _ in range(chunk.rows):
            time.sleep(0.15)  # past the bar's refresh interval (0.1 s)
            advance(1)
        advance(5)  # a batch counted twice moves the bar no further than the part's end
        return stand_in(chunk)

    build_in_parts(plan_chunks({"train": 3, "test": 1}, 3), make, progress=True)
    err = capsys.readouterr().err
    assert "1/4" in err and "2/4" in err and "4/4" in err and "8/4" not in err


def test_the_fingerprint_changes_with_each_input(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    (tmp_path / "fit.json").write_text("{}")
    rows = pl.DataFrame({"user_id": ["u1", "u2"], "pos_prompt": ["a", "b"]})
    settings = {"generation": {"max_new_tokens": 24}, "chunk_rows": 2}
    paths = [tmp_path / "adapter", tmp_path / "fit.json"]
    base = fingerprint(paths, settings, [rows])
    assert fingerprint(paths, dict(settings), [rows.clone()]) == base

    changed = {"settings": fingerprint(paths, {**settings, "chunk_rows": 3}, [rows]),
               "rows": fingerprint(paths, settings, [rows.with_columns(pl.Series("pos_prompt", ["a", "c"]))]),
               "row order": fingerprint(paths, settings, [rows.reverse()]),
               "column name": fingerprint(paths, settings, [rows.rename({"pos_prompt": "neg_prompt"})])}
    (tmp_path / "adapter" / "soft_prompt.safetensors").write_bytes(b"soft")
    changed["a file added"] = fingerprint(paths, settings, [rows])
    (tmp_path / "adapter" / "adapter_model.safetensors").write_bytes(b"weightz")
    changed["a file's bytes"] = fingerprint(paths, settings, [rows])
    assert len(set(changed.values()) | {base}) == len(changed) + 1, changed
    with pytest.raises(FileNotFoundError, match="cannot fingerprint"):
        fingerprint([tmp_path / "missing"], settings, [rows])


def test_the_fingerprint_is_the_same_in_another_process(tmp_path):
    """A resume runs in a new process: the row hashes must not depend on the process."""
    rows = pl.DataFrame({"user_id": ["u1", "u2"], "hist": [["p1"], []], "pos_emb": [[0.5], [1.5]]})
    rows.write_parquet(tmp_path / "rows.parquet")
    code = ("import polars as pl; from recpie_core.explain_parts import fingerprint; "
            f"print(fingerprint([], {{'k': 1}}, [pl.read_parquet({str(tmp_path / 'rows.parquet')!r})]))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert other.stdout.strip() == fingerprint([], {"k": 1}, [rows])


def test_explanations_fingerprint_reads_every_input_of_the_step(tmp_path):
    from recpie_core.explain.prompt_table import build_prompts
    from recpie_core.profiles import get_profile
    from recpie_core.rec.toy import make_toy_split
    from recpie_core.steps import explanations_fingerprint

    split, places = make_toy_split(n_users=3, n_places=5, ratings_per_user=4, seed=0)
    places = places.with_columns(pl.format("Place {}", pl.col("place_id")).alias("name"),
                                 pl.lit("A quiet cafe.").alias("description"))
    profile = get_profile("smoke")
    rec, adapter = tmp_path / "recommender_r0", tmp_path / "lora_adapter_r1"
    for folder, name in ((rec / "seed0", "model.safetensors"), (adapter, "adapter_model.safetensors")):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"0")

    def fp(split=split, profile=profile, adapter=adapter, device="cpu", dtype="torch.float32"):
        return explanations_fingerprint(split, build_prompts(split, places, profile.prompt), rec, adapter,
                                        profile, device, dtype)

    base = fp()
    assert fp() == base
    changed = {
        "generation": fp(profile=profile.with_generation(replace(profile.loop.generation, max_new_tokens=5))),
        "greedy": fp(profile=replace(profile, loop=replace(profile.loop, greedy=False))),
        "chunk_rows": fp(profile=replace(profile, loop=replace(profile.loop, chunk_rows=7))),
        "prompt": fp(profile=replace(profile, prompt=replace(profile.prompt, max_history=2))),
        "llm": fp(profile=replace(profile, llm=replace(profile.llm, n_soft_tokens=1))),
        "encoder": fp(profile=replace(profile, encoder="llm")),
        "a rating": fp(split=split.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(1)
                                                .otherwise(pl.col("rating")).alias("rating"))),
        "fresh adapters": fp(adapter=None),
        "device": fp(device="cuda:0"),
        "dtype": fp(dtype="torch.bfloat16"),
    }
    (adapter / "adapter_model.safetensors").write_bytes(b"1")
    changed["adapter"] = fp()
    (rec / "seed0" / "model.safetensors").write_bytes(b"1")
    changed["recommender"] = fp()
    assert len(set(changed.values()) | {base}) == len(changed) + 1, changed


if __name__ == "__main__":  # the process a test kills: the stand-in pass, SIGKILLed at chunk KILL_AT
    parts_root, kill_at = Path(sys.argv[1]), int(sys.argv[2])

    def make(chunk: Chunk, advance) -> pl.DataFrame:
        if chunk.split == "train" and chunk.index == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return stand_in(chunk)

    run_pass(parts_root, make)
