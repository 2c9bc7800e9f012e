"""SoftPromptProjector: shapes, input checks, initial spread, safetensors round trip."""

import pytest
import torch

from recpie_core.explain.soft_prompt import SoftPromptProjector


def test_projects_user_vectors_to_soft_tokens():
    proj = SoftPromptProjector(user_dim=8, hidden=16, n_tokens=3)
    out = proj(torch.randn(5, 8))
    assert out.shape == (5, 3, 16)
    with pytest.raises(ValueError):
        proj(torch.randn(5, 7))


def test_initial_soft_tokens_have_the_requested_spread():
    torch.manual_seed(0)
    proj = SoftPromptProjector(user_dim=8, hidden=512, n_tokens=2, init_std=0.1)
    assert proj(torch.randn(256, 8)).std().item() == pytest.approx(0.1, rel=0.1)


def test_save_and_load_round_trip(tmp_path):
    proj = SoftPromptProjector(user_dim=8, hidden=16, n_tokens=2, init_std=0.3)
    proj.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"soft_prompt.safetensors", "soft_prompt.json"}
    back = SoftPromptProjector.load(tmp_path)
    x = torch.randn(4, 8)
    assert torch.equal(back(x), proj(x))
    assert back.config() == proj.config()
