"""Where vLLM starts to pay off on this CPU: HF shared-prefix pairs against the vLLM engine.

Runs in the vLLM environment (both engines in one process, the same explainer and inputs):

    .venv-vllm/bin/python bench/bench_engine_threshold.py [--pairs 128] [--repeats 2] [--out FILE.json]

The explainer is SmolLM2 in bf16 with a LoRA adapter perturbed at a fixed seed (a round's adapter,
not the identity), two soft tokens from fixed consumer vectors; prompts are
``bench_generate.make_pairs`` (10-place histories, ~122 prompt tokens). Generation is the demo's
(``profiles.WHOLE``: greedy, stop at the first sentence end after 6 tokens, cap 32). Timed:

- ``startup_s``: ``open_engine(engine="vllm")``, i.e. the adapter merge into a model folder and
  vLLM's start, until it is ready (paid once per explanation pass);
- per repeat, interleaved: HF ``generate_pair_ids`` (torch on all cores) and the vLLM engine's,
  each on the same ``--pairs`` pairs; rows/s (a row is a positive and a negative explanation)
  and new tokens/s;
- the break-even row count ``startup_s / (1 / hf_rows_s - 1 / vllm_rows_s)``: from it on, a pass
  through vLLM (start-up included) finishes first. ``EngineConfig.cpu_min_rows`` is set from it.

Numbers depend on the load of the machine: say what else ran when you quote them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench_generate import make_pairs  # noqa: E402

from recpie_core.explain.engine_config import EngineConfig  # noqa: E402
from recpie_core.explain.engines import open_engine  # noqa: E402
from recpie_core.explain.explainer import Explainer  # noqa: E402
from recpie_core.explain.llm import LLMConfig, converted_model_dir, randomize_lora  # noqa: E402
from recpie_core.profiles import WHOLE  # noqa: E402


def perturbed_explainer(cache: Path) -> Explainer:
    ex = Explainer.create(LLMConfig(device="cpu", dtype="bfloat16"), cache, seed=0)
    randomize_lora(ex.model, scale=0.05, seed=1)
    return ex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=128, help="rows per timed call (2 explanations each)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved HF / vLLM repeats")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for the HF engine")
    parser.add_argument("--cache", default=None, help="models folder (default: a temp dir; converts the GGUF)")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench-models-"))
    converted_model_dir(LLMConfig(), cache)
    explainer = perturbed_explainer(cache)
    pos, neg = make_pairs(args.pairs, history=10)
    vecs = torch.randn(args.pairs, 8, generator=torch.Generator().manual_seed(0))
    n_prompt = sum(len(r) for r in explainer.encode(pos + neg)) / (2 * args.pairs)
    kw = WHOLE.generate_kwargs(greedy=True)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} cpus, {platform.machine()}; "
          f"{args.pairs} pairs, {n_prompt:.0f} prompt tokens (+{explainer.cfg.n_soft_tokens} soft), {kw}")

    work = Path(tempfile.mkdtemp(prefix="bench-vllm-work-"))
    t = time.perf_counter()
    engine = open_engine(EngineConfig(engine="vllm"), explainer, work, n_rows=args.pairs)
    startup = time.perf_counter() - t
    runs: dict[str, list[dict]] = {"hf": [], "vllm": []}
    agree = None
    try:
        engine.generate_pair_ids(pos[:2], neg[:2], vecs[:2], **{**kw, "max_new_tokens": 4})  # warm-up
        explainer.generate_pair_ids(pos[:2], neg[:2], vecs[:2], **{**kw, "max_new_tokens": 4})
        for _ in range(args.repeats):
            for name, gen in (("hf", explainer), ("vllm", engine)):
                t = time.perf_counter()
                p, q, _, _ = gen.generate_pair_ids(pos, neg, vecs, **kw)
                dt = time.perf_counter() - t
                runs[name].append({"seconds": dt, "rows_s": args.pairs / dt,
                                   "new_tokens_s": sum(len(r) for r in p + q) / dt, "ids": p + q})
                print(f"{name}: {dt:.1f} s, {args.pairs / dt:.2f} rows/s, "
                      f"{sum(len(r) for r in p + q) / dt:.0f} new tokens/s", flush=True)
        hf_ids, vl_ids = runs["hf"][-1]["ids"], runs["vllm"][-1]["ids"]
        agree = sum(a == b for a, b in zip(hf_ids, vl_ids)) / len(hf_ids)
    finally:
        engine.close()
    hf_rate = statistics.median(r["rows_s"] for r in runs["hf"])
    vl_rate = statistics.median(r["rows_s"] for r in runs["vllm"])
    break_even = startup / (1 / hf_rate - 1 / vl_rate) if vl_rate > hf_rate else None
    summary = {"pairs": args.pairs, "prompt_tokens": round(n_prompt, 1), "threads": args.threads,
               "startup_s": round(startup, 1), "hf_rows_s": round(hf_rate, 3), "vllm_rows_s": round(vl_rate, 3),
               "speedup": round(vl_rate / hf_rate, 2), "break_even_rows": round(break_even) if break_even else None,
               "identical_explanations": agree,
               "runs": {k: [{kk: round(vv, 3) for kk, vv in r.items() if kk != "ids"} for r in v]
                        for k, v in runs.items()}}
    print(json.dumps(summary, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
