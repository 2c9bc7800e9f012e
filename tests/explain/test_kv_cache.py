"""The preallocated KV cache reads like transformers' DynamicCache, step for step."""

import torch
from transformers import DynamicCache

from recpie_core.explain.kv_cache import preallocated_cache


def _steps(cache, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for m in lengths:  # a prefill of several tokens, then one token a step
        for layer in range(2):
            k, v = torch.randn(3, 2, m, 4, generator=g), torch.randn(3, 2, m, 4, generator=g)
            out.append(tuple(t.clone() for t in cache.update(k, v, layer)))
    return out


def test_it_returns_what_a_dynamic_cache_returns_past_its_capacity():
    lengths = [5] + [1] * 10  # 15 tokens into room for 8: the buffer grows
    ours, theirs = preallocated_cache(2, capacity=8), DynamicCache()
    for (k, v), (k_ref, v_ref) in zip(_steps(ours, lengths), _steps(theirs, lengths), strict=True):
        assert torch.equal(k, k_ref) and torch.equal(v, v_ref)
    assert ours.get_seq_length() == theirs.get_seq_length() == 15


def test_a_prefix_is_copied_and_rows_can_be_selected():
    prefix = DynamicCache()
    _steps(prefix, [6])
    cache = preallocated_cache(2, capacity=10, prefix=prefix)
    assert cache.get_seq_length() == 6
    assert torch.equal(cache.layers[1].keys, prefix.layers[1].keys)
    index = torch.tensor([2, 2, 0])
    cache.batch_select_indices(index)  # replaces the layer's tensors: the next update copies them into a new buffer
    k, _ = cache.update(torch.ones(3, 2, 1, 4), torch.ones(3, 2, 1, 4), 0)
    assert k.shape == (3, 2, 7, 4)
    assert torch.equal(k[:, :, :6], prefix.layers[0].keys[index]) and torch.equal(k[:, :, 6], torch.ones(3, 2, 4))
