"""Explainer throughput: model load, batched generation with a soft prompt, one PIE step.

Prompts are the paper's positive/negative prompts over a 10-place history with categories
and a described candidate (about the demo's prompt length). Prints

- load: GGUF conversion into a fresh folder (first run) and the load from that cache;
- generation: generated tokens/s and explanations/s per (batch size, max_new_tokens);
- PIE: seconds per step (generate pos+neg for ``--pie-batch`` pairs, policy and reference
  log-probs, backward, AdamW), and its split into generation and the rest.

    .venv/bin/python bench/bench_generate.py [--threads 1] [--dtype bfloat16] [--history 10]
        [--batches 32,64] [--new-tokens 16,24] [--pie-batch 16] [--cache DIR]

Record the numbers in bench/reports/generate.md with the date, the machine and the command.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from recpie_core.explain.explainer import Explainer  # noqa: E402
from recpie_core.explain.generation import GenerationConfig  # noqa: E402
from recpie_core.explain.llm import LLMConfig, converted_model_dir  # noqa: E402
from recpie_core.explain.pie_trainer import PIEConfig, pie_update  # noqa: E402
from recpie_core.explain.prompts import PlaceText, PromptConfig, explanation_prompt  # noqa: E402

CATEGORIES = ["cafe", "park", "thai restaurant", "gym", "bakery", "bookstore", "pizza", "museum"]


def make_pairs(n: int, seed: int = 0, history: int = 10,
               cfg: PromptConfig | None = None) -> tuple[list[str], list[str]]:
    """``n`` (positive, negative) prompt pairs, each over its own random history and candidate.

    ``cfg`` is the prompt's config (a profile's ``prompt``); by default one that names all
    ``history`` places (``max_history=history``)."""
    cfg = cfg or PromptConfig(max_history=history)
    g = torch.Generator().manual_seed(seed)
    pos, neg = [], []
    for _ in range(n):
        picks = torch.randint(0, 200, (history + 1,), generator=g).tolist()
        hist = [PlaceText(f"Place {p}", CATEGORIES[p % len(CATEGORIES)]) for p in picks[:history]]
        cand = PlaceText(f"Place {picks[-1]}", CATEGORIES[picks[-1] % len(CATEGORIES)],
                         "friendly staff, quiet seating, good coffee and free parking")
        pos.append(explanation_prompt(hist, cand, "pos", cfg))
        neg.append(explanation_prompt(hist, cand, "neg", cfg))
    return pos, neg


def time_pie_steps(explainer: Explainer, pos: list[str], neg: list[str], vecs: torch.Tensor,
                   cfg: PIEConfig) -> dict:
    """``cfg.steps`` PIE steps over the pairs, rewards drawn at random (the recommender's cost is
    not the explainer's): seconds per step, the part of it spent sampling, and the rest (reference
    and policy log-probs, backward, optimizer step). The sampling is timed by wrapping the
    explainer's ``generate_pair_ids`` for the call; the wrapper is removed afterwards."""
    rewards = lambda idx, p, q: (torch.rand(len(idx)), torch.rand(len(idx)))  # noqa: E731
    gen_time: list[float] = []
    orig = explainer.generate_pair_ids

    def timed(*a, **kw):
        t = time.perf_counter()
        out = orig(*a, **kw)
        gen_time.append(time.perf_counter() - t)
        return out

    explainer.generate_pair_ids = timed
    try:
        stats = pie_update(explainer, pos, neg, vecs, rewards, cfg)
    finally:
        del explainer.generate_pair_ids  # the class's method again
    per_step, gen = stats.seconds / stats.steps, sum(gen_time) / stats.steps
    tokens = [h["tokens_mean"] for h in stats.history]
    return {"steps": stats.steps, "pairs": cfg.batch_size, "per_step_s": round(per_step, 2),
            "generation_s": round(gen, 2), "rest_s": round(per_step - gen, 2),
            "tokens_mean": round(sum(tokens) / len(tokens), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared cores)")
    parser.add_argument("--batches", default="32,64")
    parser.add_argument("--new-tokens", default="16,24")
    parser.add_argument("--dtype", default="auto", help="auto (fp32 on CPU) | bfloat16 | float32")
    parser.add_argument("--history", type=int, default=10, help="history places named in each prompt")
    parser.add_argument("--n", type=int, default=128, help="explanations per generation measurement")
    parser.add_argument("--pie-batch", type=int, default=16, help="pairs per PIE step (0: skip)")
    parser.add_argument("--cache", default=None, help="models folder (default: a fresh temp dir, measures conversion)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus, "
          f"{platform.processor() or platform.machine()}")

    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench-models-"))
    t0 = time.perf_counter()
    converted_model_dir(LLMConfig(), cache)
    t1 = time.perf_counter()
    explainer = Explainer.create(LLMConfig(device="cpu", dtype=args.dtype), cache, seed=0)
    t2 = time.perf_counter()
    print(f"load: convert/check {t1 - t0:.1f}s, create from cache (load + LoRA + projector) {t2 - t1:.1f}s; "
          f"dtype {explainer.model.dtype}")

    pos, neg = make_pairs(args.n // 2, history=args.history)
    prompts = pos + neg
    lengths = [len(r) for r in explainer.encode(prompts)]
    print(f"prompt: {sum(lengths) / len(lengths):.0f} tokens on average (+{explainer.cfg.n_soft_tokens} soft)")
    vecs = torch.randn(args.n // 2, 8, generator=torch.Generator().manual_seed(0))
    explainer.generate_ids(prompts[:4], vecs[:4], max_new_tokens=4, batch_size=4)  # warm-up

    print("| call | batch (explanations) | max_new_tokens | tokens/s | explanations/s | s per 1000 explanations |")
    print("|---|---|---|---|---|---|")
    for bs in (int(b) for b in args.batches.split(",")):
        for new in (int(t) for t in args.new_tokens.split(",")):
            for call in ("generate_ids", "generate_pair_ids"):
                t = time.perf_counter()
                if call == "generate_ids":
                    ids = explainer.generate_ids(prompts, torch.cat([vecs, vecs]), max_new_tokens=new, batch_size=bs)
                else:
                    p, q = explainer.generate_pair_ids(pos, neg, vecs, max_new_tokens=new, batch_size=bs // 2)
                    ids = p + q
                dt = time.perf_counter() - t
                n_tok = sum(len(r) for r in ids)
                print(f"| {call} | {bs} | {new} | {n_tok / dt:.0f} | {len(ids) / dt:.1f} "
                      f"| {1000 * dt / len(ids):.0f} |",
                      flush=True)

    if args.pie_batch:
        n = args.pie_batch
        pos, neg = make_pairs(n, seed=1, history=args.history)
        cfg = PIEConfig(lr=1e-4, steps=2, batch_size=n, micro_batch=n,
                        generation=GenerationConfig(max_new_tokens=24, batch_size=n))  # n pairs per call
        r = time_pie_steps(explainer, pos, neg, vecs[:n], cfg)
        print(f"PIE step ({n} pairs = {2 * n} explanations of <= 24 tokens): {r['per_step_s']:.1f}s "
              f"(generation {r['generation_s']:.1f}s, log-probs + backward + step {r['rest_s']:.1f}s)")


if __name__ == "__main__":
    main()
