"""Generation throughput of each engine on the project's prompt shapes, one row per engine.

Rows (same prompts, same soft-prompt vectors, greedy, ``max_new_tokens`` from the config):

- ``hf naive``: ``Explainer.generate_ids`` one prompt at a time (batch 1): the baseline;
- ``hf batched``: ``generate_ids`` over ``batch`` prompts per call, sorted by length;
- ``hf pairs``: ``generate_pair_ids``, a pair's shared prefix prefilled once (``batch / 2`` pairs);
- ``vllm pairs`` / ``vllm batched``: the same calls through ``engines.open_engine`` with
  ``EngineConfig(engine="vllm")``, run by ``vllm_worker.py`` under ``.venv-vllm/bin/python`` (vLLM
  pins its own torch and transformers) and read back as JSON; its start-up is timed apart.

Counting: *tokens processed* are each explanation's whole prompt (soft tokens included) plus
the tokens it generated, as if computed in full; the pair path computes a shared prefix once,
so it does less work than it is credited with (the issue's tables count the same way). Rows
that stop early (EOS) count only the tokens they produced, never the padding a batch carries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine_probe import load_average

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
NOT_INSTALLED = "not installed: make test-vllm"


def row(engine: str, how: str, prompt_tokens: int, generated: list[list[int]], seconds: float,
        startup_s: float | None = None, load: float | None = None) -> dict:
    """One measured row: counts, seconds, the two rates, and the 1-minute load average when it started."""
    gen = sum(len(r) for r in generated)
    out = {"engine": engine, "how": how, "status": "measured", "load": load, "explanations": len(generated),
           "prompt_tokens": prompt_tokens, "generated_tokens": gen, "seconds": round(seconds, 3),
           "tokens_per_s": round((prompt_tokens + gen) / seconds, 1),
           "explanations_per_s": round(len(generated) / seconds, 2), "startup_s": startup_s}
    print(f"  {engine}: {out['tokens_per_s']:,.0f} tokens/s, {out['explanations_per_s']} explanations/s "
          f"({seconds:.0f} s)", flush=True)
    return out


def prompt_tokens(explainer, prompts: list[str], with_soft: bool) -> int:
    """Tokens of ``prompts`` as the explainer feeds them (chat template, plus its soft tokens)."""
    soft = explainer.projector.n_tokens if (with_soft and explainer.projector is not None) else 0
    return sum(len(r) + soft for r in explainer.encode(prompts))


def hf_rows(explainer, pos: list[str], neg: list[str], vecs: torch.Tensor, n_naive: int, batch: int,
            new_tokens: int) -> list[dict]:
    """The three Hugging Face rows (naive, batched, pairs) on ``len(pos)`` pairs."""
    kw = dict(max_new_tokens=new_tokens, greedy=True)
    prompts = [p for pair in zip(pos, neg) for p in pair]  # pos_0, neg_0, pos_1, ...
    vec2 = vecs.repeat_interleave(2, 0)
    explainer.generate_ids(prompts[:2], vec2[:2], batch_size=2, max_new_tokens=4, greedy=True)  # warm-up
    rows = []

    load, t = _load(), time.perf_counter()
    ids = explainer.generate_ids(prompts[:n_naive], vec2[:n_naive], batch_size=1, **kw)
    rows.append(row("hf naive", "generate_ids, batch 1", prompt_tokens(explainer, prompts[:n_naive], True), ids,
                    time.perf_counter() - t, load=load))

    load, t = _load(), time.perf_counter()
    ids = explainer.generate_ids(prompts, vec2, batch_size=batch, **kw)
    rows.append(row("hf batched", f"generate_ids, batch {batch}", prompt_tokens(explainer, prompts, True), ids,
                    time.perf_counter() - t, load=load))

    load, t = _load(), time.perf_counter()
    p, q = explainer.generate_pair_ids(pos, neg, vecs, batch_size=batch // 2, **kw)
    rows.append(row("hf pairs", f"generate_pair_ids, {batch // 2} pairs per call (shared prefill)",
                    prompt_tokens(explainer, pos + neg, True), p + q, time.perf_counter() - t, load=load))
    return rows


def _load() -> float | None:
    load = load_average()
    return load[0] if load else None


def _failed(engine: str, why: str) -> dict:
    return {"engine": engine, "how": "open_engine(EngineConfig(engine='vllm'))", "status": why}


def vllm_rows(explainer, pos: list[str], neg: list[str], vecs: torch.Tensor, batch: int, new_tokens: int,
              cache: Path, work: Path, threads: int, timeout: int, history: int) -> list[dict]:
    """The vLLM rows, measured in a subprocess of ``.venv-vllm``; one status row when it cannot run.

    vLLM's prefix cache outlives a call: the ``generate_ids`` row and the warm-up get prompts of
    their own (same shape, other seeds), so no row reads blocks another row computed."""
    if not VLLM_PYTHON.exists():
        return [_failed("vllm", NOT_INSTALLED)]
    from bench_generate import make_pairs

    warm_pos, warm_neg = make_pairs(2, seed=101, history=history)
    single = [x for pair in zip(*make_pairs(len(pos), seed=102, history=history)) for x in pair]
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vllm-spec-", dir=work) as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({"pos": pos, "neg": neg, "single": single, "warm_pos": warm_pos,
                                    "warm_neg": warm_neg, "vecs": vecs.tolist(), "batch": batch,
                                    "new_tokens": new_tokens, "cache": str(cache), "work": str(work / "vllm"),
                                    "threads": threads, "dtype": explainer.cfg.dtype}))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        load = _load()
        try:
            p = subprocess.run([str(VLLM_PYTHON), str(ROOT / "bench" / "vllm_worker.py"), str(spec), str(out)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [_failed("vllm", f"failed: no result within {timeout} s")]
        if p.returncode != 0 or not out.is_file():
            last = (p.stderr.strip().splitlines() or ["no output"])[-1][:200]
            return [_failed("vllm", f"failed (exit {p.returncode}): {last}")]
        result = json.loads(out.read_text())
    return [row("vllm pairs", f"generate_pair_ids, {result['version']}", prompt_tokens(explainer, pos + neg, True),
                result["pairs_ids"], result["pairs_s"], result["startup_s"], load),
            row("vllm batched", f"generate_ids, {result['version']}", prompt_tokens(explainer, single, True),
                result["single_ids"], result["single_s"], result["startup_s"], load)]


def with_ratios(rows: list[dict], bound_tokens_per_s: float) -> list[dict]:
    """Each measured row with its share of the bound and its speed-up over the naive row."""
    naive = next((r for r in rows if r["engine"] == "hf naive" and r["status"] == "measured"), None)
    out = []
    for r in rows:
        r = dict(r)
        if r["status"] == "measured":
            r["share_of_bound"] = round(r["tokens_per_s"] / bound_tokens_per_s, 4)
            r["x_naive"] = round(r["tokens_per_s"] / naive["tokens_per_s"], 2) if naive else None
        out.append(r)
    return out


def goals(rows: list[dict], min_share: float = 0.5, min_x_naive: float = 10.0) -> dict:
    """The issue's two goals on the best measured engine: met or missed, with the ratio."""
    measured = [r for r in rows if r["status"] == "measured" and r["engine"] != "hf naive"]
    if not measured:
        return {"best": None, "share_met": False, "x_naive_met": False}
    best = max(measured, key=lambda r: r["tokens_per_s"])
    return {"best": best["engine"], "share_of_bound": best["share_of_bound"], "min_share": min_share,
            "share_met": best["share_of_bound"] >= min_share, "x_naive": best["x_naive"],
            "min_x_naive": min_x_naive, "x_naive_met": (best["x_naive"] or 0) >= min_x_naive}


if __name__ == "__main__":
    sys.exit("run bench/benchmarks.py; this module holds its generation rows")
