"""benchmarks.md from the result dict that bench/benchmarks.py also writes as benchmarks.json.

Pure formatting: every number here is in the JSON; nothing is measured or computed that the
JSON does not hold, except ratios of two numbers it does.
"""

from __future__ import annotations

SECTIONS = ("## Machine", "## Matmul probe and the bound", "## Generation", "## Ingestion vs zcat",
            "## One PIE step", "## Recommender vs SASRec", "## The demo end to end, by asset",
            "## Paper scale: the `paper` profile's run plan")
DTYPE_SHORT = {"bfloat16": "bf16", "float32": "fp32"}


def _n(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def _machine(r: dict) -> list[str]:
    m = r["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["flags"].items())
    sees = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["torch_sees"].items())
    return [SECTIONS[0], "",
            f"- CPU: {m['cpu']}, {m['cores']} cores, {_n(m['memory_gib'], 1)} GiB",
            f"- flags (/proc/cpuinfo): {flags}", f"- torch sees: {sees}",
            f"- Python {m['python']}, torch {m['torch']}, transformers {m['transformers']}",
            f"- load average (1, 5, 15 min) before: {m['load_before']}, after: {m['load_after']}",
            f"- torch threads: {r['config']['threads']} for the probe and generation, {r['config']['rec_threads']} "
            "for the recommender fits",
            "- **Throughput on a shared machine is a lower bound**: other work on the same cores slows every row; "
            "ratios taken within this run (share of the bound, x naive, x zcat) are the numbers to compare.", ""]


def _probe(r: dict) -> list[str]:
    b = r["bound"]
    out = [SECTIONS[1], "", "| when | dtype | shape | GFLOP/s |", "|---|---|---|---:|"]
    for when, probe in zip(("before generation", "after generation"), r["probes"]):
        out += [f"| {when} | {dt} | {shape} | {_n(v, 1)} |"
                for dt, shapes in probe.items() for shape, v in shapes.items()]
    short = DTYPE_SHORT[b.get("dtype", "bfloat16")]  # reports before 2026-12-02 measured bf16 only
    if short == "bf16":
        other = f"fp32 {_n(b['fp32_gflops'], 1)} GFLOP/s; bf16 is {b['bf16_gflops'] / b['fp32_gflops']:.1f}x fp32"
    else:
        other = "bf16 not probed: without AMX or AVX-512 BF16 it is emulated, and the LLM runs in fp32"
    out += ["", f"Bound: the best {short} rate (the precision the LLM runs in here), {_n(b[short + '_gflops'], 1)} "
            f"GFLOP/s, over 2 x {_n(b['params'])} parameters = {_n(b['flop_per_token'] / 1e9, 3)} GFLOP per token "
            f"processed: **{_n(b['tokens_per_s'])} tokens/s** ({other}). The bound counts matmul work only; "
            "attention over ~150 tokens adds a few percent that it leaves out.", ""]
    return out


def _generation(r: dict) -> list[str]:
    g = r["generation"]
    dtype = DTYPE_SHORT[r["bound"].get("dtype", "bfloat16")]
    out = [SECTIONS[2], "", f"{g['pairs']} pairs of the project's prompts (bench_generate.make_pairs, history "
           f"{g['history']}: {g['prompt_tokens_mean']:.0f} prompt tokens on average with the soft prompt), up to "
           f"{g['new_tokens']} new tokens, greedy, {dtype}; the naive row runs the first {g['naive_prompts']} prompts. "
           "Tokens processed = prompt + generated tokens per explanation, as if computed in full (the pair rows "
           "compute each shared prefix once). Load: the 1-minute load average as the row started (the vLLM rows "
           f"run in one subprocess, after its start-up; the machine has {r['machine']['cores']} cores).", "",
           "| engine | how | explanations | tokens processed /s | explanations /s | share of bound | x naive | "
           "start-up s | load |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in g["rows"]:
        if row["status"] != "measured":
            out.append(f"| {row['engine']} | {row['how']} | {row['status']} | | | | | | |")
            continue
        out.append(f"| {row['engine']} | {row['how']} | {row['explanations']} | {_n(row['tokens_per_s'])} | "
                   f"{_n(row['explanations_per_s'], 2)} | {row['share_of_bound']:.1%} | {_n(row['x_naive'], 1)}x | "
                   f"{_n(row['startup_s'], 1)} | {_n(row.get('load'), 1)} |")
    goal = g["goals"]
    out += ["", f"Goals on this CPU, best engine ({goal['best']}):",
            f"- at least {goal['min_share']:.0%} of the bound: {_verdict(goal['share_met'])}, "
            f"{goal['share_of_bound']:.1%} ({goal['share_of_bound'] / goal['min_share']:.2f} of the goal);",
            f"- at least {goal['min_x_naive']:.0f}x naive: {_verdict(goal['x_naive_met'])}, {goal['x_naive']:.1f}x "
            f"({goal['x_naive'] / goal['min_x_naive']:.2f} of the goal).", ""]
    return out


def _ingest(r: dict) -> list[str]:
    i = r["ingest"]
    return [SECTIONS[3], "", f"{i['lines']:,} review lines ({i['gzipped_mb']} MB gzipped, 0.1% bad lines; "
            f"bench_ingest.py's generator), each contender in its own process; {i['note']}.", "",
            "| contender | seconds | CPU s | peak RSS | x zcat |", "|---|---:|---:|---:|---:|",
            f"| zcat > /dev/null | {i['zcat_s']:.2f} | {i['zcat_cpu_s']:.2f} | | 1.00 |",
            f"| ingest_reviews | {i['ingest_s']:.2f} | {i['ingest_cpu_s']:.2f} | {i['ingest_peak_rss_mb']} MB | "
            f"**{i['x_zcat']:.2f}** |", "",
            f"{i['accepted']:,} lines accepted, {i['rejected']:,} quarantined. The ingestion goal (0.8x zcat, "
            "bench/reports/ingest.md) is set on 10M lines, where start-up is a smaller share: this size is a check "
            "that the ratio holds, not the goal's measurement.", ""]


def _pie(r: dict) -> list[str]:
    p = r["pie"]
    return [SECTIONS[4], "", f"The demo profile's PIE update ({p['objective']}, {p['ppo_epochs']} passes per batch, "
            f"micro-batch {p['micro_batch']}, checkpoint_layers {p['checkpoint_layers']}, "
            f"share_prefix {p.get('share_prefix', 'n/a')}, samples up to "
            f"{p['max_new_tokens']} tokens, {p['tokens_mean']:.1f} on average) on {p['pairs']} pairs "
            f"({2 * p['pairs']} explanations), random rewards, mean of {p['steps']} step(s):", "",
            "| part | seconds per step | share |", "|---|---:|---:|",
            f"| sampling (generate_pair_ids) | {p['generation_s']:.2f} | {p['generation_s'] / p['per_step_s']:.0%} |",
            f"| the rest (reference and policy log-probs, backward, AdamW) | {p['rest_s']:.2f} | "
            f"{p['rest_s'] / p['per_step_s']:.0%} |", f"| **step** | **{p['per_step_s']:.2f}** | |", ""]


def _rec(r: dict) -> list[str]:
    c = r["recommender"]
    rates = c["samples_per_s"]
    return [SECTIONS[5], "", f"bench_rec.py's toy table: {c['rows']:,} rows ({c['train']:,} train), batch "
            f"{c['batch_size']}, {c['epochs']} epochs (the first not counted), {c['threads']} torch thread(s); "
            "training samples/s (forward, backward, Adam step).", "",
            "| model | samples/s |", "|---|---:|",
            f"| RecPIE (with 384-d explanation embeddings) | {rates['recpie']:,} |",
            f"| RecPIE without explanations (recpie_no_expl) | {rates['recpie_no_expl']:,} |",
            f"| SASRec | {rates['sasrec']:,} |", "",
            f"Ratio RecPIE / SASRec: **{c['ratio_recpie_sasrec']:.2f}**.", ""]


def _demo(r: dict) -> list[str]:
    d = r["demo"]
    if "steps" not in d:
        return [SECTIONS[6], "", d["status"], ""]
    out = [SECTIONS[6], "", f"Home `{d['home']}` (profile {d.get('profile') or 'unknown'}), last run `{d['run_id']}`: "
           f"{d['status']}, {d['start']} to {d['end']}, **{_n(d['wall_s'], 1)} s** wall, {_n(d['steps_s'], 1)} s in "
           "steps. From the home's Dagster event log (a copy; the home is only read). Slowest first:", "",
           "| step | status | seconds | share | assets |", "|---|---|---:|---:|---|"]
    total = d["steps_s"] or 1.0
    for s in d["steps"]:
        share = f"{(s['seconds'] or 0) / total:.0%}"
        out.append(f"| {s['step']} | {s['status']} | {_n(s['seconds'], 1)} | {share} | {', '.join(s['assets'])} |")
    return out + [""]


def _paper(r: dict) -> list[str]:
    w, p = r["paper"]["workload"], r["paper"]["plan"]
    out = [SECTIONS[7], "", "Settings from `recpie_core/profiles.py` (`paper`); the data size, hardware and published "
           "rates are constants in `bench/paper_plan.py` with their sources. **No GPU was used: every H200 number is "
           "an estimate.**", "",
           "| quantity | value |", "|---|---:|",
           f"| ratings (the paper's data) | {w['ratings']:,} |",
           f"| explanations per pass (2 per rating) | {w['explanations_per_pass']:,} |",
           f"| passes per run ({w['rounds']} rounds + explanation_only) | {w['passes']} |",
           f"| explanations per run | {w['explanations_per_run']:,} |",
           f"| prompt tokens per explanation (measured, SmolLM2 tokenizer, synthetic names: a lower bound) | "
           f"{w['prompt_tokens']:.0f} |",
           f"| generated tokens per explanation (the cap, an upper bound) | {w['new_tokens_cap']} |",
           f"| PIE: {w['pie_steps']} steps x {w['pie_batch']} pairs x 2 x {w['rounds']} rounds, x "
           f"{w['pie_forward_equiv']} forward equivalents | {w['pie_explanations']:,} explanations |",
           f"| llm_direct baseline (test rows) | {w['test_rows']:,} prompts |"]
    out += [f"| tokens: {k} | {v:,} |" for k, v in w["tokens"].items()]
    out += [f"| **tokens processed per run** | **{w['tokens_total']:,}** |",
            f"| FLOP per token: Llama 3.1 8B / SmolLM2-135M | {2 * p['llama_params'] / 1e9:.2f} / "
            f"{2 * p['smollm2_params'] / 1e9:.3f} GFLOP |", "",
            "Hours for one whole run (every pass, PIE and the direct baseline), one device:", "",
            "| model | where | engine | hours | basis |", "|---|---|---|---:|---|"]
    out += [f"| {x['model']} | {x['where']} | {x['engine']} | {_n(x['hours'], 1)} | {x['basis']} |" for x in p["rows"]]
    out += ["", f"- vLLM's GPU rate: {p['vllm_gpu']['what']} ({p['vllm_gpu']['url']}). An estimate, not a measurement.",
            f"- HF on a GPU: {p['hf_gpu_slowdown']['what']} ({p['hf_gpu_slowdown']['url']}).",
            "- A rate is carried between models at the same share of peak (FLOP ratio): optimistic for SmolLM2 on "
            "an H200 (a 135M model cannot fill a GPU), and for Llama 3.1 8B on this CPU (16 GB of bf16 weights in "
            "24 GB; decoding it is bound by memory bandwidth, not matmul rate).",
            f"- For scale: {p['paper_reported']}. " + _against_paper(p), ""]
    return out


def _against_paper(p: dict) -> str:
    bound, paper = p["llama_h200_bound_hours"], p["paper_gpu_hours"]
    if bound > paper:
        return (f"That is below this plan's 100%-of-peak bound ({bound:.0f} H200-hours): the paper's run did less "
                "LLM work than this plan counts (fewer passes or rows, shorter prompts or explanations, or a figure "
                "for part of the method), or ran faster arithmetic than bf16 (FP8).")
    return f"This plan's 100%-of-peak bound is {bound:.0f} H200-hours, {paper / bound:.1f}x below it."


def render(r: dict) -> str:
    head = [f"# Benchmarks ({r['config']['name']})", "",
            f"- Date: {r['machine']['date_utc']}; wall time {r['seconds']:.0f} s; command: `{r['command']}`",
            f"- Sizes: {r['config']}", ""]
    body = (_machine(r) + _probe(r) + _generation(r) + _ingest(r) + _pie(r) + _rec(r) + _demo(r) + _paper(r))
    return "\n".join(head + body).rstrip() + "\n"
