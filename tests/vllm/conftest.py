"""Shared fixtures for the vLLM engine tests (run in ``.venv-vllm``; skipped where vLLM is absent)."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Torch on one thread in this process (HF, the encoder) for a whole module, its model fixtures
    included, restored after it: on 2 shared cores a second OpenMP thread mostly waits
    (tests/conftest.py's one_torch_thread, per test); vLLM's worker binds the cores itself."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
