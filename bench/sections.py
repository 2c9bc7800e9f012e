"""The smaller sections of bench/benchmarks.py, each a call into the bench script that owns it.

- ``ingest_vs_zcat``: ``bench_ingest``'s input generator and contenders (each in its own process)
  at a size that takes well under a minute, ``x zcat`` = zcat seconds / ingest seconds;
- ``pie_step``: one PIE step of the demo profile's settings (``bench_generate.time_pie_steps``);
- ``recommender``: RecPIE's recommender against SASRec (``bench_rec.measure``), on its own
  thread count (``BenchConfig.rec_threads``), restored afterwards.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from bench_config import BenchConfig
from bench_generate import make_pairs, time_pie_steps
from bench_ingest import BAD_RATE, INGEST, cached_input, timed
from bench_rec import measure

from recpie_core.profiles import get_profile


def ingest_vs_zcat(work: Path, lines: int) -> dict:
    """``ingest_reviews`` and ``zcat > /dev/null`` on one gzipped review file of ``lines`` lines
    (0.1% bad lines of every kind, generated once and cached in ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    path = cached_input(work, lines, BAD_RATE)
    zcat_s, _, zcat_cpu, _ = timed(["sh", "-c", 'zcat "$0" > /dev/null', str(path)])
    out = Path(tempfile.mkdtemp(prefix="ingest-out-", dir=work))
    try:
        ingest_s, rss, cpu, stdout = timed([sys.executable, "-c", INGEST, str(path), str(out)])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"lines": lines, "gzipped_mb": round(path.stat().st_size / 1e6, 1), "zcat_s": round(zcat_s, 2),
            "zcat_cpu_s": round(zcat_cpu, 2), "ingest_s": round(ingest_s, 2), "ingest_cpu_s": round(cpu, 2),
            "ingest_peak_rss_mb": round(rss / 2**20), "x_zcat": round(zcat_s / ingest_s, 3),
            "accepted": summary["accepted"], "rejected": summary["rejected"],
            "note": "seconds include the interpreter start and imports (~0.4 s), a larger share at small sizes"}


def pie_step(explainer, cfg: BenchConfig) -> dict:
    """``cfg.pie_steps`` steps of the demo profile's PIE update (its objective, passes, KL, sampler)
    on ``cfg.pie_pairs`` pairs of the benchmark's prompt shape, with random rewards."""
    demo = get_profile("demo").pie
    gen = demo.generation if not cfg.pie_new_tokens else replace(
        demo.generation, max_new_tokens=cfg.pie_new_tokens, min_new_tokens=min(demo.generation.min_new_tokens,
                                                                             cfg.pie_new_tokens))
    pie = replace(demo, steps=cfg.pie_steps, batch_size=cfg.pie_pairs, micro_batch=min(demo.micro_batch,
                                                                                         cfg.pie_pairs),
                  generation=gen)
    pos, neg = make_pairs(cfg.pie_pairs, seed=1, history=cfg.history)
    vecs = torch.randn(cfg.pie_pairs, 8, generator=torch.Generator().manual_seed(1))
    r = time_pie_steps(explainer, pos, neg, vecs, pie)
    return {**r, "objective": pie.objective, "ppo_epochs": pie.ppo_epochs, "max_new_tokens": gen.max_new_tokens,
            "micro_batch": pie.micro_batch, "checkpoint_layers": pie.checkpoint_layers,
            "share_prefix": pie.share_prefix}


def recommender(cfg: BenchConfig) -> dict:
    """RecPIE's recommender vs SASRec, training samples/s, on ``cfg.rec_threads`` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.rec_threads)
    try:
        return measure(cfg.rec_users, cfg.rec_epochs)
    finally:
        torch.set_num_threads(before)


def paper_prompt_tokens(explainer, n: int = 64) -> float:
    """Mean prompt tokens (soft tokens included) of the ``paper`` profile's prompt over
    ``bench_generate.make_pairs`` histories of its ``max_history`` places, in this explainer's
    tokenizer: short synthetic names ("Place 17"), so real Google Local places give more."""
    paper = get_profile("paper")
    pos, neg = make_pairs(n, seed=2, history=paper.prompt.max_history, cfg=paper.prompt)
    lengths = [len(r) for r in explainer.encode(pos + neg, paper.llm.system_prompt)]
    return sum(lengths) / len(lengths) + paper.llm.n_soft_tokens
