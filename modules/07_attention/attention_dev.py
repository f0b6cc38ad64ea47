# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
r"""
# Attention

A convolution looks at a fixed neighbourhood: the pixel's 3×3 window, decided
when the network was designed. Language does not work like that. In *"The
animal didn't cross the street because it was too tired"*, the word that tells
you what *it* means is six words back; change *tired* to *wide* and the answer
moves to *street*. What a token should look at depends on what the tokens
*say*, not on where they sit.

**Attention** is the layer that decides where to look from the data itself.
Every token emits a *query* ("what am I looking for?"), a *key* ("what do I
contain?") and a *value* ("what do I pass on if chosen?"). Each query is
compared with every key, the comparison scores become weights that sum to one,
and the token's output is the weighted average of the values. It is a soft,
differentiable dictionary lookup, and it is the heart of every Transformer:
GPT, BERT, ViT, Whisper.

In this chapter you build:

- `scaled_dot_product_attention`: the functional core, with PyTorch's name,
  arguments and mask semantics;
- `causal_mask`: the mask that stops a token from reading the future, which is
  what makes a language model a *language model*;
- `MultiheadAttention`: several attention patterns side by side, as a Module
  with PyTorch's parameters, so its `state_dict` loads into `torch.nn`;
- `Embedding`: integer token ids to vectors, the first layer of every language model;
- positional encodings, sinusoidal and learned, because attention on its own
  cannot tell word order.

The systems story is one number: attention builds a **T × T** table of scores
for a sequence of T tokens. Double the context and that table grows four times.
You will measure it on your machine; it is why long context is expensive and
why FlashAttention exists.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp nn.attention

# %%
#| export
from __future__ import annotations

import math

import numpy as np

from tinytorch.core.function import Function
from tinytorch.core.ops import where
from tinytorch.core.tensor import Tensor
from tinytorch.nn import init
from tinytorch.nn.activation import softmax, workspace
from tinytorch.nn.layers import Linear
from tinytorch.nn.module import Module, Parameter

# %%
import time
import tracemalloc

import matplotlib.pyplot as plt

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
r"""
## Background: attention as arithmetic

Take a sequence of T tokens, each already a vector. Three linear maps turn the
sequence into three matrices: queries $Q \in \mathbb{R}^{T\times d}$, keys
$K \in \mathbb{R}^{S\times d}$ and values $V \in \mathbb{R}^{S\times d_v}$
(in self-attention S = T: the sequence attends to itself). Then

$$
\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right) V .
$$

Read it in three steps:

1. **Scores** $QK^\top$, shape (T, S): entry (i, j) is the dot product of query i
   with key j, large when they point the same way. Cost: $T \cdot S \cdot d$
   multiply-adds.
2. **Weights** = softmax of each row: the scores of query i become non-negative
   weights that sum to 1 (chapter 03's stable softmax).
3. **Output** = weights @ V, shape (T, $d_v$): row i is a weighted average of the
   value rows. Cost: $T \cdot S \cdot d_v$ multiply-adds.

**Why divide by $\sqrt{d}$?** If the entries of q and k are independent with
unit variance, $q\cdot k$ is a sum of d such products and has variance d. With
d = 64 the scores have a standard deviation of 8, softmax turns them into an
almost one-hot row, and a one-hot softmax passes almost no gradient to the
scores that lost. Dividing by $\sqrt d$ puts the scores back at unit scale
whatever the head size. We measure it rather than take it on trust:
"""

# %%
rng = np.random.default_rng(0)
print(f"{'d':>5} {'std of q.k':>11} {'std scaled':>11} {'mean max weight':>16} {'scaled':>8}")
for d in (4, 16, 64, 256):
    q = rng.standard_normal((512, d))
    k = rng.standard_normal((64, d))
    raw = q @ k.T                                             # (512, 64) scores
    top_raw = softmax(Tensor(raw)).data.max(axis=-1).mean()  # how one-hot the rows are
    top_scaled = softmax(Tensor(raw / np.sqrt(d))).data.max(axis=-1).mean()
    print(f"{d:>5} {raw.std():>11.2f} {(raw / np.sqrt(d)).std():>11.2f} {top_raw:>16.3f} {top_scaled:>8.3f}")

# %% [markdown]
r"""
Without scaling, the score spread grows like $\sqrt d$ and the biggest weight
in a row heads for 1 (the softmax *saturates*); with scaling it stays put.

**Memory is the catch.** The weights form a (T, S) matrix for every sequence in
the batch and every head: $B \cdot h \cdot T \cdot S$ numbers. Everything else
in a Transformer layer grows like T; this grows like $T^2$. At T = 4096 with 16
heads in float32 that is 1 GiB for one sequence, one layer. Section
*Systems analysis* measures it.

**Masks** decide which keys a query may look at. A *causal* mask lets token i
see tokens 0..i only, so a model trained to predict token i+1 cannot cheat by
reading it. A *padding* mask hides the filler tokens that make short sequences
as long as the longest in a batch. A masked score is replaced by a huge
negative number before the softmax, so its weight is $e^{-\text{huge}} = 0$.
"""

# %% [markdown]
r"""
## Implementation

### Masks

We follow PyTorch's `scaled_dot_product_attention`: a **boolean** mask says
which positions *take part*: True = this query may attend to this key. A
**float** mask is *added* to the scores (0 = no change, $-\infty$ = masked),
which also lets a model add learned biases such as ALiBi.

`causal_mask(T)` is the boolean lower-triangular matrix: row i is True in
columns 0..i. It is one NumPy call, so it is given; the figure after the mask
tests draws it, next to a padding mask and what both do to the weights.
"""


# %%
#| export
def causal_mask(L: int, S: int | None = None) -> Tensor:
    """(L, S) boolean mask, True where query i may attend to key j, i.e. j <= i (S defaults to L)."""
    S = L if S is None else S
    return Tensor(np.tril(np.ones((L, S), dtype=bool)))


# %% [markdown]
r"""
Masking inside the attention needs care, because the obvious ways produce NaN:

- Replacing scores by $-\infty$ works until a row is masked *entirely* (a
  padding token whose every key is padding): softmax subtracts the row maximum,
  $-\infty - (-\infty)$ is NaN, and the NaN spreads through the backward pass
  to every weight.
- Adding a large negative number instead avoids the NaN, but in a row masked
  entirely every score is then the same huge negative number, so the query
  averages over exactly the keys it must not see, and gradients flow to them.

We **replace** a masked score with the most negative finite number of its dtype
(`scores * keep + fill`, where `keep` is 0/1 and `fill` is 0 or the minimum),
so the softmax stays finite, masked weights come out as exactly 0, and no
gradient reaches a masked score (it was multiplied by 0). Then we multiply the
weights by `keep` once more: in a row with no key left the softmax would have
spread its weight evenly over the masked keys, and the multiplication sets that
row to 0. PyTorch's `scaled_dot_product_attention` returns zeros for such a
row too.

`_split_mask` turns any mask into these pieces: `keep` (boolean array or None)
and `bias` (a float tensor to add, or None). A float mask's $-\infty$ entries
become `keep = False`, so they get the same NaN-free treatment.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _split_mask(mask, true_means_keep: bool = True):
    """A mask as (keep, bias): `keep` a boolean array or None, `bias` a float Tensor to add or None."""
    if isinstance(mask, Tensor) and mask.requires_grad:
        return None, mask                                  # a learned bias: add it as it is
    array = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if array.dtype == np.bool_:
        return (array if true_means_keep else ~array), None
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"attention mask must be boolean or floating point, not {array.dtype}")
    keep = array != -np.inf                                # -inf in a float mask means 'masked'
    bias = Tensor(np.where(keep, array, 0.0).astype(array.dtype))
    return (None if keep.all() else keep), bias


def _attention(query: Tensor, key: Tensor, value: Tensor, keep=None, bias=None,
               dropout_p: float = 0.0, scale: float | None = None) -> tuple[Tensor, Tensor]:
    """softmax(q k^T * scale + bias, masked by keep) @ v; returns (output, attention weights).

    Args: query (..., L, d), key (..., S, d), value (..., S, dv) Tensors; keep, a boolean array
        broadcastable to (..., L, S) (True = may attend) or None; bias, a float Tensor to add or None.
    Returns: (output (..., L, dv), weights (..., L, S)); all Tensor operations, so 09 can differentiate.
    """
    # 1. scores = (query @ key.transpose(-2, -1)) * scale, scale defaulting to 1 / sqrt(d).
    # 2. Add bias (cast a non-trainable bias to the scores' dtype: a float64 mask must not upcast).
    # 3. Mask by REPLACING: scores * on + fill, with on = keep as 0/1 and fill = 0 or
    #    np.finfo(dtype).min; not -inf (a fully masked row would give nan).
    # 4. softmax over the last axis, then multiply by `on` again: a row with no key left becomes 0.
    # 5. Dropout (dropout_p > 0): keep a weight with probability 1 - p (draws from init.generator()),
    #    scale the kept ones by 1 / (1 - p); p == 1 drops everything.
    ### BEGIN SOLUTION
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale       # (..., L, d) @ (..., d, S) -> (..., L, S)
    if bias is not None:
        if not bias.requires_grad and bias.dtype != scores.dtype:
            bias = Tensor(bias.data.astype(scores.dtype))  # a float64 mask must not turn float32 into float64
        scores = scores + bias
    if keep is not None:
        on = Tensor(keep.astype(scores.dtype))             # 1 where attending, 0 where masked
        fill = Tensor(np.where(keep, 0.0, np.finfo(scores.dtype).min).astype(scores.dtype))
        scores = scores * on + fill                        # masked scores become the dtype's minimum
    weights = softmax(scores, dim=-1)                      # (..., L, S), each row sums to 1
    if keep is not None:
        weights = weights * on                             # a row with no key left becomes all zeros
    if dropout_p > 0.0:
        kept = init.generator().random(weights.shape) >= dropout_p
        factor = 0.0 if dropout_p >= 1.0 else 1.0 / (1.0 - dropout_p)
        weights = weights * Tensor((kept * factor).astype(weights.dtype))  # keeps the expected weight
    return weights @ value, weights                        # (..., L, S) @ (..., S, dv) -> (..., L, dv)
    ### END SOLUTION


# %% [markdown]
r"""
### Scaled dot-product attention

The public function has PyTorch's signature. Leading dimensions are batch
dimensions: (B, T, d) works, and so does (B, heads, T, d), which is what
multi-head attention will pass. `is_causal=True` builds the causal mask for
you; passing it together with `attn_mask` is an error, as PyTorch documents.
`dropout_p` drops attention weights (PyTorch's functional form applies it
whenever it is positive; the layer below passes 0 in eval mode).
"""


# %%
#| export
def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Tensor:
    """softmax(query @ key^T / sqrt(d) + mask) @ value over the last two dimensions.

    Args:
        query: (..., L, d); key: (..., S, d); value: (..., S, dv).
        attn_mask: boolean (True = may attend, as in PyTorch) or float (added to the
            scores), broadcastable to (..., L, S).
        dropout_p: probability of dropping each attention weight.
        is_causal: attend only to keys j <= i (cannot be combined with attn_mask).
        scale: multiplies the scores; defaults to 1/sqrt(d).
    Returns:
        (..., L, dv). A query with every key masked gets a row of zeros.
    """
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query {query.shape} and key {key.shape} "
                         "must have the same last dimension")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key {key.shape} and value {value.shape} "
                         "must have the same number of positions (second-to-last dimension)")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout_p must be between 0 and 1, got {dropout_p}")
    if is_causal and attn_mask is not None:
        raise ValueError("pass either attn_mask or is_causal=True, not both (is_causal builds the causal mask)")
    keep, bias = None, None
    if is_causal:
        keep = causal_mask(query.shape[-2], key.shape[-2]).data
    elif attn_mask is not None:
        keep, bias = _split_mask(attn_mask)
    output, _ = _attention(query, key, value, keep, bias, dropout_p, scale)
    return output


# %% [markdown]
r"""
The first test works an example small enough to check by hand. Two keys, one
query; the query points exactly along key 0, so after scaling its scores are
$[1/\sqrt 2 \cdot 2, 0] = [\sqrt 2, 0]$, the weights are
$\operatorname{softmax}([\sqrt 2, 0])$ and the output is that mix of the two
value rows. It also checks the shape rules with L ≠ S and with extra batch
dimensions, and that mismatched shapes fail with a message naming both.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_scaled_dot_product_attention", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_scaled_dot_product_attention():
    q = Tensor(np.array([[2.0, 0.0]]))                    # (L=1, d=2)
    k = Tensor(np.array([[1.0, 0.0], [0.0, 1.0]]))        # (S=2, d=2)
    v = Tensor(np.array([[10.0, 0.0], [0.0, 10.0]]))      # (S=2, dv=2)
    w = np.exp([np.sqrt(2), 0.0])
    w /= w.sum()
    expected = w @ v.data
    got = scaled_dot_product_attention(q, k, v)
    assert np.allclose(got.data, expected), f"hand-computed {expected}, got {got.data}"

    rng = np.random.default_rng(1)
    q = Tensor(rng.standard_normal((2, 3, 5, 8)).astype(np.float32))   # (B, h, L, d)
    k = Tensor(rng.standard_normal((2, 3, 7, 8)).astype(np.float32))   # (B, h, S, d)
    v = Tensor(rng.standard_normal((2, 3, 7, 4)).astype(np.float32))   # (B, h, S, dv)
    out = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5, 4), f"output shape should be (B, h, L, dv) = (2, 3, 5, 4), got {out.shape}"
    assert out.dtype == np.float32, f"float32 in should give float32 out, got {out.dtype}"
    # Each output row is a convex combination of value rows: it lies inside their range.
    assert (out.data <= v.data.max(axis=-2, keepdims=True) + 1e-6).all(), "output left the range of the values"
    try:
        scaled_dot_product_attention(q, Tensor(np.zeros((2, 3, 7, 6))), v)
    except ValueError as err:
        assert "same last dimension" in str(err), f"unhelpful error: {err}"
    else:
        raise AssertionError("query and key with different widths should raise ValueError")
    print("scaled_dot_product_attention: hand example, shapes and errors OK")


test_unit_scaled_dot_product_attention()

# %% [markdown]
r"""
The mask test checks the semantics and the NaN-freedom promised above:

- a key masked out has **no influence**: changing its value leaves the output unchanged;
- `is_causal=True` gives the same result as passing `causal_mask(T)`;
- a float mask with $-\infty$ behaves like the boolean mask;
- a query whose keys are *all* masked gets an output row of zeros, and the whole
  result contains no NaN.

(The gradient side of "no NaN" needs chapter 09's `backward`; the test suite
checks it, and you can rerun this cell after chapter 09.)
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_attention_masks", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_attention_masks():
    rng = np.random.default_rng(2)
    q, k, v = (Tensor(rng.standard_normal((1, 4, 3))) for _ in range(3))   # (B, T, d)
    mask = np.ones((4, 4), dtype=bool)
    mask[:, 2] = False                                   # nobody may look at key 2
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    v2 = Tensor(v.data.copy())
    v2.data[0, 2] += 100.0                               # change the masked key's value
    out2 = scaled_dot_product_attention(q, k, v2, attn_mask=mask)
    assert np.allclose(out.data, out2.data), "a masked key's value changed the output"

    causal = scaled_dot_product_attention(q, k, v, is_causal=True)
    explicit = scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(4))
    assert np.allclose(causal.data, explicit.data), "is_causal=True differs from attn_mask=causal_mask(T)"
    float_mask = np.where(causal_mask(4).data, 0.0, -np.inf)
    as_float = scaled_dot_product_attention(q, k, v, attn_mask=float_mask)
    assert np.allclose(as_float.data, causal.data), "a float mask with -inf should act like the boolean mask"

    mask = causal_mask(4).data.copy()
    mask[1, :] = False                                   # query 1 may look at nothing
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert not np.isnan(out.data).any(), "a fully masked row produced NaN"
    assert np.allclose(out.data[0, 1], 0.0), f"a fully masked row should be zeros, got {out.data[0, 1]}"
    try:
        scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(4), is_causal=True)
    except ValueError:
        pass
    else:
        raise AssertionError("attn_mask together with is_causal=True should raise ValueError")
    print("masks: masked keys are ignored, causal/float/bool agree, fully masked rows are zeros")


test_unit_attention_masks()

# %% [markdown]
r"""
What the masks look like. Six tokens, the last two of them padding (a
sequence of four, padded to the batch's length of six). Rows are queries,
columns are keys; a filled square means "may attend". The causal mask is the
lower triangle, the padding mask blanks the padding *keys* for every query,
and a GPT trained on padded batches uses both at once (their logical and).
The last panel shows the weights `_attention` computes under the combined
mask, for random queries and keys: zero exactly where the mask is empty, and
each row still sums to 1.
"""

# %%
T_demo, length = 6, 4                                            # 4 real tokens, 2 of padding
causal = causal_mask(T_demo).data                                # (T, T): key j <= query i
padding = np.broadcast_to(np.arange(T_demo) < length, (T_demo, T_demo))   # (T, T): key j is a real token
both = causal & padding
demo_rng = np.random.default_rng(9)
q_demo, k_demo, v_demo = (Tensor(demo_rng.standard_normal((T_demo, 4))) for _ in range(3))   # (T, d)
_, demo_weights = _attention(q_demo, k_demo, v_demo, both)      # (T, T)
zero_where_masked = bool(np.array_equal(demo_weights.data == 0, ~both))
rows_sum_to_one = bool(np.allclose(demo_weights.data.sum(-1), 1.0))
assert zero_where_masked and rows_sum_to_one, "the text says masked weights are 0 and rows sum to 1"

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), facecolor="white")   # an explicit light page: dark mode too
panels = [("causal_mask(6)", causal), (f"padding: keys {length}..5 hidden", padding),
          ("causal & padding", both), ("weights under causal & padding", demo_weights.data)]
for ax, (title, matrix) in zip(axes, panels):
    ax.set_facecolor("white")
    ax.imshow(matrix.astype(float), cmap="Blues", vmin=0, vmax=1.6)
    for (i, j), value in np.ndenumerate(matrix):
        label = ("1" if value else "0") if matrix.dtype == bool else ("0" if value == 0 else f"{value:.2f}")
        ax.text(j, i, label, ha="center", va="center", fontsize=7 if matrix.dtype != bool else 9, color="black")
    ax.set_title(title, fontsize=10, color="black")
    ax.set_xlabel("key j", color="black")
    ax.set_ylabel("query i", color="black")
    ax.set_xticks(range(T_demo))
    ax.set_yticks(range(T_demo))
    ax.tick_params(colors="black")
fig.tight_layout()
plt.show()
print(f"weights exactly 0 where masked: {zero_where_masked}; every row sums to 1: {rows_sum_to_one}")

# %% [markdown]
r"""
The defining property of a causal model deserves its own test: **changing
future tokens changes no earlier output**. We perturb every position from t = 3
on and require outputs 0..2 to be identical (not merely close: the masked
weights are exactly zero), while outputs from 3 on do change.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_causal_property", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_causal_property():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)          # (B, T, d)
    out = scaled_dot_product_attention(Tensor(x), Tensor(x), Tensor(x), is_causal=True)
    changed = x.copy()
    changed[:, 3:] = rng.standard_normal((2, 3, 4))                 # rewrite the future
    out2 = scaled_dot_product_attention(Tensor(changed), Tensor(changed), Tensor(changed), is_causal=True)
    assert np.array_equal(out.data[:, :3], out2.data[:, :3]), "changing tokens 3.. changed outputs 0..2"
    assert not np.allclose(out.data[:, 3:], out2.data[:, 3:]), "outputs 3.. should depend on tokens 3.."
    print("causal: the past never sees the future")


test_unit_causal_property()

# %% [markdown]
r"""
### The fast path: from scores to weights in one primitive

`_attention` is the clear version, and `scaled_dot_product_attention` keeps
using it. Between the two matrix products it runs about nine primitives over
the (..., L, S) scores: scale, multiply by the mask, add the fill, the max, the
shift, `exp`, the sum, the division, the second mask multiply. Each is one
sweep over the largest tensor of the layer, one more array, and one more node
whose saved arrays chapter 09's backward must walk. `MultiheadAttention`, the
layer a transformer runs at every step, takes a shortcut instead: **one**
primitive, `AttentionSoftmax`, computes the weights from the raw scores. Its
forward works in place on one buffer: scale, set the masked scores to
$-\infty$, shift by the row maximum, exponentiate, divide by the row sum. A row
with no key left has every entry $-\infty$; shifting it by 0 instead of its
maximum and dividing by 1 instead of its zero sum leaves exactly the zeros the
composition produces.

It also carries its own backward, the softmax derivative in one expression. For
weights $w = \operatorname{softmax}(s)$ along a row, $\partial w_j / \partial s_i =
w_j(\delta_{ij} - w_i)$, so for an upstream gradient $g$

$$\frac{\partial L}{\partial s_i} = w_i\Big(g_i - \sum_j g_j w_j\Big),$$

times the scale for the raw scores. A masked weight is 0, so no gradient
reaches a masked score, as before. Like chapter 03's `GELUTanh`, it is plain
NumPy on arrays, so the test checks it against finite differences without
chapter 09's engine. The systems analysis times both paths.
"""


# %%
#| export
_BLOCK = 1 << 16            # scores per block: 256 KB of float32, small enough to stay in a core's cache


def _matrix_blocks(shape: tuple) -> tuple[range, int, tuple]:
    """(starts, size, (L, S)): blocks of `size` whole (L, S) matrices, about _BLOCK elements each."""
    L, S = ((1,) + tuple(shape))[-2:]                  # a 1-D vector of scores is one row
    size = max(1, _BLOCK // max(1, L * S))
    return range(0, int(np.prod(shape, dtype=np.int64)) // max(1, L * S), size), size, (L, S)


def _softmax_rows_(w: np.ndarray, masked, scale: float) -> None:
    """In place: scores w (..., L, S) -> softmax(w * scale) over the last axis, masked entries 0.

    masked: a boolean array of w's shape (True = leave out) or None. A row with no key left
    stays all zeros. AttentionSoftmax runs it one block at a time.
    """
    if scale != 1.0:
        w *= scale
    if masked is not None:
        np.copyto(w, -np.inf, where=masked)               # masked scores leave the softmax
    top = w.max(axis=-1, keepdims=True)
    top[top == -np.inf] = 0.0                             # a row with no key left: shift by 0, not -inf
    w -= top
    np.exp(w, out=w)                                      # masked entries: exp(-inf) = 0
    total = w.sum(axis=-1, keepdims=True)
    total[total == 0] = 1.0                               # ... and that row stays 0 instead of 0 / 0
    w /= total


def _softmax_rows_backward_(g: np.ndarray, w: np.ndarray, d: np.ndarray, scale: float) -> None:
    """d = dL/ds = w * (g - sum(g * w)) * scale along the last axis, for weights w and their gradient g.

    d is written (it must not be g); g and w are only read.
    """
    np.multiply(g, w, out=d)                              # the row sums' terms
    row = d.sum(axis=-1, keepdims=True)                   # sum_j g_j w_j, one number per row
    np.subtract(g, row, out=d)
    d *= w
    if scale != 1.0:
        d *= scale


class AttentionSoftmax(Function):
    """softmax(scores * scale) over the last axis, masked scores left out: scores -> weights in one node.

    Options: keep, a boolean array broadcastable to the scores (True = may attend) or None;
    scale, a number. A row with no key left gets weights 0, as in _attention. Forward and
    backward work through the (L, S) matrices a block at a time, so that each block's
    sweeps stay in the CPU's cache.
    """

    @staticmethod
    def forward(ctx, scores, keep=None, scale=1.0):
        starts, size, (L, S) = _matrix_blocks(scores.shape)
        weights = np.empty_like(scores, dtype=np.result_type(scores.dtype, np.float16))   # the one buffer, float
        stack, source = weights.reshape(-1, L, S), scores.reshape(-1, L, S)          # (L, S) matrices in a row
        masked = None if keep is None else np.broadcast_to(~keep, scores.shape).reshape(-1, L, S)
        for i in starts:
            w = stack[i:i + size]
            np.multiply(source[i:i + size], scale, out=w)  # scaled while copied: one sweep
            _softmax_rows_(w, None if masked is None else masked[i:i + size], 1.0)
        ctx.scale = scale
        ctx.save_for_backward(weights)
        return weights

    @staticmethod
    def backward(ctx, grad):
        (weights,) = ctx.saved_arrays
        starts, size, (L, S) = _matrix_blocks(weights.shape)
        dscores = np.empty_like(weights)                  # dL/ds = w * (g - sum(g * w)) * scale
        w_stack, g_stack, d_stack = (a.reshape(-1, L, S) for a in (weights, grad, dscores))
        for i in starts:
            _softmax_rows_backward_(g_stack[i:i + size], w_stack[i:i + size], d_stack[i:i + size], ctx.scale)
        return (dscores,)


def _attention_fused(query: Tensor, key: Tensor, value: Tensor, keep=None, bias=None,
                     dropout_p: float = 0.0, scale: float | None = None) -> tuple[Tensor, Tensor]:
    """_attention's result with AttentionSoftmax between the two matrix products (same arguments)."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = query @ key.transpose(-2, -1)                 # (..., L, S), a batched matmul over the heads
    if bias is not None:                                   # a bias is added to scaled scores: scale first
        if not bias.requires_grad and bias.dtype != scores.dtype:
            bias = Tensor(bias.data.astype(scores.dtype))
        scores, scale = scores * scale + bias, 1.0
    weights = AttentionSoftmax.apply(scores, keep=keep, scale=scale)   # (..., L, S)
    if dropout_p > 0.0:
        kept = init.generator().random(weights.shape) >= dropout_p
        factor = 0.0 if dropout_p >= 1.0 else 1.0 / (1.0 - dropout_p)
        weights = weights * Tensor((kept * factor).astype(weights.dtype))
    return weights @ value, weights                        # (..., L, dv)


# %% [markdown]
"""
**Test.** `test_unit_attention_fused` checks that the fast path gives your
`_attention`'s outputs and weights (no mask, a causal mask, a padding mask
with a fully masked row, a float bias), that float32 stays float32, and that
the primitive's backward matches central finite differences.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_attention_fused", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_attention_fused():
    rng = np.random.default_rng(4)
    q, k, v = (Tensor(rng.standard_normal((2, 3, 5, 4))) for _ in range(3))   # (B, h, T, d)
    rows_gone = causal_mask(5).data.copy()
    rows_gone[2] = False                                 # query 2 may look at nothing
    bias = Tensor(rng.standard_normal((5, 5)))
    for keep, extra in [(None, None), (causal_mask(5).data, None), (rows_gone, None), (None, bias)]:
        out, weights = _attention(q, k, v, keep, extra)
        fast_out, fast_weights = _attention_fused(q, k, v, keep, extra)
        np.testing.assert_allclose(fast_out.data, out.data, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast_weights.data, weights.data, rtol=1e-12, atol=1e-12)
    assert np.all(fast_weights.data >= 0) and not np.isnan(_attention_fused(q, k, v, rows_gone)[0].data).any()
    small = Tensor(q.data.astype(np.float32))
    assert _attention_fused(small, small, small)[0].dtype == np.float32, "float32 in should give float32 out"

    scores = rng.standard_normal((2, 4, 6))
    keep = causal_mask(4, 6).data.copy()
    keep[1] = False
    upstream = rng.standard_normal(scores.shape)
    ctx = AttentionSoftmax(Tensor(scores))
    AttentionSoftmax.forward(ctx, scores, keep=keep, scale=0.7)
    (got,) = AttentionSoftmax.backward(ctx, upstream)
    numeric, h = np.zeros_like(scores), 1e-6
    for index in np.ndindex(scores.shape):
        plus, minus = scores.copy(), scores.copy()
        plus[index] += h
        minus[index] -= h
        up = AttentionSoftmax.forward(AttentionSoftmax(Tensor(plus)), plus, keep=keep, scale=0.7)
        down = AttentionSoftmax.forward(AttentionSoftmax(Tensor(minus)), minus, keep=keep, scale=0.7)
        numeric[index] = ((up - down) * upstream).sum() / (2 * h)
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-9)
    assert np.all(got[:, 1] == 0) and np.all(got[..., ~keep] == 0), "masked scores must get no gradient"
    print("fused attention: same outputs and weights as _attention, backward matches finite differences")


test_unit_attention_fused()


# %% [markdown]
r"""
### The fast path for self-attention: one primitive from x to the merged heads

`AttentionSoftmax` fused what happens *between* the two matrix products. In
self-attention (query, key and value all the same `x`, the case of every
transformer block) what happens *around* them costs as much again: the packed
projection `x @ W.T` and its bias add, three slices of it, a reshape and a
transpose per head split, the merge's transpose and reshape (a full copy), and
in backward one zero-filled (B, T, 3E) array per slice that the engine then adds
up. None of that is arithmetic; it is memory traffic and graph nodes.

`SelfAttentionFused` does all of it in one node, with four ideas:

- **Heads are strides, not copies.** The projection is one (B·T, E) × (E, 3E)
  GEMM whose result, read as (B, T, 3, h, hs), *is* q, k and v for every head:
  `transpose(2, 0, 3, 1, 4)` gives (3, B, h, T, hs) views, and BLAS reads a
  (T, hs) matrix with a row stride of 3E directly. The output is written
  through a (B, h, T, hs) view of a (B, T, h, hs) buffer, so the merged
  (B, T, E) result needs no copy either. Backward writes dq, dk, dv the same way
  into one (B, T, 3E) gradient, from which the projection's three gradients are
  one GEMM each.
- **One batch element at a time.** Scores, softmax and the product with v run
  on one (h, T, T) block (256 KB for h = 4, T = 128), which stays in the CPU's
  cache between the sweeps, as `AttentionSoftmax` does.
- **Keys down the columns.** It computes the scores transposed, k qᵀ of shape
  (S, L), one column per query, and runs the softmax down the columns. A max or
  sum along the last axis makes NumPy reduce 128 numbers at a time, row by row;
  down the columns it is an elementwise maximum or sum of whole rows, which
  NumPy vectorises (the systems analysis times both). The matrix products do
  not care: BLAS reads a transposed operand at no cost.
- **Buffers reused, not reallocated.** The packed projection, the weights it
  saves for backward, and backward's (B, T, 3E) gradient and scratch blocks
  come from chapter 03's `workspace()`: arrays that only this primitive ever
  sees, handed back step after step instead of fresh pages that fault on
  first touch.

It computes what `_project`, the head split, `_attention` and the merge
compute, up to rounding (its sums run in another order), so the test compares
them to twelve digits in float64, and checks its backward against finite
differences.
`MultiheadAttention` takes this path for self-attention with a boolean mask
(or none), no dropout and `need_weights=False`; anything else (a float mask,
dropout, returning the weights, cross-attention) goes the general way.
"""


# %%
#| export

def _closed_keys(keep: np.ndarray, dtype, shape: tuple) -> np.ndarray:
    """keep (..., L, S), True = may attend, as an additive mask in the transposed (..., S, L) layout.

    Returns a read-only view of `shape` (B, nh, S, L): 0 where a query may read a key, -inf where not.
    """
    shut = np.where(keep, 0.0, -np.inf).astype(dtype)
    shut = shut.reshape((1,) * (2 - shut.ndim) + shut.shape)   # at least (L, S)
    return np.broadcast_to(np.ascontiguousarray(np.swapaxes(shut, -1, -2)), shape)


def _softmax_columns_(w: np.ndarray, shut, scale: float) -> None:
    """In place: transposed scores w (..., S, L) -> softmax over axis -2 (the keys) of w * scale + shut.

    shut: 0 / -inf of w's shape, or None. A query with no key left keeps a column of zeros.
    Reductions down the columns (axis -2) are elementwise maxima and sums of whole rows,
    which NumPy vectorises; along the last axis they are slower (the systems analysis times both).
    """
    if scale != 1.0:
        w *= scale
    if shut is not None:
        w += shut                                         # masked scores become -inf
    top = w.max(axis=-2, keepdims=True)                   # (..., 1, L): each query's largest score
    top[top == -np.inf] = 0.0                             # a query with no key left: shift by 0
    w -= top
    np.exp(w, out=w)                                      # masked entries: exp(-inf) = 0
    total = w.sum(axis=-2, keepdims=True)
    total[total == 0] = 1.0                               # ... and its column stays 0 instead of 0 / 0
    w /= total


class SelfAttentionFused(Function):
    """Multi-head self-attention without the output projection: x (B, T, E) -> merged heads (B, T, E).

    Inputs: x (B, T, E), in_proj_weight (3E, E) and optionally in_proj_bias (3E,). Options:
    num_heads; keep, a boolean array broadcastable to (B, h, T, T) (True = may attend) or None.
    Computes softmax(q k^T / sqrt(hs), masked) v per head with q, k, v = x @ W.T + b split
    into heads, and returns the heads merged back to (B, T, E), ready for out_proj.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None, num_heads=1, keep=None):
        if x.dtype != weight.dtype:                          # as Tensor's @: no silent promotion
            raise TypeError(f"self-attention: input {x.shape} {x.dtype} and in_proj_weight {weight.shape} "
                            f"{weight.dtype}: dtypes differ; convert one, e.g. x.float() for a float32 layer")
        B, T, E = x.shape
        nh, hs = num_heads, E // num_heads
        x = np.ascontiguousarray(x)
        qkv = np.matmul(x.reshape(B * T, E), weight.T,        # (B*T, 3E): q, k, v in one GEMM,
                        out=workspace().empty((B * T, 3 * E), np.result_type(x, weight)))   # in a reused buffer
        if bias is not None:
            qkv += bias                                       # in place: our own array
        q, k, v = qkv.reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)   # each (B, nh, T, hs), views
        weights = workspace().empty((B, nh, T, T), qkv.dtype)   # (B, nh, S, L): one COLUMN per query
        merged = np.empty((B, T, nh, hs), dtype=qkv.dtype)   # the output, heads side by side
        y = merged.transpose(0, 2, 1, 3)                      # (B, nh, T, hs) view of it
        shut = None if keep is None else _closed_keys(keep, qkv.dtype, (B, nh, T, T))
        step, scale = max(1, _BLOCK // (nh * T * T)), 1.0 / math.sqrt(hs)
        for b in range(0, B, step):                           # a few batch elements: (step, nh, T, T) in cache
            s = slice(b, b + step)
            w = weights[s]
            np.matmul(k[s], q[s].swapaxes(-1, -2), out=w)     # scores, transposed: (step, nh, S, L)
            _softmax_columns_(w, None if shut is None else shut[s], scale)
            np.matmul(w.swapaxes(-1, -2), v[s], out=y[s])     # (step, nh, L, hs), written merged
        ctx.num_heads, ctx.scale, ctx.step = nh, scale, step
        ctx.save_for_backward(x, weight, qkv, weights)
        return merged.reshape(B, T, E)

    @staticmethod
    def backward(ctx, grad):
        x, weight, qkv, weights = ctx.saved_arrays
        B, T, E = x.shape
        nh, step, scale = ctx.num_heads, ctx.step, ctx.scale
        hs = E // nh
        q, k, v = qkv.reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)
        g = np.ascontiguousarray(grad, dtype=qkv.dtype).reshape(B, T, nh, hs).transpose(0, 2, 1, 3)
        dqkv = workspace().empty(qkv.shape, qkv.dtype)          # (B*T, 3E): every entry written below
        dq, dk, dv = dqkv.reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)
        scratch = workspace().empty((2, min(step, B), nh, T, T), qkv.dtype)   # dL/dw and dL/dscores, one block
        for b in range(0, B, step):
            s = slice(b, b + step)
            w, gs = weights[s], g[s]                          # w: (n, nh, S, L), transposed as in forward
            gw, d = scratch[:, :len(w)]
            np.matmul(w, gs, out=dv[s])                       # dv = w^T g (w is stored transposed)
            np.matmul(v[s], gs.swapaxes(-1, -2), out=gw)      # (dL/dw)^T = v g^T
            np.multiply(gw, w, out=d)                         # dL/ds = w * (g - sum(g * w)) * scale,
            column = d.sum(axis=-2, keepdims=True)            # the sum over each query's keys: a column
            np.subtract(gw, column, out=d)
            d *= w
            if scale != 1.0:
                d *= scale
            np.matmul(d.swapaxes(-1, -2), k[s], out=dq[s])    # dq = dscores k
            np.matmul(d, q[s], out=dk[s])                     # dk = dscores^T q
        needs = ctx.needs_input_grad
        dx = (dqkv @ weight).reshape(B, T, E) if needs[0] else None    # (B*T, 3E) @ (3E, E)
        dw = dqkv.T @ x.reshape(B * T, E) if needs[1] else None       # (3E, E)
        db = dqkv.sum(axis=0) if len(needs) > 2 and needs[2] else None
        return (dx, dw) if len(needs) == 2 else (dx, dw, db)

# %% [markdown]
"""
**Test.** `test_unit_self_attention_fused` checks that the primitive gives what
the composition gives (your `_attention` on the heads that `_project`, reshape
and transpose make, merged back), for no mask, a causal mask, a padding mask
that leaves a query nothing, and no bias; that float32 stays float32; and that
its backward (for x, the weight and the bias) matches central finite differences.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_self_attention_fused", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_self_attention_fused():
    rng = np.random.default_rng(5)
    B, T, E, nh = 2, 5, 6, 3
    x, weight, bias = rng.standard_normal((B, T, E)), rng.standard_normal((3 * E, E)), rng.standard_normal(3 * E)

    def composed(x, weight, bias, keep):
        """The slow way: project, split the heads, _attention, merge (all Tensor operations)."""
        qkv = Tensor(x) @ Tensor(weight).T + (Tensor(bias) if bias is not None else 0.0)
        q, k, v = (qkv[..., i * E:(i + 1) * E].reshape(B, T, nh, E // nh).transpose(1, 2) for i in range(3))
        return _attention(q, k, v, keep)[0].transpose(1, 2).reshape(B, T, E).data

    nothing_left = np.ones((B, 1, 1, T), dtype=bool)
    nothing_left[1, ..., :] = False                       # sequence 1 may attend to nothing at all
    for keep, b in [(None, bias), (causal_mask(T).data, bias), (nothing_left, bias), (causal_mask(T).data, None)]:
        inputs = (Tensor(x), Tensor(weight)) + ((Tensor(b),) if b is not None else ())
        fast = SelfAttentionFused.apply(*inputs, num_heads=nh, keep=keep)
        np.testing.assert_allclose(fast.data, composed(x, weight, b, keep), rtol=1e-12, atol=1e-12)
    small = SelfAttentionFused.apply(Tensor(x.astype(np.float32)), Tensor(weight.astype(np.float32)), num_heads=nh)
    assert small.dtype == np.float32, "float32 in should give float32 out"

    keep, upstream = causal_mask(T).data, rng.standard_normal((B, T, E))
    arrays = [x, weight, bias]
    ctx = SelfAttentionFused(*(Tensor(a, requires_grad=True) for a in arrays))
    SelfAttentionFused.forward(ctx, *arrays, num_heads=nh, keep=keep)
    grads = SelfAttentionFused.backward(ctx, upstream)

    def loss(*values):
        return (SelfAttentionFused.forward(SelfAttentionFused(*map(Tensor, values)), *values,
                                           num_heads=nh, keep=keep) * upstream).sum()

    h = 1e-6
    for which, (array, got) in enumerate(zip(arrays, grads)):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            plus, minus = [a.copy() for a in arrays], [a.copy() for a in arrays]
            plus[which][index] += h
            minus[which][index] -= h
            numeric[index] = (loss(*plus) - loss(*minus)) / (2 * h)
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-7)
    print("SelfAttentionFused: the composition's values, backward matches finite differences")


test_unit_self_attention_fused()

# %% [markdown]
r"""
### Multi-head attention

One attention pattern per layer is limiting: a token may need to look at the
previous word for grammar *and* at the subject of the sentence for meaning.
Multi-head attention runs h attentions side by side on smaller vectors. The
embedding of width E is projected to queries, keys and values of width E, each
split into h heads of width hs = E / h:

```
x (B, T, E) --Linear--> q, k, v (B, T, E) --reshape--> (B, T, h, hs) --transpose--> (B, h, T, hs)
attention per head                                                                -> (B, h, T, hs)
--transpose--> (B, T, h, hs) --reshape--> (B, T, E) --out_proj--> (B, T, E)
```

The matrix-product FLOPs are the same as for one head of width E (h heads ×
hs = E), but the score tensor holds h (T, T) matrices instead of one: more
heads cost memory, and the elementwise passes over it, not matrix arithmetic.

We mirror `torch.nn.MultiheadAttention` closely enough that its `state_dict`
has the same names and shapes:

- `in_proj_weight` (3E, E) **packs** the query, key and value projections:
  rows 0..E-1 for queries, E..2E-1 for keys, 2E..3E-1 for values;
  `in_proj_bias` (3E,) likewise; `out_proj` is a `Linear(E, E)`.
- Initialisation as in PyTorch: Xavier-uniform for `in_proj_weight`, zero biases.
- `batch_first=False` (PyTorch's default!) means inputs are (T, B, E);
  `batch_first=True` means (B, T, E); a 2-D input (T, E) is one unbatched sequence.
- `forward(query, key, value, key_padding_mask=None, need_weights=True,
  attn_mask=None, average_attn_weights=True, is_causal=False)` returns
  `(output, weights)`: the weights averaged over heads (B, L, S), or per head
  (B, h, L, S), or None when `need_weights=False`.

**Careful: the module's boolean masks mean the opposite of the function's.**
For `nn.MultiheadAttention`, `attn_mask` and `key_padding_mask` True means *not
allowed to attend* (PyTorch kept the older convention for this module). We copy
that so code moves between the two libraries unchanged, and convert inside.
`attn_mask` may be (L, S) or (B·h, L, S).

Two places where we differ on purpose: with `is_causal=True` and no `attn_mask`
we build the causal mask (PyTorch treats `is_causal` as a hint and insists on
the mask); and a query with every key masked gets zeros rather than PyTorch's
NaN. We leave out `kdim`/`vdim`, `add_bias_kv` and `add_zero_attn`.

When query, key and value are the same tensor (self-attention), one matmul with
the packed (3E, E) weight computes all three projections, which is faster than
three small ones (nanoGPT's `c_attn` does the same).
"""


# %% nbgrader={"grade": false, "grade_id": "impl_MultiheadAttention", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class MultiheadAttention(Module):
    """Multi-head attention with torch.nn.MultiheadAttention's parameters, masks and layouts."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be between 0 and 1, got {dropout}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = init.xavier_uniform_(Parameter(np.empty((3 * embed_dim, embed_dim), dtype=np.float32)))
        self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype=np.float32)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            init.zeros_(self.out_proj.bias)

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Queries, keys and values (each (B, T, E)) from the packed in_proj_weight.

        Rows 0..E-1 of in_proj_weight (3E, E) project the query, E..2E-1 the key, 2E..3E-1 the
        value; in_proj_bias (3E,) is split the same way (it may be None).
        """
        # Self-attention (query is key is value): ONE matmul x @ W.T -> (B, T, 3E), then slice the
        # last axis into three E-wide pieces. Otherwise project each input with its own E rows of W.
        # Pitfall: x @ W.T, not W @ x: the features are the last axis of (B, T, E).
        ### BEGIN SOLUTION
        E, W, b = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:                  # self-attention: one (3E, E) matmul
            qkv = query @ W.T                              # (B, T, E) @ (E, 3E) -> (B, T, 3E)
            qkv = qkv + b if b is not None else qkv
            return qkv[..., :E], qkv[..., E:2 * E], qkv[..., 2 * E:]
        parts = []
        for i, x in enumerate((query, key, value)):
            y = x @ W[i * E:(i + 1) * E].T                 # (B, T, E) @ (E, E) -> (B, T, E)
            parts.append(y + b[i * E:(i + 1) * E] if b is not None else y)
        return tuple(parts)
        ### END SOLUTION

    def _masks(self, attn_mask, key_padding_mask, is_causal, B, L, S):
        """Combine attn_mask ((L, S) or (B*h, L, S)) and key_padding_mask ((B, S)) into keep/bias for (B, h, L, S)."""
        keep = bias = None
        if attn_mask is not None:
            keep, bias = _split_mask(attn_mask, true_means_keep=False)   # PyTorch's module: True = masked
            if attn_mask.ndim == 3:                        # (B*h, L, S) -> (B, h, L, S)
                keep = None if keep is None else keep.reshape(B, self.num_heads, L, S)
                bias = None if bias is None else bias.reshape(B, self.num_heads, L, S)
        elif is_causal:
            keep = causal_mask(L, S).data
        if key_padding_mask is not None:
            pad_keep, pad_bias = _split_mask(key_padding_mask, true_means_keep=False)
            if pad_keep is not None:
                pad_keep = pad_keep.reshape(B, 1, 1, S)     # (B, S) -> (B, 1, 1, S): same for every head and query
                keep = pad_keep if keep is None else keep & pad_keep
            if pad_bias is not None:
                pad_bias = pad_bias.reshape(B, 1, 1, S)
                bias = pad_bias if bias is None else bias + pad_bias
        return keep, bias

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None,
                need_weights: bool = True, attn_mask=None, average_attn_weights: bool = True,
                is_causal: bool = False):
        unbatched = query.ndim == 2
        if query.ndim not in (2, 3) or query.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}) expects query of shape "
                             f"(L, E), (L, B, E) or (B, L, E) with E={self.embed_dim}; got {query.shape}")
        self_attention = query is key and key is value
        if unbatched:                                      # (L, E) -> (1, L, E)
            query, key, value = (x.unsqueeze(0) for x in (query, key, value))
        elif not self.batch_first:                         # (L, B, E) -> (B, L, E)
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        if self_attention:
            key = value = query                            # keep them one tensor: one fused projection
        if key.shape != value.shape[:-1] + (key.shape[-1],) or key.shape[0] != query.shape[0]:
            raise ValueError(f"key {key.shape} and value {value.shape} must match query's batch and each other")
        # From here, query is (B, L, E) and key, value are (B, S, E). Compute y, (B, L, E), and weights:
        # 1. q, k, v = self._project(...); split heads: reshape (B, T, nh, hs), transpose(1, 2) -> (B, nh, T, hs).
        # 2. keep, bias = self._masks(...) (given: it converts PyTorch's True = blocked convention).
        # 3. _attention_fused(q, k, v, keep, bias, dropout_p) (the fast path, same arguments as _attention)
        #    with dropout only in training mode (self.training).
        # 4. Merge heads: transpose(1, 2) back, reshape (B, L, E), then self.out_proj.
        # Self-attention with a boolean mask (or none), no dropout and need_weights=False needs no
        # weights: SelfAttentionFused.apply(query, W, b (only if not None), num_heads=nh, keep=keep)
        # does steps 1, 3 and 4's merge in one primitive; out_proj follows as before.
        # Pitfall: transpose before reshape when merging; reshaping (B, nh, L, hs) directly scrambles heads.
        ### BEGIN SOLUTION
        B, L, E = query.shape
        S, nh, hs = key.shape[1], self.num_heads, self.head_dim
        keep, bias = self._masks(attn_mask, key_padding_mask, is_causal, B, L, S)
        dropout_p = self.dropout if self.training else 0.0
        if self_attention and bias is None and dropout_p == 0.0 and not need_weights:
            packed = (self.in_proj_weight,) if self.in_proj_bias is None else (self.in_proj_weight, self.in_proj_bias)
            y = SelfAttentionFused.apply(query, *packed, num_heads=nh, keep=keep)   # (B, L, E), heads merged
        else:
            q, k, v = self._project(query, key, value)     # each (B, T, E)
            q = q.reshape(B, L, nh, hs).transpose(1, 2)    # (B, L, E) -> (B, L, nh, hs) -> (B, nh, L, hs)
            k = k.reshape(B, S, nh, hs).transpose(1, 2)    # (B, nh, S, hs)
            v = v.reshape(B, S, nh, hs).transpose(1, 2)    # (B, nh, S, hs)
            y, weights = _attention_fused(q, k, v, keep, bias, dropout_p)   # (B, nh, L, hs), (B, nh, L, S)
            y = y.transpose(1, 2).reshape(B, L, E)         # (B, nh, L, hs) -> (B, L, nh, hs) -> (B, L, E)
        y = self.out_proj(y)                               # (B, L, E)
        ### END SOLUTION
        if unbatched:
            y = y[0]                                       # (L, E)
        elif not self.batch_first:
            y = y.transpose(0, 1)                          # (B, L, E) -> (L, B, E)
        if not need_weights:
            return y, None
        if average_attn_weights:
            weights = weights.mean(dim=1)                  # (B, nh, L, S) -> (B, L, S)
        return y, (weights[0] if unbatched else weights)

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"batch_first={self.batch_first}")


# %% [markdown]
r"""
The test checks what a user of the layer relies on: the parameter names and
shapes (so a PyTorch `state_dict` fits), output and weight shapes in all three
layouts, that `batch_first=True` on (B, T, E) gives exactly the transposed
result of `batch_first=False` on (T, B, E) with the same weights, that the
averaged weights are rows summing to one, and that the module's mask convention
(True = blocked) is honoured.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_multihead_attention", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_multihead_attention():
    init.manual_seed(0)
    mha = MultiheadAttention(embed_dim=8, num_heads=2)
    names = {name: p.shape for name, p in mha.named_parameters()}
    assert names == {"in_proj_weight": (24, 8), "in_proj_bias": (24,), "out_proj.weight": (8, 8),
                     "out_proj.bias": (8,)}, f"parameters should match torch.nn.MultiheadAttention's, got {names}"
    rng = np.random.default_rng(4)
    x = Tensor(rng.standard_normal((5, 3, 8)).astype(np.float32))        # (T, B, E): batch_first=False
    out, w = mha(x, x, x)
    assert out.shape == (5, 3, 8) and w.shape == (3, 5, 5), f"got output {out.shape}, weights {w.shape}"
    assert np.allclose(w.data.sum(-1), 1.0, atol=1e-5), "averaged attention weights should sum to 1 per row"

    mha_bf = MultiheadAttention(8, 2, batch_first=True)
    mha_bf.load_state_dict(mha.state_dict())
    xb = Tensor(np.ascontiguousarray(x.data.transpose(1, 0, 2)))        # (B, T, E)
    out_bf, w_bf = mha_bf(xb, xb, xb)
    assert np.allclose(out_bf.data, out.data.transpose(1, 0, 2), atol=1e-6), "batch_first=True disagrees"
    assert np.allclose(w_bf.data, w.data, atol=1e-6), "weights should not depend on the layout"

    single, w1 = mha(x[:, 0], x[:, 0], x[:, 0])                          # unbatched (T, E)
    assert single.shape == (5, 8) and w1.shape == (5, 5), f"unbatched shapes wrong: {single.shape}, {w1.shape}"
    assert np.allclose(single.data, out.data[:, 0], atol=1e-6), "unbatched result should equal its batch row"

    blocked = ~causal_mask(5).data                                        # the module's convention: True = blocked
    _, w_causal = mha(x, x, x, attn_mask=blocked)
    assert np.allclose(np.triu(w_causal.data, k=1), 0.0), "attn_mask=True positions must get zero weight"
    _, w_hint = mha(x, x, x, is_causal=True)
    assert np.allclose(w_hint.data, w_causal.data), "is_causal=True should equal the causal attn_mask"
    _, per_head = mha(x, x, x, average_attn_weights=False)
    assert per_head.shape == (3, 2, 5, 5), f"per-head weights should be (B, h, L, S), got {per_head.shape}"
    assert mha(x, x, x, need_weights=False)[1] is None, "need_weights=False should return None for weights"
    print("MultiheadAttention: parameters, layouts, weights and masks OK")


test_unit_multihead_attention()

# %% [markdown]
r"""
Dropout on attention weights is random, so we test its contract rather than
its values: in training mode with `dropout=0.5` some weights are dropped (the
result changes), the same seed gives the same result, and in eval mode the
layer is deterministic and identical to the same layer with `dropout=0`.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_attention_dropout", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_attention_dropout():
    init.manual_seed(1)
    mha = MultiheadAttention(8, 2, dropout=0.5, batch_first=True)
    x = Tensor(np.random.default_rng(5).standard_normal((2, 6, 8)).astype(np.float32))
    init.manual_seed(7)
    a, wa = mha(x, x, x)
    init.manual_seed(7)
    b, _ = mha(x, x, x)
    assert np.array_equal(a.data, b.data), "the same seed should drop the same weights"
    mha.eval()
    c, wc = mha(x, x, x)
    d, _ = mha(x, x, x)
    assert np.array_equal(c.data, d.data), "eval mode must not drop anything"
    assert not np.allclose(a.data, c.data), "training mode with dropout=0.5 should differ from eval mode"
    assert np.allclose(wc.data.sum(-1), 1.0, atol=1e-5), "eval-mode weights should be undropped rows summing to 1"
    print("attention dropout: active in train mode only, repeatable under manual_seed")


test_unit_attention_dropout()

# %% [markdown]
r"""
### Embedding: from token ids to vectors

A language model reads integers: token 4021 is " the", token 11 is ",". An
`Embedding(num_embeddings, embedding_dim)` holds a learnable table of shape
(vocabulary, width) and looks rows up: `emb(ids)` with ids of shape (B, T)
gives (B, T, width). It is mathematically a one-hot vector times a matrix, but
indexing costs T·width copies instead of T·vocabulary·width multiply-adds, and
skips materialising a (B, T, vocabulary) one-hot tensor.

It is built on the `GetItem` primitive with an integer array as the index. In
chapter 09 that primitive's backward adds the incoming gradient into the
selected rows with `np.add.at`, so a token that appears twice in a batch
collects both gradients, and rows of tokens that did not appear get zero.
Weights start from N(0, 1) as in PyTorch. (PyTorch's `padding_idx`,
`max_norm` and sparse gradients are left out.)
"""


# %% nbgrader={"grade": false, "grade_id": "impl_Embedding", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Embedding(Module):
    """A lookup table: integer ids (any shape) -> rows of `weight` (num_embeddings, embedding_dim)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = init.normal_(Parameter(np.empty((num_embeddings, embedding_dim), dtype=np.float32)))
        if padding_idx is not None:                        # PyTorch's padding row: zeros, never trained
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx must be in [{-num_embeddings}, {num_embeddings - 1}], "
                                 f"got {padding_idx}")
            padding_idx %= num_embeddings
            self.weight.data[padding_idx] = 0.0
        self.padding_idx = padding_idx

    def __call__(self, ids) -> Tensor:
        """forward(ids), with the padding row's lookups cut from the graph: it gets no gradient."""
        out = self.forward(ids)
        if self.padding_idx is None:
            return out
        padding = np.asarray(ids.data if isinstance(ids, Tensor) else ids) == self.padding_idx
        return where(padding[..., None], out.detach(), out)

    def forward(self, ids) -> Tensor:
        """Rows of `weight` for integer ids of any shape: (...) -> (..., embedding_dim).

        Accepts a Tensor or an array of ids. Raises TypeError for non-integer ids and IndexError,
        naming the layer and the valid range, for ids outside [0, num_embeddings - 1].
        """
        # Index the Parameter itself (self.weight[index]): the GetItem primitive, so that chapter 09
        # sends gradients to the rows that were used (repeated ids add up).
        # Pitfall: NumPy reads -1 as the last row; check the range yourself, as PyTorch does.
        ### BEGIN SOLUTION
        index = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if not np.issubdtype(index.dtype, np.integer):
            raise TypeError(f"Embedding expects integer ids, got {index.dtype}; convert with .astype(np.int64)")
        if index.size and (index.min() < 0 or index.max() >= self.num_embeddings):
            raise IndexError(f"Embedding({self.num_embeddings}, {self.embedding_dim}): ids must be in "
                             f"[0, {self.num_embeddings - 1}], got {index.min()}..{index.max()}")
        return self.weight[index]                          # ids (...) -> (..., embedding_dim)
        ### END SOLUTION

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text if self.padding_idx is None else text + f", padding_idx={self.padding_idx}"


# %% [markdown]
r"""
The test checks that looking up ids returns exactly the rows of the table in
the shape of the ids plus one dimension, that a repeated id returns the same
vector, and that float or out-of-range ids fail with a message that says what
to do. NumPy would happily read id -1 as the last row, a silent bug when -1
was meant as "padding"; like PyTorch we refuse negative ids.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_embedding", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_embedding():
    init.manual_seed(2)
    emb = Embedding(10, 4)
    ids = np.array([[1, 2, 2], [9, 0, 1]])                # (B=2, T=3)
    out = emb(Tensor(ids))
    assert out.shape == (2, 3, 4), f"expected (B, T, embedding_dim) = (2, 3, 4), got {out.shape}"
    assert np.array_equal(out.data[0, 1], emb.weight.data[2]), "id 2 should return row 2 of the table"
    assert np.array_equal(out.data[0, 1], out.data[0, 2]), "the same id should give the same vector"
    for bad, error in ((np.array([1.0, 2.0]), TypeError), (np.array([3, 10]), IndexError),
                       (np.array([-1]), IndexError)):
        try:
            emb(bad)
        except error as err:
            assert "Embedding" in str(err), f"error should name the layer: {err}"
        else:
            raise AssertionError(f"ids {bad} should raise {error.__name__}")
    print("Embedding: lookups, shapes and id checks OK")


test_unit_embedding()

# %% [markdown]
r"""
### Positions: attention cannot see word order

Look at the attention formula again: nothing in it mentions *where* a token is.
Shuffle the tokens of a sentence and self-attention shuffles its outputs the
same way, and that is all: each token gets exactly the vector it got before.
"Dog bites man" and "man bites dog" look alike to it. (A causal mask does
leak some order, but only through how many tokens each one can see.) The
next cell shows it on an unmasked layer.
"""

# %%
init.manual_seed(3)
layer = MultiheadAttention(8, 2, batch_first=True)
x = Tensor(np.random.default_rng(6).standard_normal((1, 5, 8)).astype(np.float32))   # (B, T, E)
perm = np.array([3, 0, 4, 1, 2])
out, _ = layer(x, x, x)
out_perm, _ = layer(x[:, perm], x[:, perm], x[:, perm])
print("permuting the input permutes the output:", np.allclose(out_perm.data, out.data[:, perm], atol=1e-6))

# %% [markdown]
r"""
The fix is to add to each token's vector a vector that depends on its
position. Two choices are common:

**Learned positions** (GPT-2, BERT): an `Embedding(block_size, E)` whose row t
is the position-t vector, trained like any other weight. Simple and strong,
but it knows nothing about positions beyond `block_size`.

**Sinusoidal positions** (the original Transformer): a fixed table with no
parameters,

$$
PE_{t,\,2i} = \sin\!\big(t / 10000^{2i/d}\big), \qquad
PE_{t,\,2i+1} = \cos\!\big(t / 10000^{2i/d}\big).
$$

Each pair of columns is a clock hand turning at its own speed, from one turn
every $2\pi$ positions (column 0) to one every $10000\cdot 2\pi$ positions.
Because moving k positions on is a fixed rotation of every pair, $PE_{t+k}$ is
a linear function of $PE_t$: the model can learn "attend three tokens back"
as one linear map. The values stay in [-1, 1] at any length. (Modern LLMs
mostly use *rotary* embeddings, RoPE, which apply the same rotations to the
queries and keys instead of adding them to the input.)

The table is a constant, so plain NumPy builds it; the addition `x + pe` is a
Tensor operation and the gradient flows through it to `x`.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_sinusoidal_positions", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def sinusoidal_positions(T: int, d: int, base: float = 10000.0) -> Tensor:
    """(T, d) table: column 2i is sin(t / base^(2i/d)), column 2i+1 its cosine (a constant, no gradient).

    Returns: a float32 Tensor of shape (T, d), values in [-1, 1].
    """
    # Positions as a (T, 1) column times frequencies base ** (-(0, 2, 4, ...) / d) as a row:
    # broadcasting gives the (T, ceil(d/2)) angles. Sines go to columns 0::2, cosines to 1::2.
    # Pitfall: an odd d has one sine column more than cosines (use angle[:, : d // 2] for the cosines).
    # Compute in float64 (angles reach T radians) and convert to float32 at the end.
    ### BEGIN SOLUTION
    position = np.arange(T, dtype=np.float64)[:, None]             # (T, 1)
    frequency = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)  # (ceil(d/2),)
    angle = position * frequency                                   # (T, ceil(d/2))
    table = np.empty((T, d), dtype=np.float64)
    table[:, 0::2] = np.sin(angle)
    table[:, 1::2] = np.cos(angle[:, : d // 2])                    # an odd d has one sine more
    return Tensor(table.astype(np.float32))
    ### END SOLUTION


# %%
pe = sinusoidal_positions(64, 32)
fig, ax = plt.subplots(figsize=(7, 2.8))
image = ax.imshow(pe.data.T, aspect="auto", cmap="RdBu")
ax.set_xlabel("position t")
ax.set_ylabel("column")
ax.set_title("sinusoidal_positions(64, 32): fast clocks at the top, slow at the bottom")
fig.colorbar(image, ax=ax)
plt.show()

# %% [markdown]
r"""
The test pins the formula down at points you can check by hand (column 0 is
$\sin t$, column 1 is $\cos t$, the last columns barely move), checks odd
widths and the value range, checks the "shift is a rotation" property for
one column pair, and confirms that adding positions (sinusoidal or learned)
makes attention order-aware: the permuted input no longer gives the permuted
output.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_positions", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_positions():
    pe = sinusoidal_positions(50, 16).data
    t = np.arange(50)
    assert pe.shape == (50, 16) and pe.dtype == np.float32, f"expected (50, 16) float32, got {pe.shape} {pe.dtype}"
    assert np.allclose(pe[:, 0], np.sin(t), atol=1e-6) and np.allclose(pe[:, 1], np.cos(t), atol=1e-6), \
        "column 0 should be sin(t) and column 1 cos(t)"
    assert np.abs(pe).max() <= 1.0, "positional values must stay in [-1, 1]"
    assert sinusoidal_positions(7, 5).shape == (7, 5), "an odd width should work"
    # Moving k steps on rotates each (sin, cos) pair by a fixed angle: a linear map of PE_t.
    ### BEGIN HIDDEN TESTS
    w, k = 10000 ** (-2 * 2 / 16), 3
    rotation = np.array([[np.cos(k * w), -np.sin(k * w)], [np.sin(k * w), np.cos(k * w)]])
    assert np.allclose(pe[:-k, 4:6] @ rotation, pe[k:, 4:6], atol=1e-5), "PE[t+k] should be a rotation of PE[t]"
    ### END HIDDEN TESTS

    init.manual_seed(4)
    layer = MultiheadAttention(16, 4, batch_first=True)
    learned = Embedding(8, 16)
    x = Tensor(np.random.default_rng(7).standard_normal((1, 8, 16)).astype(np.float32))
    perm = np.array([7, 6, 5, 4, 3, 2, 1, 0])
    for name, positions in (("sinusoidal", sinusoidal_positions(8, 16)), ("learned", learned(np.arange(8)))):
        h, hp = x + positions, x[:, perm] + positions         # (1, 8, 16) + (8, 16): broadcast over the batch
        out, _ = layer(h, h, h)
        out_p, _ = layer(hp, hp, hp)
        assert not np.allclose(out_p.data, out.data[:, perm], atol=1e-4), \
            f"with {name} positions, attention should notice that the order changed"
    print("positions: formula, rotation property, and order-awareness OK")


test_unit_positions()

# %% [markdown]
r"""
All of this is built from Tensor operations and chapter 02's primitives
(matmul, transpose, reshape, exp, sum, max, getitem, mul, add). Nothing here
computes a gradient yet, and nothing needs to change for it to: when chapter 09
gives every primitive its backward rule, attention, multi-head attention and
embeddings become trainable as they stand. The test suite already checks
their gradients against finite differences and PyTorch.
"""

# %% [markdown]
r"""
## Systems analysis: the T² in attention

The (B, h, T, T) weight tensor is the quantity to watch. We measure three
things for sequence lengths T = 64 … 1024 with one sequence (B = 1), h = 4
heads of width 32 (E = 128), float32, and a causal mask as in a GPT:

1. the **bytes of the weight tensor**, from the tensor attention actually
   built (`weights.nbytes`), next to the formula $B \cdot h \cdot T^2 \cdot 4$;
2. the **peak memory** of one attention call (`tracemalloc` sees NumPy's
   allocations), which includes every intermediate our composed softmax makes;
3. the **time** of one call, and of its two matrix products alone. The
   machine may be busy with other work, so we time in rounds: each round runs
   every T once, and we report the median over 7 rounds. A burst of
   background load then hits all lengths alike instead of spoiling one.
"""

# %%
lengths = [64, 128, 256, 512, 1024]
heads, head_dim = 4, 32
rng = np.random.default_rng(0)
inputs = {T: [Tensor(rng.standard_normal((1, heads, T, head_dim)).astype(np.float32)) for _ in range(3)]
          for T in lengths}                                      # q, k, v: (B, h, T, hs) each
masks = {T: causal_mask(T).data for T in lengths}

memory = {}
for T in lengths:
    q, k, v = inputs[T]
    _, weights = _attention(q, k, v, masks[T])                  # warm-up, and the tensor we account for
    tracemalloc.start()
    _attention(q, k, v, masks[T])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    memory[T] = (weights.nbytes, 1 * heads * T * T * 4, peak, 3 * q.nbytes)

full_times = {T: [] for T in lengths}
matmul_times = {T: [] for T in lengths}
for _ in range(7):                                              # rounds: every T once per round
    for T in lengths:
        q, k, v = inputs[T]
        start = time.perf_counter()
        _attention(q, k, v, masks[T])
        full_times[T].append(time.perf_counter() - start)
        start = time.perf_counter()
        (q.data @ k.data.transpose(0, 1, 3, 2)) @ v.data             # (B,h,T,hs)@(B,h,hs,T)@(B,h,T,hs)
        matmul_times[T].append(time.perf_counter() - start)

print(f"{'T':>5} {'weights (MB)':>13} {'formula (MB)':>13} {'peak (MB)':>10} {'peak/weights':>13} "
      f"{'q,k,v (MB)':>11} {'time (ms)':>10} {'matmuls (ms)':>13}")
for T in lengths:
    wbytes, formula, peak, qkv = memory[T]
    print(f"{T:>5} {wbytes / 1e6:>13.3f} {formula / 1e6:>13.3f} {peak / 1e6:>10.2f} {peak / wbytes:>13.1f} "
          f"{qkv / 1e6:>11.3f} {np.median(full_times[T]) * 1e3:>10.2f} {np.median(matmul_times[T]) * 1e3:>13.2f}")
assert all(memory[T][0] == memory[T][1] for T in lengths), "the text says the weights match the formula to the byte"
ratios = [memory[T][2] / memory[T][0] for T in lengths]
assert all(2 <= r <= 10 for r in ratios), f"the text says the peak is several (2 to 10) times the weights; measured {ratios}"

# Where the work is, counted rather than timed (at the largest T): the two matmuls against the
# elementwise passes over the (h, T, T) arrays, each of which reads and writes 4 bytes per element.
T = lengths[-1]
matmul_flops = 2 * (2 * heads * T * T * head_dim)                # scores and weights @ v
elementwise_passes = 8                                           # scale, mask (2), max, subtract, exp, divide, mask
passes_flops, passes_bytes = elementwise_passes * heads * T * T, elementwise_passes * 2 * 4 * heads * T * T
matmul_bytes = 4 * (4 * heads * T * head_dim + 2 * heads * T * T)   # q, k, v, out once; scores written, weights read
print(f"T = {T}: the matmuls do {matmul_flops / 1e6:.0f} Mflop on {matmul_bytes / 1e6:.0f} MB "
      f"({matmul_flops / matmul_bytes:.0f} flop/byte); the elementwise passes {passes_flops / 1e6:.0f} Mflop "
      f"on {passes_bytes / 1e6:.0f} MB ({passes_flops / passes_bytes:.3f} flop/byte)")
share = np.median(np.array(matmul_times[T]) / np.array(full_times[T]))
print(f"this run: the matmuls took {share:.0%} of the call's time at T = {T} (median over the rounds)")

# %% [markdown]
r"""
The weight tensor matches the formula to the byte and grows exactly 4× per
doubling of T, while q, k and v grow 2×. At small T the queries, keys and
values dominate memory; the scores overtake them once $h T^2 > 3 T E$, i.e.
once T exceeds three times the head width (here T > 96), and from there on the
$T^2$ term is all that matters. The peak is several times the weight tensor
because our softmax is a chain of separate operations (subtract the max, exp,
sum, divide, mask), and each one writes a fresh (B, h, T, T) array.

(The cell asserts both: the weights equal the formula byte for byte, and
the peak is between 2 and 10 times the weights.)

The last two lines count where the work is. The two matrix products hold
almost all of the FLOPs and do more than ten of them per byte they touch; the
elementwise passes over the (T, T) arrays do one operation per 8 bytes read
and written (printed above). A CPU does many more operations per second than
it moves 8-byte pairs, so those passes are limited by memory traffic, not
arithmetic, and the time the matmuls take is only part of the call (this run's
share is printed; on a machine busy with other work the multithreaded matmuls
suffer most, so the share moves from run to run). That observation is the
whole idea behind FlashAttention (see *Production context*).

Now the growth exponents: if cost ∝ $T^p$, then $\log(\text{cost})$ is linear
in $\log T$ with slope p. We fit the slope over the three largest T, where
fixed per-call overheads no longer hide the trend.
"""

# %%
T_arr = np.array(lengths, dtype=float)
weight_mb = np.array([memory[T][0] for T in lengths]) / 1e6
peak_mb = np.array([memory[T][2] for T in lengths]) / 1e6
time_ms = np.array([np.median(full_times[T]) for T in lengths]) * 1e3
memory_exponent = np.polyfit(np.log(T_arr), np.log(weight_mb), 1)[0]
peak_exponent = np.polyfit(np.log(T_arr[-3:]), np.log(peak_mb[-3:]), 1)[0]
time_exponent = np.polyfit(np.log(T_arr[-3:]), np.log(time_ms[-3:]), 1)[0]
print(f"weight-tensor bytes grow like T^{memory_exponent:.2f}")
assert abs(memory_exponent - 2) < 0.01, f"the text says memory follows T^2 exactly; fitted T^{memory_exponent:.2f}"
print(f"peak memory grows like T^{peak_exponent:.2f} (largest three T)")
print(f"time grows like T^{time_exponent:.2f} (largest three T)")

fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(10, 3.8))
ax_mem.loglog(T_arr, weight_mb, "o-", label="weights (B, h, T, T)")
ax_mem.loglog(T_arr, peak_mb, "s-", label="peak during the call")
ax_mem.loglog(T_arr, weight_mb[0] * (T_arr / T_arr[0]) ** 2, "k:", label="slope 2")
ax_mem.set_xlabel("sequence length T")
ax_mem.set_ylabel("MB")
ax_mem.set_title(f"memory: weights ∝ T^{memory_exponent:.2f}")
ax_mem.legend()
ax_time.loglog(T_arr, time_ms, "o-", label="measured")
ax_time.loglog(T_arr, time_ms[-1] * (T_arr / T_arr[-1]) ** 2, "k:", label="slope 2")
ax_time.set_xlabel("sequence length T")
ax_time.set_ylabel("ms per call")
ax_time.set_title(f"time ∝ T^{time_exponent:.2f} (fit on largest three T)")
ax_time.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
r"""
Memory follows $T^2$ exactly (the cell asserts the exponent is 2 to within
0.01); time follows it only roughly. At small T each call
is dominated by fixed costs (Python, allocating arrays, starting BLAS) that do
not grow with T, which flattens the curve. At large T every pass over the
(T, T) arrays costs $T^2$, and once those arrays outgrow the CPU's caches
(at T = 1024 one (h, T, T) float32 array is 16 MB) each pass becomes a trip to
main memory, which can push the slope above 2. Time is also the noisy
measurement: a program busy beside this one slows some rounds and not others,
and the printed exponent of this run can land far from 2 (the page you read
was built on a shared machine). Rerun the cell and watch it move; the memory
numbers never change, which is why memory, not time, is what to plan with.

Where does that leave real models? The same formula at GPT-2's size:
"""

# %%
for name, heads, T in (("GPT-2 small, one layer", 12, 1024), ("GPT-2 small, 12 layers", 12 * 12, 1024),
                       ("a 32-head model at T = 32768, one layer", 32, 32768)):
    print(f"{name:<42} weights for one sequence: {heads * T * T * 4 / 2**20:>10,.0f} MiB (float32)")

# %% [markdown]
r"""
Storing those weights for the backward pass, layer after layer, is what made
long context impossible before kernels that never store them (next section).
"""

# %% [markdown]
r"""
### What the fast path saves

`MultiheadAttention` runs `_attention_fused` in general: the same two matrix products,
with `AttentionSoftmax` instead of the chain of elementwise primitives between
them. The cell below times both paths at T = 512 (forward only: chapter 09's
engine, which would run the backward of the composition, comes later) in
alternating rounds, and measures the peak memory of each call (the lowest of three). It also
times the fused backward, the softmax derivative in one expression.
"""

# %%
T = 512
q, k, v = inputs[T]
paths = {"composed (_attention)": _attention, "fused (_attention_fused)": _attention_fused}
path_times = {name: [] for name in paths}
path_peaks = {}
for name, attend in paths.items():
    attend(q, k, v, masks[T])                                   # warm-up
    peaks = []
    for _ in range(3):                                          # the lowest of three: anything else only adds
        tracemalloc.start()
        attend(q, k, v, masks[T])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    path_peaks[name] = min(peaks)
for _ in range(9):                                              # alternating rounds, as before
    for name, attend in paths.items():
        start = time.perf_counter()
        attend(q, k, v, masks[T])
        path_times[name].append(time.perf_counter() - start)
scores = q.data @ k.data.transpose(0, 1, 3, 2)
softmax_ctx = AttentionSoftmax(Tensor(scores))
AttentionSoftmax.forward(softmax_ctx, scores, keep=masks[T], scale=1 / math.sqrt(head_dim))
backward_times = []
for _ in range(7):
    start = time.perf_counter()
    AttentionSoftmax.backward(softmax_ctx, scores)
    backward_times.append(time.perf_counter() - start)
for name in paths:
    print(f"{name:<25} {np.median(path_times[name]) * 1e3:7.2f} ms forward, peak {path_peaks[name] / 1e6:6.1f} MB")
composed_name, fused_name = paths
speedup = np.median(np.array(path_times[composed_name]) / np.array(path_times[fused_name]))   # per round
memory_saving = path_peaks[composed_name] / path_peaks[fused_name]
print(f"at T = {T}: the fused forward is {speedup:.1f}x as fast and peaks at 1/{memory_saving:.1f} of the memory; "
      f"AttentionSoftmax's backward takes {np.median(backward_times) * 1e3:.2f} ms")
assert speedup > 1.0, f"the text says the fused forward is faster; measured {speedup:.2f}x"
assert memory_saving > 2, f"the text says the fused forward needs a fraction of the peak memory; measured 1/{memory_saving:.1f}"

# %% [markdown]
r"""
Fewer sweeps over the (h, T, T) arrays make the fused forward faster (the
ratio is printed, the median of the rounds' ratios: memory traffic, not
arithmetic, is what it removes; the cell asserts only that it is above 1,
because on a busy machine the matrix products' threads wait for cores and that
wait, the same on both paths, hides much of the difference), and with
one buffer instead of a fresh array per step its peak memory is a fraction of
the composition's (the cell asserts more than a factor of 2). In training the
saving counts twice: the composition keeps several (h, T, T) arrays for its
backward, the primitive only its output, the weights. It is still $T^2$: the
weights are stored. Removing that is FlashAttention's step, below.
"""

# %% [markdown]
r"""
For self-attention without weights to return, `MultiheadAttention` goes one
step further, to `SelfAttentionFused`. The next cell times a transformer
block's attention at the size chapter 15 benchmarks against PyTorch (16
sequences of 128 tokens, width 128, 4 heads, causal) two ways, from x to the
merged heads, forward only: the composition (`_project`'s matmul and bias,
slices, head split, `_attention`, merge) and the one primitive. It also times `SelfAttentionFused`'s own backward, and the
reason for its transposed scores: a softmax's max and sum along the last axis
against down the columns, on one block of scores.
"""

# %%
B, T, E, heads = 16, 128, 128, 4
x_block = Tensor(rng.standard_normal((B, T, E)).astype(np.float32))
w_block = Tensor((rng.standard_normal((3 * E, E)) / math.sqrt(E)).astype(np.float32))
b_block = Tensor(np.zeros(3 * E, dtype=np.float32))
keep_block = causal_mask(T).data


def heads_then(attend):
    """x -> merged heads through Tensor operations, with `attend` (here _attention) in the middle."""
    def run():
        qkv = x_block @ w_block.T + b_block                                  # (B, T, 3E)
        q, k, v = (qkv[..., i * E:(i + 1) * E].reshape(B, T, heads, E // heads).transpose(1, 2) for i in range(3))
        return attend(q, k, v, keep_block)[0].transpose(1, 2).reshape(B, T, E)
    return run


block_paths = {"composed": heads_then(_attention),
               "SelfAttentionFused": lambda: SelfAttentionFused.apply(x_block, w_block, b_block,
                                                                        num_heads=heads, keep=keep_block)}
block_times = {name: [] for name in block_paths}
for _ in range(9):                                                   # alternating rounds
    for name, run in block_paths.items():
        start = time.perf_counter()
        run()
        block_times[name].append(time.perf_counter() - start)
fused_ctx = SelfAttentionFused(x_block, w_block, b_block)
SelfAttentionFused.forward(fused_ctx, x_block.data, w_block.data, b_block.data, num_heads=heads, keep=keep_block)
fused_backward = []
for _ in range(7):
    start = time.perf_counter()
    SelfAttentionFused.backward(fused_ctx, x_block.data)
    fused_backward.append(time.perf_counter() - start)
for name in block_paths:
    print(f"{name:<20} {min(block_times[name]) * 1e3:6.2f} ms forward (fastest of {len(block_times[name])} rounds)")
block_speedup = min(block_times["composed"]) / min(block_times["SelfAttentionFused"])   # fastest rounds
print(f"SelfAttentionFused: {block_speedup:.1f}x the composition's speed; "
      f"its backward takes {np.median(fused_backward) * 1e3:.2f} ms")

one_block = rng.standard_normal((heads, T, T)).astype(np.float32)
reductions = {"along the last axis": lambda: (one_block.max(axis=-1), one_block.sum(axis=-1)),
              "down the columns": lambda: (one_block.max(axis=-2), one_block.sum(axis=-2))}
reduction_times = {name: [] for name in reductions}
for _ in range(21):
    for name, reduce in reductions.items():
        start = time.perf_counter()
        for _ in range(10):
            reduce()
        reduction_times[name].append((time.perf_counter() - start) / 10)
column_speedup = np.median(np.array(reduction_times["along the last axis"]) / np.array(reduction_times["down the columns"]))
print(f"max and sum of {heads} x {T} x {T} scores: {np.median(reduction_times['along the last axis']) * 1e6:.0f} us "
      f"along the last axis, {np.median(reduction_times['down the columns']) * 1e6:.0f} us down the columns "
      f"({column_speedup:.1f}x)")
assert block_speedup > 0.75, f"the text says the primitive stays above 0.75x; measured {block_speedup:.2f}x"
assert column_speedup > 1.0, f"the text says reducing down the columns is faster; measured {column_speedup:.2f}x"

# %% [markdown]
r"""
The printed ratios are this machine's, measured in alternating rounds (for the
two paths, the ratio of their fastest rounds, the ones least disturbed by
other programs). The cell asserts only that the primitive's ratio stays above
0.75 and that the column reductions beat the row reductions: on a busy machine
other programs' work lands on either side of a round at random. What
the primitive removes is not arithmetic (the matrix products are the same) but
sweeps over memory and graph nodes: the slices, the head split's and merge's
copies, the separate bias add, and in training the zero-filled gradient arrays
of the slices.
"""

# %% [markdown]
r"""
## Production context

**PyTorch's `F.scaled_dot_product_attention`** has the signature you just
wrote, and behind it several implementations. On GPUs it usually runs
*FlashAttention*: it cuts Q, K and V into tiles that fit in on-chip memory,
computes each tile's scores, and folds them into the output with an *online
softmax* (a running maximum and a running sum per row, rescaled as new tiles
arrive). The (T, T) matrix never exists in memory: memory is O(T), and the
backward pass recomputes scores tile by tile instead of reading them back.
The FLOPs are the same as ours; what it saves is memory traffic, which is what
attention is limited by. On CPU, and whenever a fused kernel cannot handle the
arguments, PyTorch falls back to the "math" implementation, which is ours.

**`is_causal=True` is more than a convenience** in a fused kernel: tiles
entirely above the diagonal are skipped, halving the work. We compute the full
product and then throw the upper half away.

**`nn.MultiheadAttention`** packs the projections exactly as ours does. With
`need_weights=True` (its default!) it must build the weight tensor to return
it, so it cannot use the fused kernels; pass `need_weights=False` for speed.
Its boolean masks mean "blocked", the opposite of the function's; this
mismatch is a classic source of silent bugs, and the reason we copied it
rather than "fixing" it: a mask that works here works there.

**Generation uses a KV cache.** Producing token T+1 needs only the new
token's query against all keys and values; the keys and values of tokens
0..T do not change, so they are kept instead of recomputed. A step then costs
O(T) instead of O(T²), and the cache costs
2 × layers × T × E numbers per sequence, which is why *multi-query* and
*grouped-query* attention (several query heads sharing one key/value head)
exist: they shrink the cache.

**Where tinytorch differs on purpose:** we always build the full weight
tensor (clear, and you can inspect it); `is_causal=True` on our module builds
the mask instead of requiring one; a fully masked query returns zeros in both
the function and the module (PyTorch's module returns NaN there).
"""

# %% [markdown]
r"""
## Integration: the front half of a GPT

The pieces of this chapter and chapter 04 assemble into the first layers of a
language model: token embeddings plus learned position embeddings, one causal
self-attention layer, and a `Linear` head that maps each position back to
vocabulary scores (logits). Chapter 17 stacks blocks like this into TinyGPT;
chapters 09 and 10 make it learn.

Whatever the weights, the model must be causal end to end: the logits at
position t (its guess for token t+1) may depend only on tokens 0..t.
"""

# %%
init.manual_seed(5)
vocab, block, E, heads = 20, 8, 16, 4
token_embedding = Embedding(vocab, E)
position_embedding = Embedding(block, E)
attention = MultiheadAttention(E, heads, batch_first=True)
head = Linear(E, vocab)


def tiny_language_model(ids: np.ndarray) -> Tensor:
    B, T = ids.shape
    x = token_embedding(ids) + position_embedding(np.arange(T))      # (B, T, E) + (T, E) -> (B, T, E)
    h, _ = attention(x, x, x, is_causal=True, need_weights=False)    # (B, T, E)
    return head(x + h)                                               # residual, then (B, T, vocab)


ids = np.random.default_rng(8).integers(0, vocab, size=(2, block))
logits = tiny_language_model(ids)
next_token_probs = softmax(logits[:, -1], dim=-1)                    # (B, vocab)
print("logits:", logits.shape, " next-token distribution:", next_token_probs.shape,
      " sums to", next_token_probs.data.sum(-1))
changed = ids.copy()
changed[:, 5] = (changed[:, 5] + 1) % vocab                          # change token 5 only
logits2 = tiny_language_model(changed)
print("positions 0..4 unchanged:", np.array_equal(logits.data[:, :5], logits2.data[:, :5]),
      "| positions 5..7 changed:", not np.allclose(logits.data[:, 5:], logits2.data[:, 5:]))
n_params = sum(p.numel() for m in (token_embedding, position_embedding, attention, head) for p in m.parameters())
print(f"parameters: {n_params:,}")

# %% [markdown]
r"""
## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_scaled_dot_product_attention()
    test_unit_attention_masks()
    test_unit_causal_property()
    test_unit_attention_fused()
    test_unit_self_attention_fused()
    test_unit_multihead_attention()
    test_unit_attention_dropout()
    test_unit_embedding()
    test_unit_positions()
    print("All attention tests passed.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Memory budget.** Using the formula you verified, how many GiB does the
weight tensor of one layer take for a batch of 8 sequences of T = 8192
tokens with 32 heads in float16? Our implementation also keeps several
intermediates of the same size (you measured the peak/weights ratio). If
you had to run it anyway, what would you chunk, and what would stay
quadratic?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_memory_budget", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** $B \cdot h \cdot T^2 \cdot 2$ bytes $= 8 \times 32 \times 8192^2 \times 2 = 3.4 \times 10^{10}$
bytes, exactly 32 GiB for one layer. The table printed a peak of about 4.5 times
the weights, so our composed implementation would need some 144 GiB at its peak.
To run it anyway, chunk the *queries*: process blocks of, say, 512 query rows at
a time, so each step builds a (B, h, 512, T) score block (1/16 of the full
tensor, 2 GiB here, about 9 GiB at the peak) and writes its rows of the output;
batch and heads can be chunked the same way. What stays quadratic: the FLOPs
($T^2$ per head, whatever the chunking) and, if the weights are kept for
backward, their total memory; only recomputing them in backward (as
FlashAttention does) removes that.

**Rubric (2 points).** 1 point for 32 GiB (accept 34 GB) and the peak as the measured ratio times
it; 1 point for chunking over queries (or batch/heads) with the reason, and for
naming what stays quadratic (compute, and stored weights unless recomputed).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Wasted work.** With `is_causal=True` our code multiplies the full
$QK^\top$ and then masks the upper triangle. What fraction of the
score FLOPs and of the softmax passes is wasted? During generation with a
KV cache, how does the cost of producing one token grow with T, and what
does the cache cost in memory for a 12-layer, E = 768 model at T = 1024?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_wasted_work", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The entries strictly above the diagonal, $T(T-1)/2$ of $T^2$, are computed
and then thrown away: $(T-1)/(2T)$, just under half, of the $QK^\top$ FLOPs, of
the weights @ V FLOPs (they multiply zeros) and of every elementwise softmax
and masking pass (49.95 % at T = 1024). With a KV cache, token t needs one
query against t cached keys and values: attention costs $O(t \cdot E)$ per
layer and the projections and MLP a constant $O(E^2)$, so one token's cost
grows linearly in T (a whole sequence, quadratically). The cache holds keys
and values for every layer and position: $2 \times 12 \times 1024 \times 768 = 18.9$ M
numbers, 75.5 MB (72 MiB) in float32 or 37.7 MB in float16, per sequence.

**Rubric (2 points).** 1 point for "about half" of both the matmul FLOPs and the softmax passes,
with the $(T-1)/2T$ reasoning; 1 point for linear growth per generated token
and the cache size (18.9 M numbers; 75 MB in float32 or 38 MB in float16).
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Fused projections.** `_project` uses one (3E, E) matmul when query, key
and value are the same tensor. Why is one large matmul faster than three
small ones on a CPU (think about BLAS and Python overhead)? Why can
cross-attention (queries from a decoder, keys and values from an encoder)
only fuse part of it?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_fused_projections", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The FLOPs are the same. One call pays the Python, Tensor and BLAS-dispatch
overhead once instead of three times and allocates one output; BLAS reads
(packs) each block of x once and reuses it against 3E columns instead of
packing x three times for E columns each, and a wider matrix gives its
threads more work to split per synchronisation, so the large call runs
closer to peak. In cross-attention the queries are a function of the
decoder's x and the keys and values of the encoder's output: different
inputs cannot share one matmul. Keys and values share an input, so they fuse
into one (2E, E) projection of the encoder output (and, as the encoder output
does not change while decoding, that projection can be computed once and
cached); the query projection stays separate.

**Rubric (2 points).** 1 point for overhead paid once plus better BLAS reuse/threading of one
large product (same FLOPs); 1 point for "different inputs for Q than for K
and V", with K and V still fusable.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. API design.** `scaled_dot_product_attention` treats True as "attend",
`MultiheadAttention` treats True as "blocked", and a fully masked row can
reasonably be zeros, uniform, or NaN. Which choice would you make for a new
library, and what would you check at the API boundary to catch a caller
who mixed up the conventions?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_api_design", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** A defensible design: one convention everywhere, True = "may attend" (it
reads like the causal triangle and matches the functional API and JAX), or no
booleans at all in the public API (an additive float mask, or a mask object
with named constructors such as `causal()` and `padding(lengths)`). For a
fully masked row, return zeros: finite, no gradient to masked keys, and a
padding query's output is ignored anyway; NaN is loud but poisons the whole
backward pass, uniform silently attends to what was meant to be hidden.
Boundary checks: accept only boolean or floating masks (reject integer 0/1
arrays, whose meaning is ambiguous); check the shape broadcasts to
(B, h, L, S) and name the expected shape; for self-attention flag a mask whose
diagonal is all blocked, or that is upper- instead of lower-triangular (an
inverted causal mask); warn when more than a few rows are fully masked, or
when a key-padding mask blocks the first position of every sequence (an
inverted padding mask).

**Rubric (2 points).** 1 point for a clear, justified choice of convention and of the
fully-masked-row behaviour; 1 point for at least two concrete, checkable
tests at the boundary that would catch an inverted mask (dtype, shape,
diagonal, fully masked rows).
### END SOLUTION
"""

# %% [markdown]
r"""
## Module summary

You built the attention layer that Transformers are made of, from chapter 02's
primitives:

- `scaled_dot_product_attention(query, key, value, attn_mask, dropout_p,
  is_causal, scale)`: softmax(QKᵀ/√d)V with PyTorch's signature and mask
  semantics (boolean True = attend; float = added), NaN-free even when a query
  has no key left (its output is zeros);
- `causal_mask(T)`: the lower-triangular mask; you tested that no output
  depends on a later token;
- `MultiheadAttention`: h heads on E/h-wide slices, with PyTorch's packed
  `in_proj_weight`, `out_proj`, both layouts (`batch_first`), its mask
  convention (True = blocked), averaged or per-head weights, and dropout on
  the weights in training mode only;
- `Embedding`: integer ids to learnable vectors by indexing;
- `sinusoidal_positions(T, d)` and learned positions via `Embedding`, because
  attention alone is blind to order (you saw a permutation pass straight
  through it).

You measured the cost that shapes every long-context system: the weight tensor
grows as T², exactly, its time follows only roughly (timing is the noisy
measurement), and the peak memory is several times larger in a composed
implementation like ours. Production
kernels avoid storing that matrix at all.

Next, chapter 08 builds the normalization layers (LayerNorm, BatchNorm) that
keep deep stacks of these layers numerically stable. In chapter 09 every
primitive used here gets its backward rule, and attention becomes trainable
without changing a line.
"""
