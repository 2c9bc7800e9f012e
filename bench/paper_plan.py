"""The ``paper`` profile's run plan: what one run asks of the LLM, and what that costs where.

Settings come from ``recpie_core.profiles`` (rounds, explanation length cap, PIE steps and
batch, the model); the data size and the hardware and engine rates are constants below, each
with its source. Measured inputs (this run): the paper-shaped prompt's token count and the
rates of this CPU.

Arithmetic (every number in the report is one of these lines):

- explanations per pass = 2 x ratings (a positive and a negative one per rating, every split
  row); passes per run = rounds (``explanations_r{k}``) + 1 (``explanation_only``, the base LLM);
- tokens per explanation = prompt tokens + generated tokens, generated taken at the cap
  ``max_new_tokens`` (an upper bound: the sentence stop ends most earlier);
- PIE per round = steps x batch pairs x 2 explanations, each costing 2 + 4 x ``ppo_epochs``
  forward-pass equivalents (sampling 1, reference 1; per pass over the batch forward + backward
  3, and 1 more for ``checkpoint_layers``' recompute);
- the direct baseline = the test rows (``split.test_frac``) once, prompt + ``direct.max_new_tokens``;
- FLOP = 2 x params per token processed (attention over these ~300-token contexts adds ~1% for
  Llama 3.1 8B and is left out, as is the sentence encoder: ~0.2%);
- hours = FLOP / (an engine's tokens/s x 2 x the params of the model it was measured on): a
  rate measured on one model is carried to another at the same share of the hardware's peak.
"""

from __future__ import annotations

from recpie_core.profiles import get_profile

PAPER_RATINGS = 7_546_912  # ratings of the paper's Mountain View data (arXiv 2502.16759, DESIGN.md)
LLAMA_31_8B_PARAMS = 8.03e9  # https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct ("8.03B params")
H200_BF16_TFLOPS = 989.0  # dense BF16 tensor core peak; NVIDIA lists 1,979 with sparsity
H200_URL = "https://www.nvidia.com/en-us/data-center/h200/"

# vLLM on a GPU: not measured here (no GPU this session); a published run, an estimate.
VLLM_GPU = {
    "tokens_per_s": 14_029,  # total token throughput (input + generated), the report's own measure
    "what": "vllm bench serve, meta-llama/Llama-3.1-8B-Instruct, 1,000 ShareGPT requests (230 input and 203 "
            "generated tokens on average), in vLLM PR #18566's description; the GPU is not named there (an H100 "
            "is likely): carried to the H200 unchanged (same bf16 peak, more memory bandwidth)",
    "url": "https://github.com/vllm-project/vllm/pull/18566",
}
# Hugging Face generate on a GPU against vLLM: the vLLM launch post's comparison.
HF_GPU_SLOWDOWN = {
    "x": 24.0,
    "what": "vLLM's launch post: up to 24x the throughput of Hugging Face Transformers (LLaMA-7B/13B, A10G/A100); "
            "our HF path batches and shares each pair's prefill, so the measured CPU ratio is the other end",
    "url": "https://blog.vllm.ai/2023/06/20/vllm.html",
}
PAPER_REPORTED = "about 20 hours on 4 H200s, 80 GPU-hours, for the whole method (issue 12's reading of the paper)"
PAPER_GPU_HOURS = 80.0  # the same, as a number


def workload(prompt_tokens: float, ratings: int = PAPER_RATINGS) -> dict:
    """Explanations and tokens of one run of the ``paper`` profile on ``ratings`` ratings."""
    p = get_profile("paper")
    gen = p.loop.generation
    per_expl = prompt_tokens + gen.max_new_tokens
    passes = p.rounds + 1
    expl_per_pass = 2 * ratings
    pie_expl = p.pie.steps * p.pie.batch_size * 2 * p.rounds
    pie_equiv = 2 + (4 if p.pie.checkpoint_layers else 3) * p.pie.ppo_epochs  # forward-pass equivalents
    test_rows = round(ratings * p.split.test_frac)
    direct_tokens = test_rows * (prompt_tokens + p.direct.max_new_tokens)
    tokens = {"explanation passes": passes * expl_per_pass * per_expl,
              "PIE updates": pie_expl * per_expl * pie_equiv,
              "llm_direct baseline": direct_tokens}
    return {"ratings": ratings, "model": p.llm.model, "dtype": p.llm.dtype, "rounds": p.rounds, "passes": passes,
            "explanations_per_pass": expl_per_pass, "explanations_per_run": passes * expl_per_pass,
            "prompt_tokens": round(prompt_tokens, 1), "new_tokens_cap": gen.max_new_tokens,
            "tokens_per_explanation": round(per_expl, 1), "pie_steps": p.pie.steps, "pie_batch": p.pie.batch_size,
            "pie_explanations": pie_expl, "pie_forward_equiv": pie_equiv, "test_rows": test_rows,
            "tokens": {k: round(v) for k, v in tokens.items()}, "tokens_total": round(sum(tokens.values()))}


def hours(tokens: float, params: float, rate_tokens_per_s: float, rate_params: float) -> float:
    """Hours to process ``tokens`` on a model of ``params`` at a rate measured on ``rate_params``."""
    return tokens * 2 * params / (rate_tokens_per_s * 2 * rate_params) / 3600


def plan(work: dict, smol_params: float, cpu_rates: dict[str, float | None], cpu_vllm_over_hf: float | None) -> dict:
    """Hours of one run per (model, where, engine). ``cpu_rates``: this run's tokens/s on the CPU
    (SmolLM2) for "hf" (the best HF row) and "vllm" (None when not measured); ``cpu_vllm_over_hf``:
    the ratio of the two (None: not measured, DESIGN.md's 2.5x is used and said so)."""
    models = {"Llama 3.1 8B": LLAMA_31_8B_PARAMS, "SmolLM2-135M": smol_params}
    ratio, ratio_src = (cpu_vllm_over_hf, "measured in this run") if cpu_vllm_over_hf else \
        (2.5, "DESIGN.md's 4,150 vLLM vs 1,660 HF pairs tokens/s, not this run")
    peak_tokens = H200_BF16_TFLOPS * 1e12 / (2 * LLAMA_31_8B_PARAMS)  # Llama 3.1 8B tokens/s at 100% of peak
    sources = [  # (where, engine, tokens/s, params of the model the rate is for, basis)
        ("H200", "bound (100% of bf16 peak)", peak_tokens, LLAMA_31_8B_PARAMS,
         f"{H200_BF16_TFLOPS:.0f} TFLOP/s dense bf16 ({H200_URL})"),
        ("H200", "vLLM (estimate)", VLLM_GPU["tokens_per_s"], LLAMA_31_8B_PARAMS,
         f"{VLLM_GPU['tokens_per_s']:,} tokens/s published ({VLLM_GPU['url']})"),
        ("H200", "HF, best case (estimate)", VLLM_GPU["tokens_per_s"] / ratio, LLAMA_31_8B_PARAMS,
         f"vLLM estimate / {ratio:.2f} (vLLM over HF pairs on this CPU, {ratio_src})"),
        ("H200", "HF, worst case (estimate)", VLLM_GPU["tokens_per_s"] / HF_GPU_SLOWDOWN["x"], LLAMA_31_8B_PARAMS,
         f"vLLM estimate / {HF_GPU_SLOWDOWN['x']:.0f} ({HF_GPU_SLOWDOWN['url']})"),
        ("this CPU", "HF (measured rate)", cpu_rates.get("hf"), smol_params,
         "best HF row of this run, carried by FLOP"),
        ("this CPU", "vLLM (measured rate)", cpu_rates.get("vllm"), smol_params,
         "vLLM pairs row of this run, carried by FLOP" if cpu_rates.get("vllm") else "not measured in this run"),
    ]
    rows = []
    for name, params in models.items():
        for where, engine, rate, rate_params, basis in sources:
            h = hours(work["tokens_total"], params, rate, rate_params) if rate else None
            rows.append({"model": name, "where": where, "engine": engine, "basis": basis,
                         "hours": None if h is None else round(h, 2)})
    return {"rows": rows, "vllm_gpu": VLLM_GPU, "hf_gpu_slowdown": HF_GPU_SLOWDOWN, "paper_reported": PAPER_REPORTED,
            "paper_gpu_hours": PAPER_GPU_HOURS, "llama_h200_bound_hours": next(
                r["hours"] for r in rows if r["model"] == "Llama 3.1 8B" and r["engine"].startswith("bound")),
            "h200_bf16_tflops": H200_BF16_TFLOPS, "llama_params": LLAMA_31_8B_PARAMS, "smollm2_params": smol_params}
