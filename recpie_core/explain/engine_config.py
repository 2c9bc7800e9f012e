"""``EngineConfig``: which engine writes the explanation pass's texts, and how vLLM is set up.

Apart from ``engines.py`` so that profiles, the code location and a data step read it
without importing torch or vLLM. ``engines.open_engine`` reads it; DESIGN.md "Generation
engines" says why there are two engines.

The CPU threshold (``cpu_min_rows``) was measured on this project's 2-core CPU (AVX512-BF16,
no AMX, shared with other work): see ``CPU_MIN_ROWS`` below.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("auto", "hf", "vllm")

# Rows (one row = a positive and a negative explanation) from which "auto" takes vLLM on a CPU.
# Measured 2026-12-02 on this project's 2-core CPU (AVX512-BF16, no AMX) while other jobs ran
# (load average ~7): bench/bench_engine_threshold.py, 128 pairs of ~176-token prompts, SmolLM2 bf16
# with a perturbed adapter, the demo's endings (greedy, sentence stop, cap 32). vLLM's start
# (adapter merge + engine start) 67 s; HF pairs 0.735 rows/s (1 torch thread; 0.19 with 2 threads
# under that load), vLLM 1.75 rows/s (2.4x): break-even at 85 rows. Doubled for a first start
# without warm caches (up to ~110 s, issue 12) and rounded: 200. On an AMX CPU, where HF is about
# twice as fast, issue 12's numbers put the break-even nearer 700 rows.
CPU_MIN_ROWS = 200


@dataclass(frozen=True)
class EngineConfig:
    engine: str = "auto"  # "hf" (transformers, the reference) | "vllm" | "auto" (vLLM on CUDA when
    # installed; on a CPU only from cpu_min_rows rows on; else HF)
    cpu_min_rows: int = CPU_MIN_ROWS  # "auto" on a CPU: rows from which vLLM's start-up pays off (measured, above)
    enforce_eager: bool = True  # vLLM without torch.compile: 13-20 s start instead of 50-110 s, ~7% slower
    # per token on CPU (issue 12's table); set False for long passes and on GPUs
    block_size: int = 32  # KV-cache block (tokens); 32 lets the prefix cache share a pair's prompt (issue 12)
    max_model_len: int = 2048  # longest soft prompt + prompt + explanation vLLM accepts (tokens)
    max_num_seqs: int = 256  # sequences vLLM decodes at once (its batch)
    kv_cache_gb: float = 2.0  # KV cache vLLM allocates, GiB (CPU); 0: vLLM's own sizing (gpu_memory_utilization)
    gpu_memory_utilization: float = 0.5  # CUDA: share of the GPU vLLM may take (the HF explainer shares it)
    cpu_threads_bind: str = "all"  # VLLM_CPU_OMP_THREADS_BIND on CPU: "all" = every core this process may
    # use (vLLM's "auto" keeps one core for its scheduler: on 2 cores one of two sits idle, issue 12) |
    # "auto" | "nobind" | a core list such as "0-7"

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.cpu_min_rows < 0:
            raise ValueError(f"cpu_min_rows must be >= 0 (0: vLLM on a CPU for any size), got {self.cpu_min_rows}")
        if self.block_size < 1 or self.block_size % 16:
            raise ValueError(f"block_size must be a positive multiple of 16 (vLLM's kernels), got {self.block_size}")
        if self.max_model_len < 64 or self.max_num_seqs < 1:
            raise ValueError("max_model_len must be >= 64 tokens and max_num_seqs >= 1")
        if self.kv_cache_gb < 0:
            raise ValueError(f"kv_cache_gb must be >= 0 (0: vLLM sizes the cache), got {self.kv_cache_gb}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must lie in (0, 1], got {self.gpu_memory_utilization}")
        if not self.cpu_threads_bind.strip():
            raise ValueError("cpu_threads_bind is empty: give 'all', 'auto', 'nobind' or a core list like '0-7'")
