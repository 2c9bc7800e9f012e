"""The per-consumer soft prompt: the recommender's consumer embedding, projected into the LLM.

Paper Sec. 3.4.1: the consumer embedding (8-dim, shared with the recommender's consumer
token) is mapped to ``n_tokens`` vectors of the LLM's hidden size and prepended to the
prompt's token embeddings, for generation and for the log-probabilities of the PIE update
alike (``Explainer`` does both with the same code path, the attention mask extended by
``n_tokens`` ones).

Differs from the original: the paper does not spell out the projection; here it is one
linear layer, initialised so that for roughly unit-variance consumer vectors the soft
tokens have the spread (``init_std``) of the LLM's own token embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn


class SoftPromptProjector(nn.Module):
    """(B, user_dim) consumer vectors -> (B, n_tokens, hidden) input embeddings."""

    def __init__(self, user_dim: int = 8, hidden: int = 576, n_tokens: int = 2, init_std: float = 0.02):
        super().__init__()
        if user_dim < 1 or hidden < 1 or n_tokens < 1:
            raise ValueError("user_dim, hidden and n_tokens must be >= 1")
        self.user_dim, self.hidden, self.n_tokens, self.init_std = user_dim, hidden, n_tokens, init_std
        self.proj = nn.Linear(user_dim, n_tokens * hidden)
        nn.init.normal_(self.proj.weight, std=init_std / user_dim ** 0.5)
        nn.init.zeros_(self.proj.bias)

    def forward(self, user_vecs: Tensor) -> Tensor:
        if user_vecs.dim() != 2 or user_vecs.shape[1] != self.user_dim:
            raise ValueError(f"expected user vectors of shape (B, {self.user_dim}), got {tuple(user_vecs.shape)}")
        out = self.proj(user_vecs.to(self.proj.weight.dtype))  # (B, P * H)
        return out.view(-1, self.n_tokens, self.hidden)  # (B, P, H)

    def config(self) -> dict:
        return {"user_dim": self.user_dim, "hidden": self.hidden, "n_tokens": self.n_tokens,
                "init_std": self.init_std}

    def save(self, folder: Path) -> None:
        """``soft_prompt.safetensors`` plus ``soft_prompt.json`` (its constructor arguments)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  folder / "soft_prompt.safetensors")
        (folder / "soft_prompt.json").write_text(json.dumps(self.config(), indent=2))

    @classmethod
    def load(cls, folder: Path, device: torch.device | str = "cpu") -> SoftPromptProjector:
        folder = Path(folder)
        projector = cls(**json.loads((folder / "soft_prompt.json").read_text()))
        projector.load_state_dict(load_file(folder / "soft_prompt.safetensors"))
        return projector.to(device)
