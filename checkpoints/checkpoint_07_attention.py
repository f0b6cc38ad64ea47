"""Checkpoint 07 (attention): Can I build attention mechanisms for sequence understanding?

Builds attention from chapter 07 and uses it the way a Transformer does:
content-based lookup, causal language-model attention, PyTorch's mask
conventions, multi-head attention in both layouts, embeddings and positions.
"""

from _harness import main

import numpy as np

from tinytorch import Tensor, manual_seed
from tinytorch.nn import Embedding, Linear, MultiheadAttention
from tinytorch.nn.attention import causal_mask, sinusoidal_positions
from tinytorch.nn.functional import scaled_dot_product_attention


def check_attention_retrieves_the_value_whose_key_matches():
    """Attention is a soft dictionary lookup: a query retrieves the value of its matching key."""
    rng = np.random.default_rng(0)
    keys = np.eye(6) * 8.0                                  # six distinct keys
    values = rng.standard_normal((6, 3))
    wanted = np.array([4, 0, 5, 2])
    queries = keys[wanted]                                  # each query matches one key
    out = scaled_dot_product_attention(Tensor(queries), Tensor(keys), Tensor(values))
    assert out.shape == (4, 3), f"output should be (queries, value width) = (4, 3), got {out.shape}"
    assert np.allclose(out.data, values[wanted], atol=1e-4), \
        "each query should return the value of the key it matches (check the scores q k^T / sqrt(d) and the softmax axis)"


def check_causal_attention_is_a_running_average_of_the_past():
    """With equal scores, causal attention averages tokens 0..t at position t and never reads ahead."""
    values = np.random.default_rng(1).standard_normal((1, 5, 2))
    zeros = np.zeros((1, 5, 2))
    out = scaled_dot_product_attention(Tensor(zeros), Tensor(zeros), Tensor(values), is_causal=True)
    running_mean = np.cumsum(values, axis=1) / np.arange(1, 6)[None, :, None]
    assert np.allclose(out.data, running_mean, atol=1e-6), \
        "position t should average values 0..t: is the causal mask lower-triangular (True = attend)?"


def check_a_language_model_layer_cannot_see_the_future():
    """Embeddings + positions + causal multi-head attention + head: logits at t ignore tokens after t."""
    manual_seed(0)
    vocab, T, E = 11, 7, 8
    tokens, positions = Embedding(vocab, E), Embedding(T, E)
    attention, head = MultiheadAttention(E, 2, batch_first=True), Linear(E, vocab)

    def logits(ids):
        x = tokens(ids) + positions(np.arange(T))          # (B, T, E)
        h, _ = attention(x, x, x, is_causal=True)
        return head(x + h).data                             # (B, T, vocab)

    ids = np.random.default_rng(2).integers(0, vocab, size=(3, T))
    changed = ids.copy()
    changed[:, 4:] = (changed[:, 4:] + 3) % vocab
    a, b = logits(ids), logits(changed)
    assert a.shape == (3, T, vocab), f"logits should be (B, T, vocab) = (3, {T}, {vocab}), got {a.shape}"
    assert np.array_equal(a[:, :4], b[:, :4]), "changing tokens 4.. changed the logits at positions 0..3"
    assert not np.allclose(a[:, 4:], b[:, 4:]), "the logits at positions 4.. should depend on tokens 4.."


def check_masks_follow_pytorch_conventions():
    """scaled_dot_product_attention: True = attend; MultiheadAttention: True = blocked; no NaN ever."""
    rng = np.random.default_rng(3)
    q, k, v = (Tensor(rng.standard_normal((4, 3))) for _ in range(3))
    only_key_1 = np.zeros((4, 4), dtype=bool)
    only_key_1[:, 1] = True
    out = scaled_dot_product_attention(q, k, v, attn_mask=only_key_1)
    assert np.allclose(out.data, v.data[1]), "a boolean attn_mask True should mean 'may attend' in the function"
    nothing = np.zeros((4, 4), dtype=bool)
    out = scaled_dot_product_attention(q, k, v, attn_mask=nothing)
    assert np.isfinite(out.data).all() and np.allclose(out.data, 0.0), \
        "a query with every key masked should give zeros, not NaN"

    manual_seed(1)
    mha = MultiheadAttention(4, 2, batch_first=True)
    x = Tensor(rng.standard_normal((1, 4, 4)), dtype=np.float32)
    _, weights = mha(x, x, x, attn_mask=~causal_mask(4).data)
    assert np.allclose(np.triu(weights.data[0], k=1), 0.0), \
        "MultiheadAttention's attn_mask True should mean 'blocked' (PyTorch's module convention)"
    assert np.allclose(weights.data.sum(-1), 1.0, atol=1e-6), "attention weights should sum to 1 per query"


def check_multihead_attention_layouts_and_state_dict():
    """batch_first=False (T, B, E) and True (B, T, E) give the same answer with the same state_dict."""
    manual_seed(2)
    seq_first = MultiheadAttention(8, 4)
    batch_first = MultiheadAttention(8, 4, batch_first=True)
    names = sorted(seq_first.state_dict())
    assert names == ["in_proj_bias", "in_proj_weight", "out_proj.bias", "out_proj.weight"], \
        f"parameter names should match torch.nn.MultiheadAttention's, got {names}"
    batch_first.load_state_dict(seq_first.state_dict())
    x = np.random.default_rng(4).standard_normal((5, 2, 8)).astype(np.float32)        # (T, B, E)
    out_t, _ = seq_first(Tensor(x), Tensor(x), Tensor(x))
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))                                   # (B, T, E)
    out_b, _ = batch_first(Tensor(xb), Tensor(xb), Tensor(xb))
    assert out_t.shape == (5, 2, 8) and out_b.shape == (2, 5, 8), \
        f"outputs keep the input layout: got {out_t.shape} and {out_b.shape}"
    assert np.allclose(out_b.data, out_t.data.transpose(1, 0, 2), atol=1e-5), \
        "the two layouts disagree: check the transposes between (T, B, E) and (B, T, E)"


def check_positions_make_attention_order_aware():
    """Without positions attention ignores order; with sinusoidal positions it does not."""
    manual_seed(3)
    mha = MultiheadAttention(8, 2, batch_first=True)
    x = np.random.default_rng(5).standard_normal((1, 6, 8)).astype(np.float32)
    perm = np.array([2, 0, 5, 1, 4, 3])
    out = mha(Tensor(x), Tensor(x), Tensor(x))[0].data
    out_p = mha(Tensor(x[:, perm]), Tensor(x[:, perm]), Tensor(x[:, perm]))[0].data
    assert np.allclose(out_p, out[:, perm], atol=1e-5), "without positions, permuting tokens should permute outputs"
    pe = sinusoidal_positions(6, 8)
    assert pe.shape == (6, 8) and np.allclose(pe.data[:, 0], np.sin(np.arange(6)), atol=1e-6), \
        "sinusoidal_positions(T, d) column 0 should be sin(t)"
    h, hp = Tensor(x) + pe, Tensor(x[:, perm]) + pe
    assert not np.allclose(mha(hp, hp, hp)[0].data, mha(h, h, h)[0].data[:, perm], atol=1e-4), \
        "with positions added, attention should notice that the order changed"


if __name__ == "__main__":
    main(globals())
