"""Every benchmark of the project in one run: writes benchmarks.md and benchmarks.json.

    .venv/bin/python bench/benchmarks.py [--quick] [--home FINISHED_HOME] [--out DIR] [--work DIR]

Sections, in the order they run: the machine and a bf16/fp32 matmul probe (the tokens/s bound
of the explainer's model); generation on the project's prompt shapes for each engine (HF naive,
batched and pairs; vLLM through ``engines.open_engine`` in ``.venv-vllm`` when it exists), each
row's share of the bound and its speed-up over naive; ingestion against zcat; one PIE step;
the recommender against SASRec; the demo end to end by asset (from ``--home``'s last run); the
``paper`` profile's run plan. The probe runs again after generation and the bound is the better
of the two, so load that came and went during the run lowers the rows, not the bound. The LLM
runs in the precision the project picks here (``llm.resolve_dtype("auto")``: bf16 where the CPU
has AMX or AVX-512 BF16, else fp32, as bf16 without them is emulated at ~1% of fp32's speed),
and the bound is that precision's matmul rate.

The report goes to ``--out`` (default ``<home>/reports`` of the default home: ``RECPIE_HOME``,
else ``.recpie/`` in the project, as ``recpie run`` resolves it). ``--work`` holds the cached
inputs (the converted LLM, the ingestion files) between runs. ``--quick``: tiny sizes, about two
minutes on two idle cores, every section present (``tests/bench/test_benchmarks.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from bench_config import FULL, QUICK, BenchConfig  # noqa: E402
from bench_generate import make_pairs  # noqa: E402
from benchmarks_md import render  # noqa: E402
from demo_timings import HomeReadError, last_run_steps  # noqa: E402
from gen_bench import goals, hf_rows, prompt_tokens, vllm_rows, with_ratios  # noqa: E402
from machine_probe import best_rate, load_average, machine_info, matmul_probe  # noqa: E402
from paper_plan import plan, workload  # noqa: E402
from sections import ingest_vs_zcat, paper_prompt_tokens, pie_step, recommender  # noqa: E402

from recpie_core.explain.explainer import Explainer  # noqa: E402
from recpie_core.explain.llm import converted_model_dir, resolve_dtype  # noqa: E402
from recpie_core.explain.llm_config import LLMConfig  # noqa: E402

DEFAULT_WORK = Path(tempfile.gettempdir()) / "recpie-bench"


def _default_reports() -> Path:
    from recpie_assets.resources import default_home  # the CLI's own resolution of the home

    return Path(default_home()) / "reports"


def base_params(explainer: Explainer) -> int:
    """Parameters of the base LLM (LoRA and the soft-prompt projector excluded; tied weights once)."""
    return sum(p.numel() for n, p in explainer.model.get_base_model().named_parameters() if "lora_" not in n)


def generation(explainer: Explainer, cfg: BenchConfig, cache: Path, work: Path) -> dict:
    pos, neg = make_pairs(cfg.gen_pairs, history=cfg.history)
    vecs = torch.randn(cfg.gen_pairs, 8, generator=torch.Generator().manual_seed(0))
    rows = hf_rows(explainer, pos, neg, vecs, cfg.naive_prompts, cfg.batch, cfg.new_tokens)
    rows += vllm_rows(explainer, pos, neg, vecs, cfg.batch, cfg.new_tokens, cache, work, cfg.threads,
                      cfg.vllm_timeout, cfg.history)
    return {"pairs": cfg.gen_pairs, "history": cfg.history, "new_tokens": cfg.new_tokens,
            "naive_prompts": cfg.naive_prompts, "rows": rows,
            "prompt_tokens_mean": prompt_tokens(explainer, pos + neg, True) / (2 * cfg.gen_pairs)}


def run(cfg: BenchConfig, home: Path | None, work: Path, command: str) -> dict:
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    info = machine_info()
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *a):
        t = time.perf_counter()
        print(f"benchmarks: {name} ...", flush=True)
        out = fn(*a)
        seconds[name] = round(time.perf_counter() - t, 1)
        return out

    dtype = "bfloat16" if resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16 else "float32"
    dtypes = ("bfloat16", "float32") if dtype == "bfloat16" else ("float32",)  # emulated bf16: not worth a minute
    probes = [timed("matmul probe", matmul_probe, cfg.probe_tokens, cfg.probe_seconds, dtypes)]
    cache = work / "models"
    converted_model_dir(LLMConfig(), cache)  # convert the packaged GGUF once; the vLLM worker reads it too
    explainer = Explainer.create(LLMConfig(device="cpu", dtype=dtype), cache, seed=0)
    gen = timed("generation", generation, explainer, cfg, cache, work)
    probes.append(timed("matmul probe again", matmul_probe, cfg.probe_tokens, cfg.probe_seconds, dtypes))
    params = base_params(explainer)
    bf16, fp32 = best_rate(probes, "bfloat16"), best_rate(probes, "float32")
    peak = bf16 if dtype == "bfloat16" else fp32
    bound = {"dtype": dtype, "gflops": peak, "bf16_gflops": bf16, "fp32_gflops": fp32, "params": params,
             "flop_per_token": 2 * params, "tokens_per_s": round(peak * 1e9 / (2 * params), 1),
             "bf16_tokens_per_s": bf16 and round(bf16 * 1e9 / (2 * params), 1),
             "fp32_tokens_per_s": round(fp32 * 1e9 / (2 * params), 1)}
    gen["rows"] = with_ratios(gen["rows"], bound["tokens_per_s"])
    gen["goals"] = goals(gen["rows"])

    paper_tokens = paper_prompt_tokens(explainer)
    pie = timed("PIE step", pie_step, explainer, cfg)
    del explainer
    ingest = timed("ingestion vs zcat", ingest_vs_zcat, work / "ingest", cfg.ingest_lines)
    rec = timed("recommender vs SASRec", recommender, cfg)
    demo = timed("demo timings", last_run_steps, home) if home else {
        "status": "Not measured: pass `--home <a home that recpie run finished in>`."}

    measured = {r["engine"]: r for r in gen["rows"] if r["status"] == "measured"}
    best_hf = max(r["tokens_per_s"] for k, r in measured.items() if k.startswith("hf ") and k != "hf naive")
    vllm = measured.get("vllm pairs", {}).get("tokens_per_s")
    hf_pairs = measured["hf pairs"]["tokens_per_s"]
    work_plan = workload(paper_tokens)
    paper = {"workload": work_plan, "plan": plan(work_plan, params, {"hf": best_hf, "vllm": vllm},
                                                 vllm / hf_pairs if vllm else None)}
    info["load_after"] = load_average()
    return {"command": command, "config": cfg.to_dict(), "machine": info, "probes": probes, "bound": bound,
            "generation": gen, "ingest": ingest, "pie": pie, "recommender": rec, "demo": demo, "paper": paper,
            "section_seconds": seconds, "seconds": round(time.perf_counter() - t_start, 1)}


def write(result: dict, out: Path) -> tuple[Path, Path]:
    """benchmarks.json and benchmarks.md in ``out``, each written to a temp file and renamed."""
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "benchmarks.json", out / "benchmarks.md")
    for path, text in zip(paths, (json.dumps(result, indent=2) + "\n", render(result))):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (about two minutes): every section, rough numbers")
    ap.add_argument("--home", type=Path, help="a finished home whose last run's step timings to report (only read)")
    ap.add_argument("--out", type=Path, help="report folder (default: <RECPIE_HOME or .recpie>/reports)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"cached inputs (default {DEFAULT_WORK})")
    ap.add_argument("--threads", type=int, help="torch threads for the probe and generation (default: all cores)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    try:
        cfg = replace(cfg, threads=args.threads or os.cpu_count() or 1)
    except ValueError as e:
        sys.exit(f"benchmarks: {e}")
    if args.home is not None and not (args.home / "dagster" / "history" / "runs.db").is_file():
        sys.exit(f"benchmarks: --home {args.home} has no Dagster run history (dagster/history/runs.db): "
                 "give a folder that `recpie run` finished in")
    out = args.out or _default_reports()
    given = argv if argv is not None else sys.argv[1:]
    command = shlex.join([Path(sys.executable).name, "bench/benchmarks.py", *given])
    try:
        result = run(cfg, args.home, args.work, command)
    except HomeReadError as e:
        sys.exit(f"benchmarks: {e}")
    for path in write(result, out):
        print(f"benchmarks: wrote {path}")
    g = result["generation"]["goals"]
    print(f"benchmarks: best engine {g['best']}: {g['share_of_bound']:.1%} of the {result['bound']['dtype']} bound "
          f"({'met' if g['share_met'] else 'missed'}), {g['x_naive']:.1f}x naive "
          f"({'met' if g['x_naive_met'] else 'missed'}); {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
