"""Attention, multi-head attention, embeddings and positions (chapter 07) against their specification and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch import Tensor, gradcheck, manual_seed
from tinytorch.nn import Embedding, MultiheadAttention
from tinytorch.nn.attention import causal_mask, sinusoidal_positions
from tinytorch.nn.functional import scaled_dot_product_attention

from torch_reference import compare_with_torch, requires_torch, torch


def _arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def _t64(*shapes, seed=0, requires_grad=True):
    return [Tensor(a, requires_grad=requires_grad) for a in _arrays(*shapes, seed=seed)]


def _mha64(*args, **kwargs) -> MultiheadAttention:
    manual_seed(0)
    mha = MultiheadAttention(*args, **kwargs)
    for p in mha.parameters():
        p.data = p.data.astype(np.float64)
    rng = np.random.default_rng(11)
    for p in mha.parameters():        # non-zero biases, so the comparison exercises them
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    return mha


def _torch_mha_like(tiny: MultiheadAttention, **kwargs):
    ref = torch.nn.MultiheadAttention(tiny.embed_dim, tiny.num_heads, bias=tiny.in_proj_bias is not None,
                                      **kwargs).double()
    ref.load_state_dict({k: torch.tensor(v) for k, v in tiny.state_dict().items()})
    return ref


# ---- masks and the functional form ----------------------------------------------------------------

def test_causal_mask_is_lower_triangular_boolean():
    m = causal_mask(4).data
    assert m.dtype == np.bool_ and m.shape == (4, 4)
    assert np.array_equal(m, np.tril(np.ones((4, 4), dtype=bool)))
    assert causal_mask(2, 3).shape == (2, 3)


def test_sdpa_output_shape_with_different_query_and_key_lengths():
    q, k, v = _t64((2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4))
    assert scaled_dot_product_attention(q, k, v).shape == (2, 3, 5, 4)


def test_sdpa_rejects_mismatched_widths_with_a_message():
    q, k, v = _t64((5, 8), (7, 6), (7, 4))
    with pytest.raises(ValueError, match="same last dimension"):
        scaled_dot_product_attention(q, k, v)


def test_sdpa_rejects_attn_mask_together_with_is_causal():
    q, k, v = _t64((4, 3), (4, 3), (4, 3))
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(4), is_causal=True)


def test_boolean_mask_true_means_attend():
    q, k, v = _t64((1, 4, 3), (1, 4, 3), (1, 4, 3), requires_grad=False)
    mask = np.zeros((4, 4), dtype=bool)
    mask[:, 1] = True                            # every query may look at key 1 only
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    np.testing.assert_allclose(out.data[0], np.broadcast_to(v.data[0, 1], (4, 3)), atol=1e-12)


def test_masked_keys_have_no_influence():
    q, k, v = _t64((1, 4, 3), (1, 4, 3), (1, 4, 3), requires_grad=False)
    mask = np.ones((4, 4), dtype=bool)
    mask[:, 2] = False
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    v.data[0, 2] += 1e6
    k.data[0, 2] -= 1e3
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, attn_mask=mask).data, out.data, atol=1e-12)


def test_float_mask_is_added_to_the_scores():
    q, k, v = _t64((4, 3), (5, 3), (5, 2), requires_grad=False)
    bias = np.random.default_rng(3).standard_normal((4, 5))
    scores = q.data @ k.data.T / np.sqrt(3) + bias
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = scaled_dot_product_attention(q, k, v, attn_mask=bias)
    np.testing.assert_allclose(out.data, weights @ v.data, atol=1e-12)


def test_float64_mask_keeps_float32_attention_in_float32():
    q, k, v = (Tensor(a.astype(np.float32)) for a in _arrays((4, 3), (4, 3), (4, 3)))
    assert scaled_dot_product_attention(q, k, v, attn_mask=np.zeros((4, 4))).dtype == np.float32


def test_integer_mask_is_rejected():
    q, k, v = _t64((4, 3), (4, 3), (4, 3))
    with pytest.raises(TypeError, match="boolean or floating"):
        scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 4), dtype=np.int64))


def test_fully_masked_rows_give_zeros_and_no_nan_forward_or_backward():
    q, k, v = _t64((2, 5, 4), (2, 5, 4), (2, 5, 4), seed=1)
    mask = causal_mask(5).data.copy()
    mask[2] = False                              # query 2 has no key left
    for attn_mask in (mask, np.where(mask, 0.0, -np.inf)):
        for t in (q, k, v):
            t.grad = None
        out = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        assert not np.isnan(out.data).any()
        np.testing.assert_array_equal(out.data[:, 2], 0.0)
        (out * out).sum().backward()
        for t in (q, k, v):
            assert np.isfinite(t.grad.data).all()
        np.testing.assert_array_equal(q.grad.data[:, 2], 0.0)


def test_changing_future_tokens_changes_no_earlier_output():
    x = _arrays((2, 7, 4), seed=2)[0]
    out = scaled_dot_product_attention(Tensor(x), Tensor(x), Tensor(x), is_causal=True).data
    y = x.copy()
    y[:, 4:] = _arrays((2, 3, 4), seed=3)[0]
    out2 = scaled_dot_product_attention(Tensor(y), Tensor(y), Tensor(y), is_causal=True).data
    np.testing.assert_array_equal(out[:, :4], out2[:, :4])
    assert not np.allclose(out[:, 4:], out2[:, 4:])


def test_gradients_do_not_flow_to_masked_future_positions():
    q, k, v = _t64((1, 5, 3), (1, 5, 3), (1, 5, 3), seed=4)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    out[:, :2].sum().backward()                  # only outputs 0 and 1
    np.testing.assert_array_equal(k.grad.data[:, 2:], 0.0)
    np.testing.assert_array_equal(v.grad.data[:, 2:], 0.0)


def test_dropout_p_one_drops_everything_and_rejects_out_of_range():
    q, k, v = _t64((3, 2), (3, 2), (3, 2))
    np.testing.assert_array_equal(scaled_dot_product_attention(q, k, v, dropout_p=1.0).data, 0.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.5)


def test_sdpa_passes_gradcheck():
    q, k, v = _t64((2, 3, 4), (2, 5, 4), (2, 5, 3), seed=5)
    assert gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c), [q, k, v])


def test_sdpa_with_causal_and_padding_masks_passes_gradcheck():
    q, k, v = _t64((1, 2, 4, 3), (1, 2, 4, 3), (1, 2, 4, 2), seed=6)
    assert gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, is_causal=True), [q, k, v])
    mask = np.ones((4, 4), dtype=bool)
    mask[:, 3] = False
    mask[1] = False                              # a fully masked row inside the check
    assert gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, attn_mask=mask), [q, k, v])


def test_sdpa_with_a_learned_float_mask_passes_gradcheck():
    q, k, v, bias = _t64((3, 2), (4, 2), (4, 2), (3, 4), seed=7)
    assert gradcheck(lambda a, b, c, m: scaled_dot_product_attention(a, b, c, attn_mask=m), [q, k, v, bias])


@requires_torch
@pytest.mark.parametrize("case", ["plain", "causal", "bool_mask", "float_mask", "scale", "cross_length"])
def test_sdpa_matches_torch(case):
    F = torch.nn.functional
    shapes = [(2, 3, 5, 4), (2, 3, 5, 4), (2, 3, 5, 6)]
    kwargs = {}
    if case == "causal":
        kwargs = {"is_causal": True}
    elif case == "bool_mask":
        mask = np.random.default_rng(8).random((5, 5)) > 0.3
        mask[:, 0] = True                        # torch's fused path: keep every row non-empty
        kwargs = {"attn_mask": mask}
    elif case == "float_mask":
        kwargs = {"attn_mask": np.random.default_rng(9).standard_normal((2, 1, 5, 5))}
    elif case == "scale":
        kwargs = {"scale": 0.3}
    elif case == "cross_length":
        shapes = [(2, 3, 4, 4), (2, 3, 6, 4), (2, 3, 6, 2)]
        kwargs = {"is_causal": True}
    torch_kwargs = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    compare_with_torch(lambda q, k, v: scaled_dot_product_attention(q, k, v, **kwargs),
                       lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **torch_kwargs),
                       *_arrays(*shapes, seed=10))


@requires_torch
def test_sdpa_fully_masked_row_matches_torch_zeros():
    mask = causal_mask(4).data.copy()
    mask[1] = False
    compare_with_torch(lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=mask),
                       lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
                           q, k, v, attn_mask=torch.tensor(mask)),
                       *_arrays((1, 4, 3), (1, 4, 3), (1, 4, 3), seed=12))


# ---- MultiheadAttention ---------------------------------------------------------------------------------

def test_mha_parameters_have_torch_names_and_shapes():
    mha = MultiheadAttention(8, 2)
    assert {n: p.shape for n, p in mha.named_parameters()} == {
        "in_proj_weight": (24, 8), "in_proj_bias": (24,), "out_proj.weight": (8, 8), "out_proj.bias": (8,)}
    assert [n for n, _ in MultiheadAttention(8, 2, bias=False).named_parameters()] == ["in_proj_weight",
                                                                                       "out_proj.weight"]


def test_mha_initialises_biases_to_zero():
    mha = MultiheadAttention(8, 4)
    assert not mha.in_proj_bias.data.any() and not mha.out_proj.bias.data.any()
    bound = np.sqrt(6.0 / (8 + 24))
    assert np.abs(mha.in_proj_weight.data).max() <= bound


def test_mha_rejects_embed_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(10, 3)


def test_mha_rejects_wrong_input_width():
    with pytest.raises(ValueError, match="embed_dim=8"):
        x = Tensor(np.zeros((3, 2, 5)))
        MultiheadAttention(8, 2)(x, x, x)


@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_shapes_in_both_layouts(batch_first):
    mha = MultiheadAttention(8, 2, batch_first=batch_first)
    q = Tensor(np.zeros((3, 5, 8), dtype=np.float32))       # (B, L, E) or (L, B, E)
    kv = Tensor(np.zeros((3, 7, 8), dtype=np.float32) if batch_first else np.zeros((7, 5, 8), dtype=np.float32))
    out, w = mha(q, kv, kv)
    B = 3 if batch_first else 5
    L = 5 if batch_first else 3
    assert out.shape == q.shape and w.shape == (B, L, 7)
    _, per_head = mha(q, kv, kv, average_attn_weights=False)
    assert per_head.shape == (B, 2, L, 7)


def test_mha_batch_first_is_the_transposed_computation():
    a = _mha64(8, 2)
    b = _mha64(8, 2, batch_first=True)
    x = _arrays((4, 3, 8), seed=13)[0]
    out_a, w_a = a(Tensor(x), Tensor(x), Tensor(x))
    xb = Tensor(np.ascontiguousarray(x.transpose(1, 0, 2)))
    out_b, w_b = b(xb, xb, xb)
    np.testing.assert_allclose(out_b.data, out_a.data.transpose(1, 0, 2), atol=1e-12)
    np.testing.assert_allclose(w_b.data, w_a.data, atol=1e-12)


def test_mha_fused_self_attention_equals_separate_projections():
    mha = _mha64(8, 2, batch_first=True)
    x = _arrays((2, 4, 8), seed=14)[0]
    t = Tensor(x)
    fused, _ = mha(t, t, t)
    separate, _ = mha(Tensor(x), Tensor(x.copy()), Tensor(x.copy()))
    np.testing.assert_allclose(fused.data, separate.data, atol=1e-12)


def test_mha_bool_attn_mask_true_means_blocked():
    mha = _mha64(8, 2, batch_first=True)
    x = Tensor(_arrays((2, 5, 8), seed=15)[0])
    _, w = mha(x, x, x, attn_mask=~causal_mask(5).data)
    np.testing.assert_array_equal(np.triu(w.data, k=1), 0.0)
    _, w_causal = mha(x, x, x, is_causal=True)
    np.testing.assert_allclose(w_causal.data, w.data, atol=1e-12)


def test_mha_key_padding_mask_hides_padded_keys():
    mha = _mha64(8, 2, batch_first=True)
    x = _arrays((2, 5, 8), seed=16)[0]
    pad = np.zeros((2, 5), dtype=bool)
    pad[1, 3:] = True                            # the second sequence is 3 tokens long
    out, w = mha(Tensor(x), Tensor(x), Tensor(x), key_padding_mask=pad)
    np.testing.assert_array_equal(w.data[1, :, 3:], 0.0)
    y = x.copy()
    y[1, 3:] = 99.0                              # whatever sits in the padding
    out2, _ = mha(Tensor(y[:, :3]), Tensor(y), Tensor(y), key_padding_mask=pad)
    np.testing.assert_allclose(out2.data[1], out.data[1, :3], atol=1e-10)


def test_mha_unbatched_input_equals_one_batch_row():
    mha = _mha64(8, 4)
    x = _arrays((6, 2, 8), seed=17)[0]
    out, w = mha(Tensor(x), Tensor(x), Tensor(x))
    single, w1 = mha(Tensor(x[:, 1]), Tensor(x[:, 1]), Tensor(x[:, 1]))
    assert single.shape == (6, 8) and w1.shape == (6, 6)
    np.testing.assert_allclose(single.data, out.data[:, 1], atol=1e-12)
    np.testing.assert_allclose(w1.data, w.data[1], atol=1e-12)


def test_mha_causal_output_ignores_future_tokens():
    mha = _mha64(8, 2, batch_first=True)
    x = _arrays((1, 6, 8), seed=18)[0]
    out, _ = mha(Tensor(x), Tensor(x), Tensor(x), is_causal=True)
    x[:, 3:] += 5.0
    out2, _ = mha(Tensor(x), Tensor(x), Tensor(x), is_causal=True)
    np.testing.assert_allclose(out2.data[:, :3], out.data[:, :3], atol=1e-12)


def test_mha_need_weights_false_returns_none():
    mha = MultiheadAttention(8, 2)
    x = Tensor(np.ones((3, 1, 8), dtype=np.float32))
    assert mha(x, x, x, need_weights=False)[1] is None


def test_mha_dropout_only_in_training_and_repeatable_with_seed():
    manual_seed(3)
    mha = MultiheadAttention(8, 2, dropout=0.4, batch_first=True)
    x = Tensor(_arrays((2, 6, 8), seed=19)[0].astype(np.float32))
    manual_seed(5)
    a, _ = mha(x, x, x)
    manual_seed(5)
    b, _ = mha(x, x, x)
    np.testing.assert_array_equal(a.data, b.data)
    mha.eval()
    c, w = mha(x, x, x)
    assert not np.allclose(a.data, c.data)
    np.testing.assert_allclose(w.data.sum(-1), 1.0, atol=1e-5)
    plain = MultiheadAttention(8, 2, batch_first=True)
    plain.load_state_dict(mha.state_dict())
    np.testing.assert_allclose(plain(x, x, x)[0].data, c.data, atol=1e-6)


def test_mha_passes_gradcheck_for_inputs_and_parameters():
    mha = _mha64(4, 2, batch_first=True)
    q, k, v = _t64((1, 3, 4), (1, 3, 4), (1, 3, 4), seed=20)
    params = list(mha.parameters())
    assert gradcheck(lambda a, b, c, *_: mha(a, b, c, is_causal=True)[0], [q, k, v, *params])


def test_mha_self_attention_passes_gradcheck():
    mha = _mha64(4, 2)
    (x,) = _t64((3, 2, 4), seed=21)
    assert gradcheck(lambda t, *_: mha(t, t, t)[0], [x, *mha.parameters()])


@requires_torch
@pytest.mark.parametrize("batch_first", [False, True])
def test_mha_matches_torch_cross_attention(batch_first):
    mha = _mha64(8, 2, batch_first=batch_first)
    ref = _torch_mha_like(mha, batch_first=batch_first)
    shapes = [(2, 3, 8), (2, 5, 8), (2, 5, 8)] if batch_first else [(3, 2, 8), (5, 2, 8), (5, 2, 8)]
    compare_with_torch(lambda q, k, v: mha(q, k, v)[0], lambda q, k, v: ref(q, k, v)[0], *_arrays(*shapes, seed=22))
    compare_with_torch(lambda q, k, v: mha(q, k, v)[1], lambda q, k, v: ref(q, k, v)[1], *_arrays(*shapes, seed=23))


@requires_torch
def test_mha_self_attention_with_masks_matches_torch():
    mha = _mha64(8, 4, batch_first=True)
    ref = _torch_mha_like(mha, batch_first=True)
    blocked = ~causal_mask(5).data
    pad = np.zeros((2, 5), dtype=bool)
    pad[0, 4] = True
    kwargs = {"attn_mask": blocked, "key_padding_mask": pad}
    torch_kwargs = {k: torch.tensor(v) for k, v in kwargs.items()}
    for pick in (0, 1):
        compare_with_torch(lambda x: mha(x, x, x, **kwargs)[pick], lambda x: ref(x, x, x, **torch_kwargs)[pick],
                           _arrays((2, 5, 8), seed=24)[0])


@requires_torch
def test_mha_per_head_float_mask_and_unbatched_match_torch():
    mha = _mha64(6, 3)
    ref = _torch_mha_like(mha)
    mask = np.random.default_rng(25).standard_normal((2 * 3, 4, 4))       # (B*h, L, S)
    compare_with_torch(lambda x: mha(x, x, x, attn_mask=mask, average_attn_weights=False)[1],
                       lambda x: ref(x, x, x, attn_mask=torch.tensor(mask), average_attn_weights=False)[1],
                       _arrays((4, 2, 6), seed=26)[0])
    compare_with_torch(lambda x: mha(x, x, x)[0], lambda x: ref(x, x, x)[0], _arrays((4, 6), seed=27)[0])


@requires_torch
def test_mha_state_dict_loads_into_torch_and_back():
    mha = MultiheadAttention(8, 2)
    ref = torch.nn.MultiheadAttention(8, 2)
    ref.load_state_dict({k: torch.tensor(v) for k, v in mha.state_dict().items()})
    back = MultiheadAttention(8, 2)
    back.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    for name, value in mha.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], value)


# ---- Embedding and positions ------------------------------------------------------------------------

def test_embedding_looks_up_rows_in_the_shape_of_the_ids():
    emb = Embedding(10, 4)
    ids = np.array([[1, 2, 2], [9, 0, 1]])
    out = emb(Tensor(ids))
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    assert emb(np.array(3)).shape == (4,)


def test_embedding_rejects_float_and_out_of_range_ids():
    emb = Embedding(5, 2)
    with pytest.raises(TypeError, match="integer ids"):
        emb(np.array([1.0]))
    with pytest.raises(IndexError, match=r"\[0, 4\]"):
        emb(np.array([5]))
    with pytest.raises(IndexError, match=r"\[0, 4\]"):
        emb(np.array([-1]))


def test_embedding_gradient_accumulates_repeated_ids():
    emb = Embedding(6, 3)
    emb.weight.data = emb.weight.data.astype(np.float64)
    ids = np.array([[1, 4, 1], [1, 0, 4]])
    grad_out = np.random.default_rng(28).standard_normal((2, 3, 3))
    (emb(ids) * Tensor(grad_out)).sum().backward()
    expected = np.zeros((6, 3))
    np.add.at(expected, ids, grad_out)
    np.testing.assert_allclose(emb.weight.grad.data, expected, atol=1e-12)
    np.testing.assert_array_equal(emb.weight.grad.data[[2, 3, 5]], 0.0)


def test_embedding_passes_gradcheck():
    emb = Embedding(5, 3)
    emb.weight.data = emb.weight.data.astype(np.float64)
    ids = np.array([0, 3, 3, 1])
    assert gradcheck(lambda w: emb(ids), [emb.weight])


@requires_torch
def test_embedding_matches_torch_forward_and_weight_gradient():
    emb = Embedding(7, 4)
    emb.weight.data = emb.weight.data.astype(np.float64)
    ref = torch.nn.Embedding(7, 4).double()
    ref.weight.data = torch.tensor(emb.weight.data.copy())
    ids = np.array([[6, 0, 2, 2], [1, 1, 1, 5]])
    out, ref_out = emb(ids), ref(torch.tensor(ids))
    np.testing.assert_allclose(out.data, ref_out.detach().numpy())
    g = np.random.default_rng(29).standard_normal(out.shape)
    (out * Tensor(g)).sum().backward()
    (ref_out * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(emb.weight.grad.data, ref.weight.grad.numpy(), atol=1e-12)


def test_sinusoidal_positions_follow_the_formula():
    pe = sinusoidal_positions(20, 6).data
    t = np.arange(20)[:, None]
    for i in range(3):
        angle = t[:, 0] / 10000 ** (2 * i / 6)
        np.testing.assert_allclose(pe[:, 2 * i], np.sin(angle), atol=1e-6)
        np.testing.assert_allclose(pe[:, 2 * i + 1], np.cos(angle), atol=1e-6)
    assert pe.dtype == np.float32 and not sinusoidal_positions(3, 4).requires_grad


def test_sinusoidal_positions_with_odd_width_end_with_a_sine():
    pe = sinusoidal_positions(5, 5).data
    angle = np.arange(5) / 10000 ** (4 / 5)
    np.testing.assert_allclose(pe[:, 4], np.sin(angle), atol=1e-6)


def test_positions_break_permutation_equivariance():
    mha = _mha64(8, 2, batch_first=True)
    x = _arrays((1, 6, 8), seed=30)[0]
    perm = np.array([5, 3, 1, 0, 2, 4])
    out, _ = mha(Tensor(x), Tensor(x), Tensor(x))
    out_p, _ = mha(Tensor(x[:, perm]), Tensor(x[:, perm]), Tensor(x[:, perm]))
    np.testing.assert_allclose(out_p.data, out.data[:, perm], atol=1e-12)     # blind to order
    pe = sinusoidal_positions(6, 8).data.astype(np.float64)
    h, hp = Tensor(x + pe), Tensor(x[:, perm] + pe)
    assert not np.allclose(mha(hp, hp, hp)[0].data, mha(h, h, h)[0].data[:, perm], atol=1e-6)


# ---- SelfAttentionFused: the fast path against the composition -----------------------------------

from hypothesis import given
from hypothesis import strategies as st

from strategies import SETTINGS
from tinytorch.nn.attention import SelfAttentionFused


def _mha_both_ways(mha, x: np.ndarray, upstream: np.ndarray, **masks):
    """(output, input gradient, parameter gradients) through the fast path and through the general one.

    The fast path runs for need_weights=False; need_weights=True takes the general path (projection,
    head split, _attention_fused, merge), whose output is the same computation.
    """
    results = []
    for need_weights in (False, True):
        mha.zero_grad()
        t = Tensor(x, requires_grad=True)
        out, _ = mha(t, t, t, need_weights=need_weights, **masks)
        out.backward(Tensor(upstream))
        results.append([out.data, t.grad.data] + [p.grad.data for p in mha.parameters()])
    return results


@SETTINGS
@given(B=st.integers(1, 3), T=st.integers(1, 6), heads=st.sampled_from([1, 2, 4]), bias=st.booleans(),
       mask=st.sampled_from(["none", "causal", "padding"]), seed=st.integers(0, 2**16))
def test_self_attention_fast_path_equals_the_general_path_in_values_and_every_gradient(B, T, heads, bias, mask, seed):
    rng = np.random.default_rng(seed)
    mha = MultiheadAttention(8, heads, bias=bias, batch_first=True).double()
    for p in mha.parameters():
        p.data = rng.standard_normal(p.shape)
    masks = {}
    if mask == "causal":
        masks["is_causal"] = True
    elif mask == "padding":
        pad = rng.random((B, T)) < 0.4             # True: a padded key; a sequence may lose every key
        masks["key_padding_mask"] = pad
    fast, general = _mha_both_ways(mha, rng.standard_normal((B, T, 8)), rng.standard_normal((B, T, 8)), **masks)
    for a, b in zip(fast, general):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_multihead_attention_takes_the_fused_primitive_only_without_weights_dropout_or_float_masks():
    mha = MultiheadAttention(8, 2, batch_first=True)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32))
    visited = []
    original = SelfAttentionFused.forward

    def spy(ctx, *args, **options):
        visited.append(True)
        return original(ctx, *args, **options)

    SelfAttentionFused.forward = staticmethod(spy)
    try:
        mha(x, x, x, need_weights=False)
        assert visited, "self-attention without weights should take the fused primitive"
        visited.clear()
        mha(x, x, x, need_weights=True)
        mha(x, x, x, need_weights=False, attn_mask=np.zeros((3, 3), dtype=np.float32))   # a float mask
        mha(x, Tensor(x.data.copy()), Tensor(x.data.copy()), need_weights=False)        # not self-attention
        assert not visited, "weights, float masks and cross-attention go the general way"
    finally:
        SelfAttentionFused.forward = staticmethod(original)


def test_self_attention_fused_gradcheck_in_float64():
    rng = np.random.default_rng(4)
    x, w, b = (Tensor(rng.standard_normal(shape), requires_grad=True) for shape in [(2, 4, 6), (18, 6), (18,)])
    keep = causal_mask(4).data
    assert gradcheck(lambda x, w, b: SelfAttentionFused.apply(x, w, b, num_heads=3, keep=keep), [x, w, b])


def test_self_attention_fused_buffers_are_not_reused_while_a_graph_still_holds_them():
    """Workspace buffers: two layers' forwards before either backward, and a retained graph run twice."""
    rng = np.random.default_rng(6)
    layers = [MultiheadAttention(8, 2, batch_first=True).double() for _ in range(2)]
    x = Tensor(rng.standard_normal((2, 5, 8)), requires_grad=True)

    def run(retain_graph=False, twice=False):
        h = x
        for mha in layers:
            h = h + mha(h, h, h, need_weights=False, is_causal=True)[0]
        loss = (h * h).sum()
        x.grad = None
        for mha in layers:
            mha.zero_grad()
        loss.backward(retain_graph=retain_graph or twice)
        if twice:
            loss.backward()                             # accumulates: twice the gradient
        return [x.grad.data.copy()] + [p.grad.data.copy() for mha in layers for p in mha.parameters()]

    once = run()
    for a, b in zip(once, run()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(once, run(twice=True)):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-12, atol=1e-12)
