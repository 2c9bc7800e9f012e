"""The parts of bench/benchmarks.py that decide its verdicts, checked against hand-worked numbers:
the goals and ratios of the generation rows, the paper plan's arithmetic, the step timings read
from a real Dagster home (which must not change), the sizes it refuses, and the probe."""

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from bench_config import FULL, QUICK, BenchConfig
from demo_timings import HomeReadError, last_run_steps
from gen_bench import NOT_INSTALLED, goals, vllm_rows, with_ratios
from machine_probe import best_rate, machine_info, matmul_probe
from paper_plan import PAPER_RATINGS, hours, plan, workload

from recpie_core.profiles import get_profile


def _row(engine: str, tokens_per_s: float) -> dict:
    return {"engine": engine, "how": "", "status": "measured", "tokens_per_s": tokens_per_s}


def test_ratios_and_goals_met_and_missed():
    rows = [_row("hf naive", 100.0), _row("hf pairs", 1500.0), {"engine": "vllm", "status": NOT_INSTALLED}]
    out = with_ratios(rows, bound_tokens_per_s=2000.0)
    assert [r.get("x_naive") for r in out] == [1.0, 15.0, None]
    assert out[1]["share_of_bound"] == pytest.approx(0.75)
    g = goals(out)
    assert (g["best"], g["share_met"], g["x_naive_met"]) == ("hf pairs", True, True)
    g = goals(with_ratios(rows, bound_tokens_per_s=4000.0))  # 1500 / 4000 = 37.5% < 50%
    assert (g["share_met"], g["x_naive_met"], g["share_of_bound"]) == (False, True, pytest.approx(0.375))
    g = goals(with_ratios([_row("hf naive", 200.0), _row("hf batched", 1500.0)], 2000.0))  # 7.5x < 10x
    assert (g["share_met"], g["x_naive_met"]) == (True, False)


def test_vllm_row_says_how_to_install_when_the_env_is_missing(monkeypatch, tmp_path):
    import gen_bench

    monkeypatch.setattr(gen_bench, "VLLM_PYTHON", tmp_path / "no-such-venv" / "bin" / "python")
    rows = vllm_rows(None, ["p"], ["n"], None, 2, 4, tmp_path, tmp_path, 1, 10, 5)
    assert rows == [{"engine": "vllm", "how": "open_engine(EngineConfig(engine='vllm'))",
                     "status": "not installed: make test-vllm"}]


def test_paper_workload_by_hand():
    p = get_profile("paper")
    assert (p.rounds, p.loop.generation.max_new_tokens, p.pie.ppo_epochs, p.pie.checkpoint_layers) == (3, 64, 1, True)
    w = workload(prompt_tokens=100.0, ratings=1000)
    assert w["explanations_per_pass"] == 2000 and w["passes"] == 4 and w["explanations_per_run"] == 8000
    assert w["tokens"]["explanation passes"] == 4 * 2000 * 164
    # PIE: 200 steps x 64 pairs x 2 explanations x 3 rounds, each 164 tokens x (2 + 4 x 1) forward equivalents
    assert w["pie_forward_equiv"] == 6
    assert w["tokens"]["PIE updates"] == 200 * 64 * 2 * 3 * 164 * 6
    assert w["tokens"]["llm_direct baseline"] == 200 * (100 + p.direct.max_new_tokens)
    assert w["tokens_total"] == sum(w["tokens"].values())
    assert workload(120.0)["explanations_per_pass"] == 2 * PAPER_RATINGS == 15_093_824


def test_hours_carry_a_rate_by_flop():
    assert hours(3_600_000, params=1.0, rate_tokens_per_s=1000.0, rate_params=1.0) == pytest.approx(1.0)
    assert hours(3_600_000, params=2.0, rate_tokens_per_s=1000.0, rate_params=1.0) == pytest.approx(2.0)
    w = workload(prompt_tokens=150.0)
    p = plan(w, smol_params=1.35e8, cpu_rates={"hf": 2000.0, "vllm": None}, cpu_vllm_over_hf=None)
    by = {(r["model"], r["where"], r["engine"]): r["hours"] for r in p["rows"]}
    llama = {(w_, e): h for (m, w_, e), h in by.items() if m == "Llama 3.1 8B"}
    # the 100%-of-peak bound is the fewest hours any H200 engine can take; HF's worst case is 24x vLLM's
    assert min(h for (w_, _), h in llama.items() if w_ == "H200") == llama[("H200", "bound (100% of bf16 peak)")]
    assert llama[("H200", "HF, worst case (estimate)")] == pytest.approx(24 * llama[("H200", "vLLM (estimate)")],
                                                                         rel=1e-3)
    assert llama[("H200", "HF, best case (estimate)")] == pytest.approx(2.5 * llama[("H200", "vLLM (estimate)")],
                                                                        rel=1e-3)  # DESIGN.md's ratio, said so
    assert by[("SmolLM2-135M", "this CPU", "vLLM (measured rate)")] is None  # not measured: no number made up
    assert llama[("this CPU", "HF (measured rate)")] == pytest.approx(
        w["tokens_total"] * 8.03e9 / (2000.0 * 1.35e8) / 3600, rel=1e-3)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_last_run_steps_of_a_real_dagster_home_leaves_it_unchanged(finished_home):
    before = _digest(finished_home)
    d = last_run_steps(finished_home)
    assert _digest(finished_home) == before
    assert d["status"] == "SUCCESS" and d["profile"] == "demo"
    steps = {s["step"]: s for s in d["steps"]}
    assert set(steps) == {"slow_asset", "fast_asset"}
    assert steps["slow_asset"]["assets"] == ["slow_asset"] and steps["slow_asset"]["status"] == "SUCCESS"
    assert steps["slow_asset"]["seconds"] >= 1.5 and steps["fast_asset"]["seconds"] < steps["slow_asset"]["seconds"]
    assert d["steps"][0]["step"] == "slow_asset"  # slowest first
    assert d["wall_s"] >= d["steps_s"] - 0.1 > 0


def test_last_run_steps_refuses_a_folder_without_history(tmp_path):
    with pytest.raises(HomeReadError, match="no Dagster run history") as e:
        last_run_steps(tmp_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("bad, why", [
    (dict(batch=15), "even batch"),
    (dict(rec_epochs=1), "first epoch is warm-up"),
    (dict(naive_prompts=0), "needs prompts"),
    (dict(name="huge"), "'full' or 'quick'"),
])
def test_bench_config_refuses_sizes_that_measure_nothing(bad, why):
    with pytest.raises(ValueError, match=why):
        replace(FULL, **bad)


def test_quick_is_smaller_than_full_everywhere():
    for f in ("gen_pairs", "naive_prompts", "ingest_lines", "pie_pairs", "rec_users"):
        assert getattr(QUICK, f) < getattr(FULL, f), f
    assert BenchConfig() == FULL


def test_matmul_probe_and_machine_info():
    probe = matmul_probe(tokens=64, seconds=0.05)
    assert set(probe) == {"bfloat16", "float32"}
    assert all(v > 0 for shapes in probe.values() for v in shapes.values())
    assert best_rate([probe], "float32") == max(probe["float32"].values())
    info = machine_info()
    assert info["cores"] >= 1 and "avx512_bf16" in info["flags"] and "amx_tile" in info["flags"]
