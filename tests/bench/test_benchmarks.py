"""bench/benchmarks.py --quick end to end, as a user runs it (a subprocess on the real SmolLM2):
both files are written, every section is in the report, and the numbers are sane: rates are
positive, counts match the sizes asked for, ratios are ratios of the rows they name, the demo
section reads the given home's run, and the paper plan is the profile's arithmetic."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench_config import QUICK
from benchmarks_md import SECTIONS
from gen_bench import NOT_INSTALLED
from paper_plan import PAPER_RATINGS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path, finished_home):
    out = tmp_path / "reports"  # one thread, as every test here: on shared cores a second one mostly waits
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "bench/benchmarks.py", "--quick", "--out", str(out), "--work",
                        str(tmp_path / "work"), "--home", str(finished_home), "--threads", "1"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    md = (out / "benchmarks.md").read_text()
    r = json.loads((out / "benchmarks.json").read_text())
    for heading in SECTIONS:
        assert heading in md, heading

    assert r["config"]["name"] == "quick" and r["machine"]["load_before"] and r["machine"]["load_after"]
    assert r["bound"]["dtype"] in ("bfloat16", "float32")  # the LLM's precision here, and its bound
    assert r["bound"]["tokens_per_s"] == pytest.approx(r["bound"]["gflops"] * 1e9 / r["bound"]["flop_per_token"],
                                                       rel=1e-3, abs=0.05)  # stored to 0.1 tokens/s
    assert 1e8 < r["bound"]["params"] < 2e8  # SmolLM2-135M

    rows = {row["engine"]: row for row in r["generation"]["rows"]}
    for name, n in (("hf naive", QUICK.naive_prompts), ("hf batched", 2 * QUICK.gen_pairs),
                    ("hf pairs", 2 * QUICK.gen_pairs)):
        row = rows[name]
        assert row["status"] == "measured" and row["explanations"] == n
        assert 0 < row["generated_tokens"] <= n * QUICK.new_tokens
        assert row["tokens_per_s"] == pytest.approx((row["prompt_tokens"] + row["generated_tokens"]) / row["seconds"],
                                                    rel=1e-2)
        assert 0 < row["share_of_bound"] < 2
        assert row["x_naive"] == pytest.approx(row["tokens_per_s"] / rows["hf naive"]["tokens_per_s"], rel=1e-2)
    vllm = [row for name, row in rows.items() if name.startswith("vllm")]
    assert vllm and all(v["status"] in ("measured", NOT_INSTALLED) or v["status"].startswith("failed") for v in vllm)
    assert r["generation"]["goals"]["best"] in rows

    i = r["ingest"]
    assert i["lines"] == QUICK.ingest_lines and i["accepted"] + i["rejected"] <= QUICK.ingest_lines
    # the seconds are stored to 0.01 s and the ratio to 0.001: it lies within what the rounding allows
    # (zcat of 20k lines takes ~0.01 s, where a relative tolerance means nothing)
    lo = max(i["zcat_s"] - 0.005, 0) / (i["ingest_s"] + 0.005)
    hi = (i["zcat_s"] + 0.005) / (i["ingest_s"] - 0.005)
    assert lo - 0.0005 <= i["x_zcat"] <= hi + 0.0005, (i["x_zcat"], i["zcat_s"], i["ingest_s"])
    pie = r["pie"]
    assert pie["steps"] == QUICK.pie_steps and pie["per_step_s"] == pytest.approx(pie["generation_s"] + pie["rest_s"],
                                                                                    abs=0.02)
    assert 0 < pie["generation_s"] < pie["per_step_s"]
    assert f"share_prefix {pie['share_prefix']}," in md  # the setting that decides the step's cost is named
    rec = r["recommender"]
    assert all(v > 0 for v in rec["samples_per_s"].values())
    assert rec["ratio_recpie_sasrec"] == pytest.approx(rec["samples_per_s"]["recpie"] / rec["samples_per_s"]["sasrec"],
                                                       rel=1e-2)

    assert {s["step"] for s in r["demo"]["steps"]} == {"slow_asset", "fast_asset"}
    assert "| slow_asset | SUCCESS |" in md

    w = r["paper"]["workload"]
    assert w["explanations_per_pass"] == 2 * PAPER_RATINGS and w["prompt_tokens"] > 100  # 20 history places
    hours = {(x["model"], x["where"], x["engine"]): x["hours"] for x in r["paper"]["plan"]["rows"]}
    assert all(h > 0 for (_, where, _), h in hours.items() if where == "H200")
    assert hours[("SmolLM2-135M", "this CPU", "HF (measured rate)")] > 0
