"""Fixtures every test folder may use."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test, restored after it. The models in tests are tiny: on 2
    shared cores a second OpenMP thread mostly waits for a descheduled peer (measured: 4 s vs 55 s
    for tests/rec under load; a batch-8 generate 3 s vs 17 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
