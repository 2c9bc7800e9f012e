"""``BenchConfig``: the sizes one ``bench/benchmarks.py`` run measures at, full or ``--quick``.

One dataclass so that the report can print the sizes it ran at, and so that a size that
cannot measure anything (a naive baseline of zero prompts, a PIE step without pairs) is
refused before minutes of work, not discovered in a division by zero at the end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BenchConfig:
    name: str = "full"  # "full" or "quick": printed in the report
    threads: int = 2  # torch threads for the matmul probe and generation (the bound and the engines alike)
    history: int = 5  # history places per prompt: about 120 prompt tokens, the real prompt shape
    new_tokens: int = 24  # max_new_tokens per explanation
    gen_pairs: int = 128  # pairs for the batched rows: 2 x gen_pairs explanations each
    naive_prompts: int = 24  # explanations generated one prompt at a time (the naive baseline)
    batch: int = 64  # explanations per generate call in the batched rows (pairs: batch / 2 pairs)
    probe_tokens: int = 2048  # rows of the matmul probe (tokens in flight at the LLM's shapes)
    probe_seconds: float = 2.0  # time spent per probe shape and dtype
    vllm_timeout: int = 600  # seconds the vLLM subprocess may take, start-up included
    ingest_lines: int = 2_000_000  # review lines of the ingestion comparison (cached under the work dir)
    pie_pairs: int = 16  # pairs sampled per PIE step (the demo profile's batch; a multiple of its group_size:
    # the group baseline draws pie_pairs / group_size distinct pairs, each sampled group_size times)
    pie_steps: int = 2  # PIE steps timed; the report gives the mean per step
    pie_new_tokens: int = 0  # cap on a PIE sample's tokens; 0 keeps the demo profile's
    rec_users: int = 2500  # users x 20 ratings of the toy table of the recommender comparison
    rec_epochs: int = 2  # epochs per model (the first is warm-up: samples/s from the later ones)
    rec_threads: int = 1  # torch threads for the recommender fits (1: stable on shared cores, rec.md)

    def __post_init__(self):
        if self.name not in ("full", "quick"):
            raise ValueError(f"name must be 'full' or 'quick', got {self.name!r}")
        if min(self.threads, self.rec_threads) < 1:
            raise ValueError("threads and rec_threads must be >= 1")
        if min(self.gen_pairs, self.naive_prompts, self.new_tokens, self.batch, self.history) < 1:
            raise ValueError("gen_pairs, naive_prompts, new_tokens, batch and history must be >= 1: "
                             "each generation row needs prompts to time")
        if self.batch % 2:
            raise ValueError(f"batch counts explanations and the pair row runs batch / 2 pairs: give an even "
                             f"batch, got {self.batch}")
        if self.probe_tokens < 64 or self.probe_seconds <= 0:
            raise ValueError("probe_tokens must be >= 64 and probe_seconds > 0")
        if min(self.ingest_lines, self.pie_pairs, self.pie_steps, self.rec_users, self.vllm_timeout) < 1:
            raise ValueError("ingest_lines, pie_pairs, pie_steps, rec_users and vllm_timeout must be >= 1")
        if self.pie_new_tokens < 0:
            raise ValueError("pie_new_tokens must be >= 0 (0 keeps the demo profile's cap)")
        if self.rec_epochs < 2:
            raise ValueError("rec_epochs must be >= 2: the first epoch is warm-up and is not counted")

    def to_dict(self) -> dict:
        return asdict(self)


FULL = BenchConfig()
# tiny sizes: every section runs, in about two minutes on two idle cores (the slow test runs it)
QUICK = BenchConfig(name="quick", gen_pairs=8, naive_prompts=4, batch=16, probe_tokens=512, probe_seconds=0.5,
                    vllm_timeout=300, ingest_lines=20_000, pie_pairs=4, pie_steps=1, pie_new_tokens=8,
                    rec_users=200, rec_epochs=2)
