"""SentenceEncoder on the packaged all-MiniLM-L6-v2 (slow: ~5 s to load): shape, the
text-hash cache in memory and on disk, and the TextEncoder protocol."""

import pytest
import torch

from recpie_core.explain.text_encoder import SentenceEncoder, TextEncoder, locate_packaged_sentence_model


def test_packaged_model_is_found():
    assert (locate_packaged_sentence_model() / "model.safetensors").is_file()


@pytest.mark.slow
def test_sentence_encoder_caches_by_text(tmp_path):
    cache = tmp_path / "enc.safetensors"
    enc = SentenceEncoder(cache_file=cache)
    assert isinstance(enc, TextEncoder) and enc.dim == 384
    out = enc.encode(["great coffee", "a quiet park", "great coffee"])
    assert out.shape == (3, 384) and enc.n_encoded == 2
    assert torch.equal(out[0], out[2])
    assert out.norm(dim=1).tolist() == pytest.approx([1.0] * 3, abs=1e-4)
    enc.encode(["a quiet park"])
    assert enc.n_encoded == 2
    assert enc.save_cache() == cache
    again = SentenceEncoder(cache_file=cache)
    assert torch.equal(again.encode(["great coffee"])[0], out[0]) and again.n_encoded == 0
    assert torch.allclose(enc.model.encode(["great coffee"], convert_to_tensor=True)[0], out[0], atol=1e-5)
    assert enc.encode([]).shape == (0, 384)
