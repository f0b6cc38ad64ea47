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
# Capstone: TinyGPT

Sixteen chapters ago `tinytorch` was an empty folder. Since then you have
written a Tensor and its primitives (02), activations (03), `Module`,
`Linear` and initialisers (04), losses (05), attention and embeddings (07),
LayerNorm (08), reverse-mode automatic differentiation (09) and AdamW with
learning-rate schedules (10). This chapter puts them together into the model
behind ChatGPT, at a size that trains on a laptop CPU: a **GPT**, a
decoder-only transformer that reads a text one character at a time and
learns to predict the next one.

Nothing new is needed from NumPy. Everything in this chapter is a composition
of what you already built, and that is the point: if your framework can train
a transformer, it can train most things. We build

- `CharTokenizer`: text to integer ids and back;
- `GPTConfig` and `GPT`: token and position embeddings, pre-norm transformer
  blocks (LayerNorm, causal self-attention, residual; LayerNorm, MLP,
  residual), a final LayerNorm and a language-model head tied to the token
  embeddings; `generate()` samples new text from it;
- the training recipe of nanoGPT, the reference implementation we follow
  closely: AdamW with weight decay on the matrices only, linear warm-up and
  cosine decay of the learning rate (`get_lr`), gradient clipping by global
  norm (`clip_grad_norm_`, PyTorch's name), periodic validation loss;

and we train a model in this chapter, on a small language we generate, where
we know exactly how good the best possible model is.

**What you write.** The causal self-attention forward, the transformer
block, GPT's forward pass and its sampling loop, the learning-rate schedule,
gradient clipping, and the accounting (parameters and FLOPs per token,
predicted from the configuration and checked against the measured step).
The tokenizer and the rest of the training loop are given. Each piece is
tested right after you write it. The full-size run, on
Shakespeare, is `examples/tinygpt_shakespeare.py`; its results are in the
book's results pages, measured side by side with PyTorch.

The systems question of the chapter is where a training step spends its time
and memory. A GPT has four kinds of work: embedding lookups, attention (whose
cost grows with the square of the context), the MLPs (most of the
parameters and FLOPs), and the output head (which grows with the vocabulary).
We measure each on this machine, and how the balance shifts as the context grows.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp models.gpt

# %%
import math
import os
import time
import tracemalloc

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")   # one BLAS thread, set before NumPy loads: see "Systems analysis"

import matplotlib.pyplot as plt
import numpy as np

from tinytorch import Tensor, manual_seed, no_grad
from tinytorch.core.autograd import gradcheck
from tinytorch.nn import MultiheadAttention

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
r"""
## Background

### Language modelling is next-token classification

Give the model a sequence of tokens $x_1, \dots, x_T$. At every position $t$ it
outputs a score (a *logit*) for each of the $V$ tokens of the vocabulary, and
a softmax turns the scores into a distribution $p_\theta(\cdot \mid x_{\le t})$
over what comes next. Training minimises the cross-entropy of the token that
actually came next, averaged over all positions:

$$
\mathcal{L}(\theta) = -\frac{1}{T} \sum_{t=1}^{T} \log p_\theta(x_{t+1} \mid x_1, \dots, x_t).
$$

So one sequence of length $T$ is $T$ classification examples at once, one per
position, and chapter 05's `cross_entropy` is the loss. The loss is measured
in *nats* per token; a model that knows nothing and guesses uniformly scores
$\ln V$, and $e^{\mathcal L}$ (the *perplexity*) is the number of tokens it is
effectively choosing between. The *causal mask* of chapter 07 is what makes
this honest: position $t$ must not see $x_{t+1}$, or predicting it is trivial.

**The best possible loss.** If the text comes from a source with entropy
rate $H$ nats per token, no model can average below $H$. For natural text $H$ is
unknown. For the small language we train on below it is known exactly, so we
can say how close to perfect our model gets.

### The architecture

A GPT maps ids (B, T) to logits (B, T, V) in four stages:

1. **Embed**: $x = W_{te}[\text{ids}] + W_{pe}[0..T-1]$, a (V, C) token table and
   a (block_size, C) table of learned positions, because attention by itself
   cannot tell word order (chapter 07).
2. **$L$ blocks**, each *pre-norm*:
   $x \leftarrow x + \text{Attn}(\text{LN}_1(x))$, then
   $x \leftarrow x + \text{MLP}(\text{LN}_2(x))$. Attention is where positions
   exchange information; the MLP, $C \to 4C \to C$ with a GELU, computes on
   each position alone. The residual connections let the gradient flow
   straight from the loss to every layer, and normalising *before* each
   sub-layer (GPT-2's choice, rather than after as in the original
   transformer) keeps that path free of normalisation, which is what makes
   deep stacks trainable without a careful warm-up.
3. **A final LayerNorm**.
4. **The head**: a Linear $C \to V$ whose weight *is* the token embedding
   table (*weight tying*): one (V, C) matrix maps ids to vectors at the bottom
   and vectors to scores at the top.

### Parameters and FLOPs

Per block, attention has $4C^2$ weights (the $3C$-wide query/key/value
projection and the $C$-wide output projection) and the MLP $8C^2$: $12C^2$ per
block. With biases and LayerNorms,

$$
N = \underbrace{(V + T_{\max}) C}_{\text{embeddings}} + L\,(12 C^2 + 13 C) + 2C,
$$

and the head is free because it is tied. A forward pass costs about $2N$
FLOPs per token for the matrix products (one multiply and one add per
weight), plus attention's own $2 \cdot 2 T C$ per token per layer for the
$QK^\top$ and weights-times-values products, which grows with the context
$T$. Backward costs about twice the forward, so a training step is about
$6N$ FLOPs per token plus the attention term: the rule of thumb used to
budget every large language-model run.

### Sampling

A trained model gives $p(\cdot \mid \text{context})$ for the next token. To
*generate*, draw a token from it, append it to the context, and repeat.
Dividing the logits by a *temperature* $\tau$ before the softmax sharpens
($\tau < 1$) or flattens ($\tau > 1$) the distribution; *top-k* sampling
draws only among the $k$ most likely tokens, and $k = 1$ is greedy decoding.
Each new token needs a forward pass over the whole context (up to
`block_size` tokens), so generating $n$ tokens costs $n$ forward passes.
"""

# %% [markdown]
r"""
## Implementation

### The tokenizer

A neural network eats numbers, so text must become integer ids. The
simplest tokenizer uses one id per distinct character: the vocabulary of
tiny-shakespeare is 65 characters, that of the language below 22. The ids are
the positions of the characters in the *sorted* vocabulary, so the same text
always gives the same ids (a model is useless with a tokenizer that numbers
things differently from the one it was trained with).

What happens to a character the training text never contained? There is no
id for it. The tokenizer refuses, naming the character, its code point and
its position, because silently dropping it would shift every later token;
or, if you ask for it with `unknown="?"`, every unseen character becomes
that one token, as real tokenizers do with their `<unk>`.
"""

# %% nbgrader={"grade": false, "grade_id": "tokenizer", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| export models.tokenizer

import numpy as np


class CharTokenizer:
    """Characters <-> integer ids, with the vocabulary read off a text.

    Args:
        text: the text whose distinct characters make the vocabulary (sorted, so the
            same text always gives the same ids).
        unknown: a character that stands for every character not in the vocabulary
            (added to it if the text lacks it); None makes an unseen character an error.
    """

    def __init__(self, text: str, unknown: str | None = None):
        if unknown is not None and len(unknown) != 1:
            raise ValueError(f"CharTokenizer: unknown must be a single character, not {unknown!r}")
        chars = set(text) | ({unknown} if unknown is not None else set())
        if not chars:
            raise ValueError("CharTokenizer: the text is empty, so there is no vocabulary; pass the training text")
        self.chars = sorted(chars)
        self.unknown = unknown
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.itos = dict(enumerate(self.chars))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """The id of each character of `text`."""
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.encode: expected a str, got {type(text).__name__}")
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            pass
        if self.unknown is not None:
            fallback = self.stoi[self.unknown]
            return [self.stoi.get(c, fallback) for c in text]
        position, char = next((i, c) for i, c in enumerate(text) if c not in self.stoi)
        raise ValueError(f"CharTokenizer: character {char!r} (U+{ord(char):04X}) at position {position} is not in "
                         f"the vocabulary of {self.vocab_size} characters; build the tokenizer from text that "
                         "contains it, or pass unknown='?' to map unseen characters to one id")

    def decode(self, ids) -> str:
        """The text of a sequence of ids (a list, a 1-D array or a 1-D Tensor)."""
        ids = np.asarray(getattr(ids, "data", ids)).reshape(-1)
        if ids.size and ids.dtype.kind not in "iu":            # 1.7 is no id: truncating it would hide a bug
            raise TypeError(f"CharTokenizer.decode: ids must be integers, got {ids.dtype} values such as {ids[0].item()!r}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise IndexError(f"CharTokenizer: id {bad} is outside the vocabulary (0 to {self.vocab_size - 1})")
        return "".join(self.itos[int(i)] for i in ids)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


# %% [markdown]
r"""
The test checks the round trip (decoding an encoding gives the text back),
that ids follow sorted order, that an unseen character fails with a message
that names it, and that `unknown=` maps every unseen character to one id
instead. These are the properties a saved model relies on when it is loaded
next to a tokenizer rebuilt from its saved vocabulary.
"""

# %% nbgrader={"grade": false, "grade_id": "test_unit_tokenizer", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_tokenizer():
    tok = CharTokenizer("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"] and tok.vocab_size == 8
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.decode(tok.encode("low herd")) == "low herd"
    assert tok.decode(np.array([3, 5])) == "ho"
    try:
        tok.encode("help!")
    except ValueError as err:
        assert "'p'" in str(err) and "position 3" in str(err) and "unknown=" in str(err), err
    else:
        raise AssertionError("an unseen character must be an error")
    lenient = CharTokenizer("hello", unknown="?")
    assert lenient.decode(lenient.encode("hex!")) == "he??"
    rebuilt = CharTokenizer("".join(tok.chars))            # a saved vocabulary rebuilds the same ids
    assert rebuilt.encode("world") == tok.encode("world")
    print("tokenizer: round trip, sorted ids, unknown characters: ok")


test_unit_tokenizer()

# %% [markdown]
r"""
### Configuration, and causal self-attention

The model's shape is plain data, as in nanoGPT: a `GPTConfig` dataclass with
the vocabulary size, the context length `block_size`, the number of layers,
heads and embedding width, dropout and whether the Linear layers and
LayerNorms have biases.

Chapter 07 built `MultiheadAttention` with PyTorch's interface, and it would
work here. We write the GPT's attention again, in nanoGPT's form, because it
is the clearest statement of what a GPT needs and nothing more: one Linear
produces queries, keys and values for all heads at once, and the causal mask
is a precomputed (block_size, block_size) table with $-\infty$ above the
diagonal that is *added* to the scores. $e^{-\infty} = 0$, so a future
position gets weight exactly zero, and its gradient is exactly zero too.
Chapter 07's module handles every kind of mask (boolean or float, padding,
rows with nothing left to attend to) and both tensor layouts; for causal
self-attention that generality costs a few extra elementwise passes, and
the systems analysis measures whether they matter (they hardly do). Keeping
nanoGPT's parameter names (`c_attn`, `c_proj`) has a practical payoff too:
our model's `state_dict` maps one to one onto the PyTorch reference model
the tests compare against. The mask is a buffer registered as
non-persistent: it follows the model's dtype but is not saved, since it is
rebuilt from the config.

Heads are a reshape, not separate layers: (B, T, 3C) splits into q, k, v of
(B, T, C) each, and each becomes (B, nh, T, hs) with $hs = C / nh$, so the
matmuls of chapter 02 run all heads of all sequences as one batched product.
The shape comments follow nanoGPT's convention.

Dropout (probability `config.dropout`, off by default and in our runs) is
applied to the attention weights and to every sub-layer's output, only in
training mode, with chapter 13's `dropout` (a random keep-mask and `Mul`).
"""

# %% nbgrader={"grade": false, "grade_id": "impl_causal_self_attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export

import math
from dataclasses import dataclass

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor
from tinytorch.nn import init
from tinytorch.nn.activation import GELU, softmax
from tinytorch.nn.attention import Embedding
from tinytorch.nn.layers import Linear, ModuleList
from tinytorch.nn.loss import cross_entropy
from tinytorch.nn.module import Module
from tinytorch.nn.normalization import LayerNorm
from tinytorch.nn.regularization import dropout


@dataclass
class GPTConfig:
    """The shape of a GPT, as plain values (nanoGPT's names)."""

    vocab_size: int
    block_size: int          # the longest context the model reads
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True        # biases in the Linear layers and LayerNorms

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
                raise ValueError(f"GPTConfig: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"GPTConfig: dropout must be a probability in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, (bool, np.bool_)):
            raise TypeError(f"GPTConfig: bias must be True or False, got {self.bias!r}")


class CausalSelfAttention(Module):
    """Multi-head self-attention in which position t reads only positions 0..t.

    One Linear makes queries, keys and values at once (n_embd -> 3 n_embd); the
    heads are a reshape of that, not separate layers.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
        self.n_head, self.dropout = config.n_head, config.dropout
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        T = config.block_size
        mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), k=1)   # -inf above the diagonal: the future
        self.register_buffer("mask", Tensor(mask), persistent=False)

    def forward(self, x: Tensor, cache=None) -> Tensor:
        """Causal multi-head self-attention: x (B, T, C) -> (B, T, C).

        Position t may attend only to positions 0..t: add the (T, T) slice of
        `self.mask` (0 on and below the diagonal, -inf above) to the scores before
        the softmax. The heads are a reshape, not separate layers.
        `cache` is None in this chapter; chapter 18 passes a key/value cache whose
        `update(k, v)` stores the new keys and values and returns all of them so far.
        """
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        # 1. One projection: qkv = self.c_attn(x), (B, T, 3C); split it into q, k, v of (B, T, C) each.
        # 2. Heads: reshape each to (B, T, nh, hs), then transpose(1, 2) to (B, nh, T, hs).
        # 3. Scores q @ k^T scaled by 1/sqrt(hs): (B, nh, T, T); add the mask sliced to [:T, :T]
        #    (as a Tensor of the scores' dtype), softmax over the last axis, then chapter 13's
        #    dropout(att, self.dropout, self.training).
        # 4. y = att @ v (B, nh, T, hs); merge the heads back: transpose(1, 2), reshape (B, T, C);
        #    return dropout(self.c_proj(y), ...). Pitfall: reshape (B, nh, T, hs) straight to
        #    (B, T, C) without the transpose mixes heads and positions, and still has the right shape.
        # With a cache (chapter 18): after step 2, k, v = cache.update(k, v), now (B, nh, L, hs) with
        # L = k.shape[2] positions; the queries are the last T of them, so the mask is [L - T:L, :L]
        # (without a cache L == T and that is the [:T, :T] of step 3).
        ### BEGIN SOLUTION
        qkv = self.c_attn(x)                                   # (B, T, 3C)
        q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]   # each (B, T, C)
        q = q.reshape(B, T, nh, hs).transpose(1, 2)            # (B, T, nh, hs) -> (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2)            # (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2)            # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(k, v)                          # (B, nh, L, hs): every position so far
        L = k.shape[2]                                         # keys: L positions, the last T of them are new
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))   # (B, nh, T, hs) @ (B, nh, hs, L) -> (B, nh, T, L)
        mask = Tensor(self.mask.data[L - T:L, :L].astype(att.dtype, copy=False))   # (T, L), broadcast over B, nh
        att = softmax(att + mask, dim=-1)                      # future positions get weight exactly 0
        att = dropout(att, self.dropout, self.training)
        y = att @ v                                            # (B, nh, T, L) @ (B, nh, L, hs) -> (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)                 # (B, nh, T, hs) -> (B, T, nh, hs) -> (B, T, C)
        return dropout(self.c_proj(y), self.dropout, self.training)   # (B, T, C)
        ### END SOLUTION


# %% [markdown]
r"""
The test builds one attention layer and checks it against the formula written
out in plain NumPy (the same weights, one head at a time, a loop over heads),
and checks causality directly: changing the input at position 3 must leave the
outputs at positions 0 to 2 exactly as they were.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_causal_self_attention", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_causal_self_attention():
    manual_seed(4)
    config = GPTConfig(vocab_size=5, block_size=6, n_layer=1, n_head=2, n_embd=8)
    attn = CausalSelfAttention(config)
    x = np.random.default_rng(4).standard_normal((2, 5, 8)).astype(np.float32)
    y = attn(Tensor(x))
    assert y.shape == (2, 5, 8), f"CausalSelfAttention must keep the shape (B, T, C): got {y.shape}"
    W, b = attn.c_attn.weight.data, attn.c_attn.bias.data      # (3C, C), (3C,): PyTorch's Linear layout
    qkv = x @ W.T + b                                            # (B, T, 3C)
    heads = []
    for h in range(2):                                           # one head at a time, hs = 4
        q, k, v = (qkv[..., i * 8 + h * 4: i * 8 + h * 4 + 4] for i in range(3))   # each (B, T, hs)
        scores = q @ k.transpose(0, 2, 1) / 2.0                  # (B, T, T), sqrt(hs) = 2
        scores = np.where(np.tril(np.ones((5, 5), dtype=bool)), scores, -np.inf)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append((weights / weights.sum(-1, keepdims=True)) @ v)                # (B, T, hs)
    expected = np.concatenate(heads, axis=-1) @ attn.c_proj.weight.data.T + attn.c_proj.bias.data
    np.testing.assert_allclose(y.data, expected, rtol=1e-4, atol=1e-5,
                               err_msg="attention differs from softmax(q k^T / sqrt(hs) + mask) v per head")
    changed = x.copy()
    changed[:, 3] += 1.0
    after = attn(Tensor(changed)).data
    assert np.array_equal(after[:, :3], y.data[:, :3]), "position 3 changed an earlier output: the mask is missing"
    assert not np.allclose(after[:, 3:], y.data[:, 3:]), "positions from 3 on must see the change"
    print("causal self-attention: matches the per-head formula, position t reads only 0..t: ok")


test_unit_causal_self_attention()

# %% [markdown]
r"""
### The block and the GPT

The MLP is two Linear layers with chapter 03's GELU between them (the tanh
form, which GPT-2 used). A `Block` is the two residual sub-layers. `GPT` wires
embeddings, blocks, final LayerNorm and head, and follows GPT-2's
initialisation: every weight matrix from $\mathcal N(0, 0.02^2)$, biases zero,
and the two projections that write into the residual stream (`c_proj`) scaled
down by $1/\sqrt{2L}$, so that the sum of $2L$ residual contributions starts
at the same scale whatever the depth.

`forward(idx, targets=None)` returns `(logits, loss)`: logits (B, T, V)
always, and the mean cross-entropy when targets (B, T) are given, computed by
flattening to (B·T, V) rows. `num_parameters()` counts the tied matrix once.
`generate()` implements the sampling loop of the background: crop the context
to the last `block_size` tokens, run the model, keep the last position's
logits, apply temperature and top-k, sample from the softmax by inverting its
cumulative sum with one uniform draw per sequence, append, repeat. With a
`seed` it draws from its own `np.random.default_rng(seed)`, so the same seed
gives the same text; it runs under `no_grad()`, because sampling needs no graph.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_block", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export

class MLP(Module):
    """Position-wise feed-forward: Linear to 4 n_embd, GELU, Linear back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = GELU(approximate="tanh")                    # GPT-2's form
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout

    def forward(self, x: Tensor) -> Tensor:
        h = self.gelu(self.c_fc(x))                            # (B, T, C) -> (B, T, 4C)
        return dropout(self.c_proj(h), self.dropout, self.training)   # (B, T, 4C) -> (B, T, C)


class Block(Module):
    """A pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache=None) -> Tensor:
        """x (B, T, C) -> (B, T, C) through the two residual sub-layers, pre-norm (GPT-2's order).

        First attention reads a normalised copy of the residual stream and adds its
        result back to the stream; then the MLP does the same with its own LayerNorm.
        `cache` (this layer's key/value cache, chapter 18; None here) goes to the attention.
        """
        # Pitfall 1: the residual adds to x, not to the normalised copy (x + attn(ln_1(x)),
        # not ln_1(x) + attn(...)): the stream itself is never normalised inside a block.
        # Pitfall 2: the MLP reads the stream *after* attention's update, not the block's input.
        ### BEGIN SOLUTION
        x = x + self.attn(self.ln_1(x), cache)                 # (B, T, C): positions exchange information
        return x + self.mlp(self.ln_2(x))                      # (B, T, C): each position computes alone
        ### END SOLUTION


# %% [markdown]
r"""
The test checks the block against the two residual updates written out with
its own sub-layers, and that the residual path is really there: with both
sub-layers' output projections zeroed, a block is the identity.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_block", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_block():
    manual_seed(5)
    block = Block(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8))
    x = Tensor(np.random.default_rng(5).standard_normal((2, 4, 8)).astype(np.float32))
    mid = x.data + block.attn(block.ln_1(x)).data
    expected = mid + block.mlp(block.ln_2(Tensor(mid))).data
    np.testing.assert_allclose(block(x).data, expected, rtol=1e-5, atol=1e-6,
                               err_msg="Block must compute x + attn(ln_1(x)), then that + mlp(ln_2(that))")
    for proj in (block.attn.c_proj, block.mlp.c_proj):
        proj.weight.data[...] = 0.0
        proj.bias.data[...] = 0.0
    assert np.array_equal(block(x).data, x.data), "with zero sub-layer outputs a block must return its input"
    print("block: pre-norm residual sub-layers, identity when they write nothing: ok")


test_unit_block()

# %% [markdown]
r"""
Now the model around the blocks.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_gpt", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export

class GPT(Module):
    """A decoder-only transformer language model: ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd)   # token embeddings
        self.wpe = Embedding(config.block_size, config.n_embd)   # learned position embeddings
        self.h = ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight                    # weight tying: one (V, C) matrix, two uses
        self._init_weights(config)

    def _init_weights(self, config: GPTConfig) -> None:
        """GPT-2's initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by 1/sqrt(2 n_layer)."""
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                init.zeros_(p)
            elif p.ndim == 2:                                    # Linear and Embedding weights, not LayerNorm's
                std = 0.02 / math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else 0.02
                init.normal_(p, 0.0, std)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters (the tied head counted once); non_embedding leaves out the position table."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(self, idx, targets=None, cache=None) -> tuple[Tensor, Tensor | None]:
        """Logits for every position, and the mean cross-entropy against `targets` (B, T) if given.

        `cache` (chapter 18; None here) is a list with one key/value cache per block, holding
        `len(cache[0])` earlier positions: idx then continues them, at positions start..start+T-1.
        """
        idx = np.asarray(getattr(idx, "data", idx))
        if idx.ndim != 2:
            raise ValueError(f"GPT expects token ids of shape (B, T), got {idx.shape}; add a batch axis with idx[None]")
        B, T = idx.shape
        if B == 0 or T == 0:
            raise ValueError(f"GPT: got an empty batch of ids {idx.shape}; give at least one token per sequence")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"GPT expects integer token ids, got {idx.dtype}")
        start = 0 if cache is None else len(cache[0])           # positions already cached
        if start + T > self.config.block_size:
            raise ValueError(f"GPT: sequence length {start + T} exceeds block_size {self.config.block_size}; "
                             f"crop the input to its last {self.config.block_size} tokens")
        if cache is not None and len(cache) != len(self.h):
            raise ValueError(f"GPT: the cache has {len(cache)} layers, the model {len(self.h)}; make one per block")
        # 1. x = token embeddings of idx plus position embeddings of start..start+T-1 (start = 0
        #    without a cache): (B, T, C) + (T, C);
        #    then dropout (chapter 13's dropout(x, self.config.dropout, self.training)).
        # 2. Every block in self.h in turn (block i gets cache[i], or None), then ln_f, then lm_head:
        #    logits (B, T, V).
        # 3. With targets: the mean cross_entropy of logits flattened to (B*T, V) against targets
        #    flattened to (B*T,). Pitfall: cross_entropy wants one row per prediction, so flatten
        #    both; check targets.shape == (B, T) first and raise ValueError otherwise.
        ### BEGIN SOLUTION
        x = self.wte(idx) + self.wpe(np.arange(start, start + T))   # (B, T, C) + (T, C) -> (B, T, C)
        x = dropout(x, self.config.dropout, self.training)
        for i, block in enumerate(self.h):
            x = block(x, None if cache is None else cache[i])    # (B, T, C)
        logits = self.lm_head(self.ln_f(x))                      # (B, T, C) -> (B, T, V)
        if targets is None:
            return logits, None
        targets = np.asarray(getattr(targets, "data", targets))
        if targets.shape != (B, T):
            raise ValueError(f"GPT: targets must have the shape of idx, {(B, T)}, got {targets.shape}")
        loss = cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))   # (B*T, V) vs (B*T,)
        return logits, loss
        ### END SOLUTION

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> Tensor:
        """Extend idx (B, T) by max_new_tokens sampled tokens, one at a time; returns (B, T + max_new_tokens).

        Args:
            temperature: divides the logits; below 1 sharpens the distribution, above 1 flattens it.
            top_k: sample only among the k most likely tokens (top_k=1 is greedy decoding).
            seed: draw from np.random.default_rng(seed), so the same seed gives the same text;
                None draws from tinytorch's generator (see manual_seed).
        Call model.eval() first if the model has dropout.
        """
        if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
        if not isinstance(temperature, (int, float, np.integer, np.floating)) or isinstance(temperature, bool) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"generate: temperature must be a finite number > 0, got {temperature!r}; "
                             "use top_k=1 for greedy decoding")
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"generate: top_k must be a positive number of tokens, got {top_k!r}")
        idx = np.asarray(getattr(idx, "data", idx))
        if idx.ndim != 2:
            raise ValueError(f"generate expects ids of shape (B, T), got {idx.shape}; add a batch axis with idx[None]")
        if idx.shape[0] == 0 or idx.shape[1] == 0:
            raise ValueError(f"generate: the context {idx.shape} is empty; start from at least one token per sequence")
        if idx.dtype.kind not in "iu":
            raise TypeError(f"generate expects integer token ids, got {idx.dtype}")
        if idx.min() < 0 or idx.max() >= self.config.vocab_size:
            raise ValueError(f"generate: token id {int(idx.min() if idx.min() < 0 else idx.max())} is outside the "
                             f"vocabulary (0 to {self.config.vocab_size - 1})")
        idx = idx.astype(np.int64)
        rng = init.generator() if seed is None else np.random.default_rng(seed)
        # Each of max_new_tokens steps, under no_grad() (sampling needs no graph):
        # 1. crop the context to its last block_size tokens and run the model: logits (B, t, V);
        #    keep the last position's row, (B, V), divided by temperature;
        # 2. top_k: set every logit below the k-th largest of its row to -inf (skip when top_k is None);
        # 3. probabilities = softmax(...) as float64; sample by inverting the cumulative sum with ONE
        #    draw per sequence, u = rng.random((B, 1)) * cdf[:, -1:], next id = count of cdf < u
        #    (clamped to V - 1). Pitfall: use `rng`, and exactly one draw per sequence per step,
        #    or the same seed stops giving the same text. Append the ids: (B, t + 1).
        ### BEGIN SOLUTION
        with no_grad():
            for _ in range(max_new_tokens):
                context = idx[:, -self.config.block_size:]             # (B, t): at most block_size tokens
                logits, _ = self(context)                              # (B, t, V)
                logits = logits[:, -1, :] * (1.0 / temperature)        # (B, V): the last position predicts
                if top_k is not None and top_k < logits.shape[-1]:
                    kth = np.sort(logits.data, axis=-1)[:, -top_k][:, None]          # (B, 1): k-th largest
                    logits = logits + Tensor(np.where(logits.data < kth, -np.inf, 0.0).astype(logits.dtype))
                probs = softmax(logits, dim=-1).data.astype(np.float64)            # (B, V)
                cdf = np.cumsum(probs, axis=-1)                                    # (B, V)
                u = rng.random((idx.shape[0], 1)) * cdf[:, -1:]                    # (B, 1): one draw per sequence
                nxt = np.minimum((cdf < u).sum(axis=-1), logits.shape[-1] - 1)     # (B,): first id with cdf >= u
                idx = np.concatenate([idx, nxt[:, None]], axis=1)                  # (B, t + 1)
        ### END SOLUTION
        return Tensor(idx)

    def extra_repr(self) -> str:
        return f"{self.num_parameters():,} parameters"


# %% [markdown]
r"""
The first test is the one property a language model cannot do without:
**causality**. We change the token at position 5 of a sequence and check that
the logits at positions 0 to 4 do not change at all (bit for bit), while
those from 5 on do. It also checks the shapes, the parameter count against
the formula of the background, that the head really shares the embedding
matrix, that an untrained model's loss is close to $\ln V$ (GPT-2's small
initialisation makes its first guesses nearly uniform), and the errors for
inputs longer than `block_size`.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_gpt_forward", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_gpt_forward():
    manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    model = GPT(config)
    V, T, C, L = config.vocab_size, config.block_size, config.n_embd, config.n_layer
    assert model.num_parameters() == (V + T) * C + L * (12 * C * C + 13 * C) + 2 * C
    assert model.lm_head.weight is model.wte.weight
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, V, size=(3, T)), rng.integers(0, V, size=(3, T))
    logits, loss = model(ids, targets)
    assert logits.shape == (3, T, V) and loss.shape == ()
    assert abs(loss.item() - math.log(V)) < 0.1, f"untrained loss {loss.item():.3f} should be near ln V = {math.log(V):.3f}"
    changed = ids.copy()
    changed[:, 5] = (changed[:, 5] + 1) % V
    after, _ = model(changed)
    assert np.array_equal(logits.data[:, :5], after.data[:, :5]), "a later token changed an earlier logit"
    assert not np.allclose(logits.data[:, 5:], after.data[:, 5:]), "position 5 onwards must see the change"
    assert model(ids[:, :3])[0].shape == (3, 3, V)            # shorter contexts work
    try:
        model(np.zeros((1, T + 1), dtype=np.int64))
    except ValueError as err:
        assert "block_size" in str(err)
    else:
        raise AssertionError("a sequence longer than block_size must be an error")
    print(f"GPT forward: shapes, {model.num_parameters()} parameters, causality, loss at init {loss.item():.3f} "
          f"(ln V = {math.log(V):.3f}): ok")


test_unit_gpt_forward()

# %% [markdown]
r"""
Next the gradients. The whole model is built from chapter 02's primitives, so
chapter 09's backward rules differentiate it without a line of new code. We
check it end to end: cast a tiny GPT to float64 and compare the gradient of
the loss with respect to *every* parameter with central finite differences
(`gradcheck`). This covers the tied weight (which receives gradient from both
the embedding lookup and the head, and must sum them), the masked softmax and
the GELU in one go.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_gpt_gradients", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_gpt_gradients():
    manual_seed(1)
    model = GPT(GPTConfig(vocab_size=7, block_size=5, n_layer=1, n_head=2, n_embd=4)).double()
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, 7, size=(2, 5)), rng.integers(0, 7, size=(2, 5))
    params = list(model.parameters())
    assert gradcheck(lambda *ps: model(ids, targets)[1], params)
    print(f"GPT gradients: all {sum(p.numel() for p in params)} parameters agree with finite differences")


test_unit_gpt_gradients()

# %% [markdown]
r"""
Sampling must be reproducible: with the same seed, the same text. And top-k
with $k = 1$ must be greedy decoding, the argmax at every step, which we
check against a hand-written greedy loop.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_generate", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_generate():
    manual_seed(2)
    model = GPT(GPTConfig(vocab_size=9, block_size=6, n_layer=1, n_head=2, n_embd=8))
    start = np.array([[1, 2], [3, 4]])
    a = model.generate(start, 10, seed=7).data
    b = model.generate(start, 10, seed=7).data
    assert a.shape == (2, 12) and np.array_equal(a[:, :2], start)
    assert np.array_equal(a, b), "the same seed must give the same tokens"
    assert not np.array_equal(a, model.generate(start, 10, seed=8).data)
    greedy = model.generate(start, 8, top_k=1).data
    ids = start.copy()
    for _ in range(8):                                          # the same, by hand, with argmax
        logits, _ = model(ids[:, -6:])
        ids = np.concatenate([ids, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    assert np.array_equal(greedy, ids), "top_k=1 must be greedy decoding"
    print("generate: seeded sampling repeats, top_k=1 is greedy, contexts past block_size are cropped: ok")


test_unit_generate()

# %% [markdown]
r"""
### The training recipe

A transformer trains well only with a few details right. We follow nanoGPT,
which reproduces GPT-2, and put the pieces in `tinytorch.models.train`:

- **Batches** are random windows: `get_batch` picks `batch_size` start
  positions in the token array and returns windows x (B, T) and the same
  windows shifted by one, y, the targets.
- **AdamW** (chapter 10) with weight decay on the weight *matrices* only.
  Biases and LayerNorm gains go in a second parameter group with
  `weight_decay=0`: shrinking a LayerNorm gain towards zero would shrink the
  layer's output, which is not regularisation. nanoGPT uses $\beta_2 = 0.99$
  for small models trained on few tokens.
- **Learning-rate warm-up, then cosine decay** (`get_lr`): in the first
  steps Adam's second-moment estimates come from a handful of gradients and
  are unreliable, and a full-size step then can throw the model into a bad
  region. So the rate climbs linearly over `warmup_iters` steps, then
  follows half a cosine down to `min_lr` at `lr_decay_iters`:
  $\eta_{it} = \eta_{\min} + \tfrac12(1 + \cos \pi r)(\eta - \eta_{\min})$
  with $r$ the fraction of the decay done.
- **Gradient clipping by global norm** (`clip_grad_norm_`, PyTorch's name
  and semantics): compute $\|g\| = \sqrt{\sum_p \|g_p\|^2}$ over *all*
  parameters; if it exceeds `max_norm`, multiply every gradient by
  `max_norm / ‖g‖`. The direction of the step is unchanged; only a rare huge
  gradient (a spike) is tamed. It returns the norm before clipping, worth
  logging: a rising gradient norm is an early sign of instability.
- **Validation**: every `eval_interval` steps, `estimate_loss` averages the
  loss over `eval_iters` random batches of each split, in eval mode and under
  `no_grad()` (no graph is kept, so evaluation costs only forward passes).

`train()` is the loop, written once and used by this chapter and by the
Shakespeare example; it sets each step's learning rate into the optimizer's
parameter groups, and calls optional `on_step`/`on_eval` functions (the
example uses them for a progress bar). Everything it needs comes from
earlier chapters; nothing here touches `.data` in a way that must be
differentiated: clipping and the learning rate act *between* backward and the
optimizer step, on gradients, as in PyTorch (which does them under `no_grad`).
"""

# %% nbgrader={"grade": false, "grade_id": "impl_clip_grad_norm", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export nn.utils.clip_grad
import math

import numpy as np

from tinytorch.core.tensor import Tensor


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> Tensor:
    """Scale all gradients by one factor so that their global norm is at most max_norm.

    Returns the total norm before clipping, as torch.nn.utils.clip_grad_norm_ does.
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad.data for p in params if p.grad is not None]
    if not grads:
        return Tensor(np.float32(0.0))
    # 1. The total norm over ALL gradients together (not one norm per parameter):
    #    norm_type 2 -> sqrt(sum of every squared entry); math.inf -> the largest |entry|;
    #    any other p -> (sum |entry|^p)^(1/p).
    # 2. coef = max_norm / (total + 1e-6); only if coef < 1, multiply every gradient by coef
    #    IN PLACE (g *= coef): the optimizer reads p.grad, and small gradients stay untouched.
    # 3. Return the total norm from before clipping, as a 0-d Tensor of the gradients' dtype.
    ### BEGIN SOLUTION
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) for g in grads)
    elif norm_type == 2.0:
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))         # one BLAS dot per gradient
    else:
        total = sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef                                  # in place: every gradient shrinks by the same factor
    return Tensor(np.asarray(total, dtype=grads[0].dtype))
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "impl_training_recipe", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export models.train

import ctypes
import math
import platform
import time
from dataclasses import dataclass

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.optim.optimizers import AdamW


def get_batch(data: np.ndarray, batch_size: int, block_size: int, rng: np.random.Generator):
    """batch_size random windows of a 1-D id array: inputs x (B, T) and targets y = x shifted by one."""
    if len(data) <= block_size:
        raise ValueError(f"get_batch: {len(data)} tokens are too few for windows of block_size {block_size} "
                         "plus one target; use more text or a smaller block_size")
    starts = rng.integers(0, len(data) - block_size, size=batch_size)        # (B,)
    offsets = starts[:, None] + np.arange(block_size)                        # (B, T)
    return data[offsets], data[offsets + 1]                                  # x (B, T), y (B, T)


def get_lr(it: int, learning_rate: float, warmup_iters: int, lr_decay_iters: int, min_lr: float) -> float:
    """nanoGPT's schedule: linear warm-up for warmup_iters steps, cosine decay to min_lr at lr_decay_iters, then flat.

    Returns the learning rate for step `it` (0-based), a float.
    """
    # 1. Warm-up, it < warmup_iters: learning_rate * (it + 1) / (warmup_iters + 1), so step 0 is
    #    already above zero and the peak is reached at it = warmup_iters.
    # 2. After lr_decay_iters: min_lr, flat.
    # 3. In between: ratio r = (it - warmup_iters) / (lr_decay_iters - warmup_iters) goes 0 -> 1, and
    #    lr = min_lr + 0.5 * (1 + cos(pi * r)) * (learning_rate - min_lr). Pitfall: guard the
    #    division when lr_decay_iters == warmup_iters (max(1, ...)).
    ### BEGIN SOLUTION
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)     # 0 -> 1 over the decay
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)
    ### END SOLUTION


def configure_optimizers(model, weight_decay: float, learning_rate: float, betas=(0.9, 0.95)) -> AdamW:
    """AdamW with weight decay on the matrices only: biases and LayerNorm gains go in a group without it."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return AdamW(groups, lr=learning_rate, betas=betas)


@no_grad()
def estimate_loss(model, splits: dict, eval_iters: int, batch_size: int, block_size: int,
                  rng: np.random.Generator) -> dict:
    """Mean loss over eval_iters random batches of each split, in eval mode (the previous mode is restored)."""
    was_training = model.training
    model.eval()
    out = {}
    for name, data in splits.items():
        losses = [model(*get_batch(data, batch_size, block_size, rng))[1].item() for _ in range(eval_iters)]
        out[name] = float(np.mean(losses))
    model.train(was_training)
    return out


def reuse_freed_memory(keep_bytes: int = 256 << 20) -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of handing it back to the OS.

    Every training step allocates and frees the same large arrays; by default glibc maps
    big ones fresh from the OS and unmaps them on free, so each step pays a page fault
    per 4 KB touched (see the chapter's systems analysis). This raises the two thresholds
    (M_MMAP_THRESHOLD to 32 MB, M_TRIM_THRESHOLD to keep_bytes) for the whole process.
    Returns False, changing nothing, where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                 # from glibc's <malloc.h>
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, int(keep_bytes)))


@dataclass
class TrainConfig:
    """How to train: nanoGPT's names, and its shakespeare_char settings for a CPU as defaults."""

    max_iters: int = 2000
    batch_size: int = 12
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0           # 0 turns clipping off
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337                 # batches are drawn from batch_generators(seed)


def batch_generators(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators derived from `seed`: one for training batches, one for evaluation.

    They are spawned from a SeedSequence rather than made with default_rng(seed) and
    default_rng(seed + 1): manual_seed(seed) already uses default_rng(seed) for the initial
    weights, and a second generator with the same seed would replay the very bits that drew
    them, so the first batches would depend on the first weights.
    """
    train_seq, eval_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(train_seq), np.random.default_rng(eval_seq)


def train(model, train_data: np.ndarray, val_data: np.ndarray, config: TrainConfig,
          on_step=None, on_eval=None, optimizer=None) -> dict:
    """Train a GPT on random windows of train_data, evaluating both splits every eval_interval steps.

    on_step(it, loss, lr, seconds) and on_eval(it, losses) are called if given (progress
    bars, logging); optimizer defaults to configure_optimizers(...). Returns the history:
    per-step lists "loss", "lr", "grad_norm", "seconds", and "eval", a list of (it, {split: loss}).
    """
    rng, eval_rng = batch_generators(config.seed)
    block_size = model.config.block_size
    if optimizer is None:
        optimizer = configure_optimizers(model, config.weight_decay, config.learning_rate,
                                         (config.beta1, config.beta2))
    history = {"loss": [], "lr": [], "grad_norm": [], "seconds": [], "eval": []}
    splits = {"train": train_data, "val": val_data}
    model.train()
    for it in range(config.max_iters + 1):
        if it % config.eval_interval == 0 or it == config.max_iters:
            losses = estimate_loss(model, splits, config.eval_iters, config.batch_size, block_size, eval_rng)
            history["eval"].append((it, losses))
            if on_eval is not None:
                on_eval(it, losses)
        if it == config.max_iters:
            break
        start = time.perf_counter()
        lr = get_lr(it, config.learning_rate, config.warmup_iters, config.lr_decay_iters, config.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, config.batch_size, block_size, rng)
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        norm = clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
        optimizer.step()
        seconds = time.perf_counter() - start
        for key, value in (("loss", loss.item()), ("lr", lr), ("grad_norm", norm.item()), ("seconds", seconds)):
            history[key].append(value)
        if on_step is not None:
            on_step(it, history["loss"][-1], lr, seconds)
    return history


# %% [markdown]
r"""
You write two pieces of the recipe: the schedule `get_lr` and the clipping
`clip_grad_norm_`. The first test checks the schedule at its landmarks (the
first warm-up step, the peak, half-way through the decay, the end and beyond).
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_get_lr", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_get_lr():
    lr = dict(learning_rate=1e-3, warmup_iters=100, lr_decay_iters=2000, min_lr=1e-4)
    assert math.isclose(get_lr(0, **lr), 1e-3 / 101), f"step 0 of warm-up: {get_lr(0, **lr)}, expected 1e-3/101"
    assert math.isclose(get_lr(99, **lr), 1e-3 * 100 / 101)
    assert math.isclose(get_lr(100, **lr), 1e-3), "the peak is reached at it = warmup_iters"
    assert math.isclose(get_lr(1050, **lr), (1e-3 + 1e-4) / 2), "half-way through the decay is the mean of the ends"
    assert math.isclose(get_lr(2000, **lr), 1e-4) and get_lr(5000, **lr) == 1e-4, "after the decay: min_lr, flat"
    ### BEGIN HIDDEN TESTS
    assert math.isclose(get_lr(575, **lr), 1e-4 + 0.5 * (1 + math.cos(math.pi * 0.25)) * 9e-4)
    assert math.isclose(get_lr(3, learning_rate=1.0, warmup_iters=3, lr_decay_iters=3, min_lr=0.5), 1.0)
    ### END HIDDEN TESTS
    print("get_lr: warm-up, peak, cosine decay, floor: ok")


test_unit_get_lr()

# %% [markdown]
r"""
Clipping must leave a small gradient alone, scale a large one to exactly
`max_norm` *in the same direction*, use one norm over all parameters, and
return the norm from before clipping (the number worth logging).
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_clip_grad_norm", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_clip_grad_norm():
    a, b = Tensor(np.zeros(3), requires_grad=True), Tensor(np.zeros(4), requires_grad=True)
    a.grad, b.grad = Tensor(np.array([3.0, 0, 0])), Tensor(np.array([0, 4.0, 0, 0]))
    norm = clip_grad_norm_([a, b], max_norm=10.0)
    assert math.isclose(norm.item(), 5.0), f"the global norm of (3, 4) is 5, got {norm.item()}"
    assert a.grad.data[0] == 3.0, "a norm below max_norm must be left alone"
    norm = clip_grad_norm_([a, b], max_norm=1.0)
    assert math.isclose(norm.item(), 5.0), "clip_grad_norm_ returns the norm before clipping"
    assert np.allclose(a.grad.data, [0.6, 0, 0], atol=1e-6) and np.allclose(b.grad.data, [0, 0.8, 0, 0], atol=1e-6), \
        "every gradient must be scaled by the same factor max_norm / total (one norm over all parameters)"
    c = Tensor(np.zeros(2), requires_grad=True)
    c.grad = Tensor(np.array([-7.0, 2.0]))
    assert math.isclose(clip_grad_norm_([c], 100.0, norm_type=math.inf).item(), 7.0), "the inf-norm is the largest |g|"
    print("clip_grad_norm_: one global norm, in-place scaling, norm before clipping: ok")


test_unit_clip_grad_norm()

# %% [markdown]
r"""
The rest of the recipe is given: the optimizer groups must put weight decay
on matrices only, batches must be windows with targets shifted by one, and
the training and evaluation generators must repeat with their seed but draw
nothing in common with the generator that initialised the weights.
"""

# %% nbgrader={"grade": false, "grade_id": "test_unit_training_helpers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_training_helpers():
    manual_seed(3)
    model = GPT(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4))
    decay, no_decay = configure_optimizers(model, 0.1, 1e-3).param_groups
    assert decay["weight_decay"] == 0.1 and all(p.ndim == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim == 1 for p in no_decay["params"])
    x, y = get_batch(np.arange(100), batch_size=3, block_size=8, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (3, 8) and np.array_equal(y, x + 1)
    draws = lambda g: g.integers(0, 2**62, 4).tolist()                 # noqa: E731
    t1, t2 = batch_generators(5)[0], batch_generators(5)[0]
    assert draws(t1) == draws(t2), "the same seed must give the same batches"
    firsts = [draws(g) for g in (*batch_generators(5), np.random.default_rng(5))]
    assert len({tuple(f) for f in firsts}) == 3, "training, evaluation and initialisation streams must differ"
    print("training helpers: weight-decay groups, batches, generators: ok")


test_unit_training_helpers()

# %% [markdown]
r"""
## Training on a language we know

Shakespeare is the classic test, but it takes minutes and its best possible
loss is unknown. Here we generate text from a small grammar instead: every
line is *subject verb object.*, the subject singular or plural ("the cat",
"two dogs"), the verb agreeing with it ("sees" after a singular subject,
"see" after a plural one), the object any of four. All choices are uniform,
so there are 2 × 4 × 4 × 4 = 128 equally likely sentences, and the entropy of
a sentence is exactly $\ln 128$ nats. Divided by the mean sentence length in
characters (the newline included), that is the **entropy rate**: the lowest
loss per character any model can reach on this text.

To reach it, the model has to learn spelling (after "chas" comes "e"), word
order, and the one long-range dependency: whether the verb ends in *s*
depends on the subject's last letter several characters back. That is
attention's job.
"""

# %%
SUBJECTS = {"singular": ["the cat", "a dog", "my friend", "the bird"],
            "plural": ["the cats", "two dogs", "my friends", "the birds"]}
VERBS = {"singular": ["sees", "likes", "chases", "finds"], "plural": ["see", "like", "chase", "find"]}
OBJECTS = ["the ball", "a fish", "the tree", "some milk"]
SENTENCES = [f"{s} {v} {o}.\n" for n in SUBJECTS for s in SUBJECTS[n] for v in VERBS[n] for o in OBJECTS]


def grammar_text(n_sentences: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return "".join(SENTENCES[i] for i in rng.integers(0, len(SENTENCES), size=n_sentences))


text = grammar_text(4000, seed=0)
entropy_rate = math.log(len(SENTENCES)) / np.mean([len(s) for s in SENTENCES])   # nats per character
tokenizer = CharTokenizer(text)
data = np.array(tokenizer.encode(text), dtype=np.int64)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]
print(f"{len(text):,} characters, vocabulary of {tokenizer.vocab_size}: {''.join(tokenizer.chars)!r}")
print(f"train {len(train_data):,} / validation {len(val_data):,} tokens")
print(f"uniform guessing: ln {tokenizer.vocab_size} = {math.log(tokenizer.vocab_size):.3f} nats/char; "
      f"the best possible model: {entropy_rate:.3f} nats/char")
print(text[:75])

# %% [markdown]
r"""
We judge samples the way a reader would: split generated text into lines and
count how many are one of the 128 sentences of the language. A line that is a
valid subject, verb and object but with the verb in the wrong number is an
*agreement error*, the mistake that only attention over the earlier
characters can avoid.
"""

# %%
def judge(lines: list[str]) -> dict:
    """Fractions of lines that are sentences of the language, and that fail only on agreement."""
    valid = {s.strip() for s in SENTENCES}
    all_verbs = VERBS["singular"] + VERBS["plural"]
    any_number = {f"{s} {v} {o}." for n in SUBJECTS for s in SUBJECTS[n] for v in all_verbs for o in OBJECTS}
    if not lines:
        return {"correct": 0.0, "agreement_errors": 0.0}
    correct = sum(line in valid for line in lines)
    agreement = sum(line in any_number and line not in valid for line in lines)
    return {"correct": correct / len(lines), "agreement_errors": agreement / len(lines)}


def sample_lines(model, n_tokens: int, seed: int, rows: int = 4) -> list[str]:
    """Generate n_tokens in all, as `rows` sequences in one batch (one forward per token), each
    from a newline; drop each one's unfinished last line."""
    start = np.full((rows, 1), tokenizer.stoi["\n"])                  # (rows, 1)
    out = model.generate(start, n_tokens // rows, seed=seed).data       # (rows, 1 + n_tokens // rows)
    lines = [tokenizer.decode(row).strip("\n").split("\n")[:-1] for row in out]
    return [line for row_lines in lines for line in row_lines]


manual_seed(0)
config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=4, n_embd=64)
model = GPT(config)
print(model)
print(f"{model.num_parameters():,} parameters")
before = sample_lines(model, 200, seed=0)
print("untrained samples:", before[:3])
print("judged:", judge(before))

# %% [markdown]
r"""
Now the whole recipe: 600 steps of batch 16, warm-up over 50 steps, cosine
decay to a tenth of the peak rate, clipping at norm 1, weight decay 0.1, the
validation loss every 100 steps. (The first line asks the memory allocator to
keep freed memory for reuse; *Systems analysis* measures why that matters.)
"""

# %%
reuse_freed_memory()            # let malloc keep freed arrays for the next step (systems analysis: why)
train_config = TrainConfig(max_iters=600, batch_size=16, learning_rate=3e-3, min_lr=3e-4, warmup_iters=50,
                           lr_decay_iters=600, weight_decay=0.1, eval_interval=100, eval_iters=10, seed=0)
start = time.perf_counter()
history = train(model, train_data, val_data, train_config,
                on_eval=lambda it, losses: print(f"step {it:4d}: train {losses['train']:.3f}, "
                                                 f"val {losses['val']:.3f} nats/char"))
train_seconds = time.perf_counter() - start
step_ms = 1e3 * np.median(history["seconds"])
final = history["eval"][-1][1]
print(f"{train_config.max_iters} steps in {train_seconds:.1f} s (median step {step_ms:.1f} ms, "
      f"{train_config.batch_size * config.block_size / step_ms * 1e3:,.0f} tokens/s)")
print(f"validation loss {final['val']:.3f} nats/char; entropy rate {entropy_rate:.3f}; "
      f"gap {final['val'] - entropy_rate:.3f}")
assert final["val"] < entropy_rate + 0.1, f"validation loss {final['val']:.3f} is far above the entropy rate"

# %%
losses = np.array(history["loss"])
smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 3.5))
ax.plot(losses, color="0.8", lw=0.8, label="training loss (each step)")
ax.plot(np.arange(19, len(losses)), smooth, color="C0", label="training loss (20-step mean)")
its, vals = zip(*[(it, l["val"]) for it, l in history["eval"]])
ax.plot(its, vals, "o-", color="C1", label="validation loss")
ax.axhline(entropy_rate, color="k", ls="--", lw=1, label=f"entropy rate {entropy_rate:.3f}")
ax.axhline(math.log(tokenizer.vocab_size), color="C3", ls=":", lw=1, label="uniform guess")
ax.set(xlabel="step", ylabel="nats per character", yscale="log", title="TinyGPT learns the grammar")
ax.legend(fontsize=8)
ax_lr.plot(history["lr"], color="C2")
ax_lr.set(xlabel="step", ylabel="learning rate", title="warm-up, then cosine decay")
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
The loss falls from $\ln V$ (uniform guessing) towards the entropy rate, the
floor no model can beat, and the validation loss follows the training loss:
the language is small enough that there is nothing to overfit to. Why does
it stop a little above the floor? The entropy rate assumes the model knows
where it is in the text. A training window starts at a random character,
so at position 0 the model has seen a single character and must guess the
next from it alone, at position 3 it may not yet know which word it is in,
and only after a whole sentence has gone by does it have everything the
language lets it know. The average over all 32 positions includes those
blind early positions. We measure the loss position by position on
validation windows:
"""

# %%
model.eval()
eval_rng = np.random.default_rng(7)
with no_grad():
    per_position = []
    for _ in range(20):
        xb, yb = get_batch(val_data, 32, config.block_size, eval_rng)
        logits, _ = model(xb)
        z = logits.data - logits.data.max(axis=-1, keepdims=True)          # (B, T, V), stable log-softmax
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        per_position.append(-np.take_along_axis(logp, yb[..., None], axis=-1)[..., 0].mean(axis=0))
per_position = np.mean(per_position, axis=0)                               # (T,)
longest = max(len(s) for s in SENTENCES)
print("loss at positions 0, 1, 2, 4, 8, 16, 31:", np.round(per_position[[0, 1, 2, 4, 8, 16, 31]], 3))
print(f"mean over positions {longest}..31 (a full sentence of context): {per_position[longest:].mean():.3f} "
      f"nats/char; entropy rate {entropy_rate:.3f}")
model.train()

# %% [markdown]
r"""
Position 0, with one character of context, costs several times the entropy
rate; from the point where a whole sentence fits into the context, the model
is close to the entropy rate. The remaining gap there is what 600 steps of a 100 k-parameter model
leave; the gap of the average is mostly the blind start of each window, a
property of how we train (and evaluate) on windows, not of the model. Now
the samples, at temperature 1 (the model's own distribution), judged:
"""

# %%
model.eval()
after = sample_lines(model, 600, seed=1)
print("\n".join(after[:8]))
verdict = judge(after)
print(f"\n{len(after)} lines: {verdict['correct']:.0%} are sentences of the language, "
      f"{verdict['agreement_errors']:.0%} are agreement errors (untrained: {judge(before)['correct']:.0%} correct)")
assert verdict["correct"] > 0.8, f"only {verdict['correct']:.0%} of sampled lines are grammatical"

# %% [markdown]
r"""
## Systems analysis

### Where a training step spends its time

We take the configuration of the Shakespeare example (nanoGPT's small CPU
model: 4 layers, 4 heads, C = 128, context 64, batch 12, vocabulary 65, no
biases, about 0.8 M parameters) and time each part of a training step on its own,
forward *and* backward, on inputs of the right shapes:

- **embeddings**: the two lookups and their sum (backward scatters into the tables);
- **attention sub-layer**: LayerNorm, causal self-attention, residual add, one block;
- **MLP sub-layer**: LayerNorm, MLP, residual add, one block;
- **head and loss**: final LayerNorm, the (C → V) head, cross-entropy;
- **optimizer**: `clip_grad_norm_` and `AdamW.step()`.

This chapter runs NumPy's BLAS on one thread (its first code cell asks for
that before NumPy loads, unless you set `OPENBLAS_NUM_THREADS` yourself).
The reason is the machine the book is built on: when other programs keep
the cores busy, a multi-threaded matrix product waits at every step for a
partner thread the operating system has descheduled, and a step of
hundreds of small products can become many times slower, differently each
run. One thread gives up a little speed on an idle machine for numbers that
mean something on a busy one.

Sub-layers are timed once and multiplied by the number of layers. The machine
may be busy with other work, so every measurement runs in rounds (each part
once per round) and we report the *fastest* round of each: other programs
can only ever add time to a measurement, so the minimum is the best estimate
of what the work itself costs. At the end we compare the sum with a whole
step timed the same way. Alongside, the FLOPs of each part's matrix
products (forward ×3 for forward plus backward), to see which parts run at
matrix-multiply speed and which do not.
"""

# %%
def best_ms(fns: dict, rounds: int = 7) -> dict:
    """Fastest time in ms of each zero-argument function, timed in interleaved rounds."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()                                                   # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * min(t) for name, t in times.items()}


def forward_backward(fn, *inputs):
    """fn(*inputs) then backward with a fixed upstream gradient (a scalar loss needs none)."""
    def run():
        for t in inputs:
            t.grad = None
        out = fn(*inputs)
        out.backward(None if out.ndim == 0 else np.ones(out.shape, dtype=out.dtype))
    return run


manual_seed(0)
big = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False)
gpt = GPT(big)
B, T, C, V, L = 12, 64, big.n_embd, big.vocab_size, big.n_layer
rng = np.random.default_rng(0)
ids, targets = rng.integers(0, V, size=(B, T)), rng.integers(0, V, size=(B, T))
x_in = Tensor(rng.standard_normal((B, T, C)).astype(np.float32), requires_grad=True)
block = gpt.h[0]
opt = configure_optimizers(gpt, 0.1, 1e-3, (0.9, 0.99))


def optimizer_step():
    clip_grad_norm_(gpt.parameters(), 1.0)
    opt.step()


def whole_step():
    _, loss = gpt(ids, targets)
    opt.zero_grad()
    loss.backward()
    optimizer_step()


parts = {
    "whole step": whole_step,                                  # first: its warm-up makes the optimizer's gradients
    "embeddings": forward_backward(lambda: gpt.wte(ids) + gpt.wpe(np.arange(T))),
    "attention sub-layer": forward_backward(lambda x: x + block.attn(block.ln_1(x)), x_in),
    "MLP sub-layer": forward_backward(lambda x: x + block.mlp(block.ln_2(x)), x_in),
    "head and loss": forward_backward(lambda x: cross_entropy(gpt.lm_head(gpt.ln_f(x)).reshape(B * T, V),
                                                              targets.reshape(-1)), x_in),
    "optimizer": optimizer_step,
}
timed = best_ms(parts)
count = {"embeddings": 1, "attention sub-layer": L, "MLP sub-layer": L, "head and loss": 1, "optimizer": 1}
flops = {"embeddings": 0,                                                      # lookups and adds only
         "attention sub-layer": 3 * (2 * B * T * C * 4 * C + 2 * 2 * B * T * T * C),   # qkv+proj, QK^T and AV
         "MLP sub-layer": 3 * 2 * B * T * C * 8 * C,
         "head and loss": 3 * 2 * B * T * C * V,
         "optimizer": 0}
total_parts = sum(timed[k] * count[k] for k in count)
print(f"{'part':<22}{'ms each':>9}{'x':>3}{'ms/step':>9}{'share':>7}{'GFLOP/s':>9}")
for k in count:
    share = timed[k] * count[k] / total_parts
    rate = f"{flops[k] / timed[k] / 1e6:9.1f}" if flops[k] else f"{'-':>9}"
    print(f"{k:<22}{timed[k]:9.2f}{count[k]:3d}{timed[k] * count[k]:9.2f}{share:7.0%}{rate}")
print(f"{'sum of the parts':<34}{total_parts:9.2f}")
print(f"{'whole step, measured':<34}{timed['whole step']:9.2f}")

# %% [markdown]
r"""
Read the table from the *share* column. The MLP holds two thirds of the
weights ($8C^2$ of the $12C^2$ per block) and, in the FLOP column, two thirds
of the block's matrix work, so it is the largest or close to the largest
part of a step; its GFLOP/s figure is the highest, because most of its time
is spent inside BLAS matrix products (on a quiet machine; a busy one blurs
this column like every other). The attention sub-layer does fewer
FLOPs but runs at a lower rate: besides its matmuls it makes many passes
over (B, nh, T, T) score arrays (the mask, the softmax's max, exp, sum and
division, and their backward), and the batched $QK^\top$ products over
(T, hs) = (64, 32) slices are too small to run BLAS at full speed. The
embeddings cost almost nothing forward, but their backward scatters the
gradient into the tables with `np.add.at`; the head is cheap here only
because the vocabulary is 65 characters (with GPT-2's 50,257 tokens it would
be the largest matrix in the model). The optimizer step is a handful of
elementwise passes over 0.8 M parameters, memory-bound as chapter 10
measured. The sum of the parts should come close to the whole step timed
the same way; on a machine busy with other work, the two can differ by
whatever the load did during each measurement.
"""

# %% [markdown]
r"""
### Accounting: predict, then measure

Before anyone trains a large model, they do this on paper: how many
parameters will it have, and how many FLOPs will each token cost? The
answers set the memory budget and, divided by the machine's FLOP/s, the
time budget. Write the two predictions as functions of the configuration
alone, from the formulas of the background, then check them against the
model you built and the step you just timed.

`gpt_parameters(config)` counts every parameter of `GPT(config)`, the tied
head once. `training_flops_per_token(config, T)` counts the FLOPs of the
matrix products of one training step per token at context length T:
forward costs 2 FLOPs per weight that takes part in a matrix product (the
$12C^2$ of each block and the $VC$ of the tied head; position embeddings and
LayerNorms are lookups and elementwise work, not matrix products) plus
$2 \cdot 2TC$ per layer for $QK^\top$ and the weights-times-values product; a
training step is three forward passes' worth (backward is two).
"""

# %% nbgrader={"grade": false, "grade_id": "impl_accounting", "locked": false, "schema_version": 3, "solution": true, "task": false}
def gpt_parameters(config: GPTConfig) -> int:
    """The number of parameters of GPT(config), counted from the configuration alone.

    Args: config, a GPTConfig (vocab_size V, block_size T, n_layer L, n_embd C, bias).
    Returns: an int, equal to GPT(config).num_parameters().
    """
    # Embeddings: a (V, C) token table (also the head: tied, count it once) and a (T, C) position table.
    # Per block: the weight matrices 12 C^2 (qkv 3C^2, attention projection C^2, MLP 8C^2), two
    # LayerNorm gains (C each), and, only when config.bias: the Linear biases 3C + C + 4C + C and
    # the two LayerNorm biases; then the final LayerNorm. Pitfall: bias=False removes LayerNorm
    # biases too (that is how GPTConfig's `bias` works), so check both settings.
    ### BEGIN SOLUTION
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    per_norm = 2 * C if config.bias else C
    per_block = 12 * C * C + 2 * per_norm + (9 * C if config.bias else 0)
    return (V + T) * C + L * per_block + per_norm
    ### END SOLUTION


def training_flops_per_token(config: GPTConfig, T: int) -> int:
    """FLOPs of the matrix products of one training step, per token, at context length T.

    Returns an int: 6 x (the weights used in matrix products) + 3 x (attention's 2 * 2TC per layer).
    """
    # Forward: 2 FLOPs (a multiply and an add) per weight in a matrix product: 12 C^2 per block
    # and V C for the head; plus, per layer, 2TC for q k^T and 2TC for weights @ v.
    # Training = forward + backward = 3 x forward. Pitfall: T is the context the step runs at,
    # not config.block_size, and embeddings/LayerNorm/biases are not matrix products.
    ### BEGIN SOLUTION
    L, C, V = config.n_layer, config.n_embd, config.vocab_size
    return 3 * (2 * (L * 12 * C * C + V * C) + L * 2 * 2 * T * C)
    ### END SOLUTION


# %% [markdown]
r"""
The test checks the parameter count against the models themselves, with and
without biases, and the FLOP count against a configuration worked by hand.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_accounting", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_accounting():
    for kwargs in (dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16),
                   dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False),
                   dict(vocab_size=7, block_size=5, n_layer=3, n_head=1, n_embd=4, bias=True)):
        config = GPTConfig(**kwargs)
        predicted, actual = gpt_parameters(config), GPT(config).num_parameters()
        assert predicted == actual, f"gpt_parameters({kwargs}) = {predicted}, the model has {actual}"
    # L=2, C=16, V=11 at T=8: 3 * (2 * (2*12*256 + 11*16) + 2*2*2*8*16) = 3 * (12640 + 1024) = 40992
    flops = training_flops_per_token(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16), T=8)
    assert flops == 40992, f"training_flops_per_token gives {flops}, expected 40992 (see the comment)"
    print("accounting: parameter counts match the models, FLOPs per token match the hand count: ok")


test_unit_accounting()

# %% [markdown]
r"""
Now the check against the measured step. The parameter count must match the
model exactly; the FLOPs per token, times the B·T tokens of a step, must match
the sum of the matrix FLOPs of the table above (counted part by part, so a
second derivation). Divided by the whole step's time it gives the FLOP/s the
step achieved; next to the FLOP/s of one large matrix product timed the same
way, the ratio is the step's *model FLOPs utilisation*, the fraction of the
machine's matrix speed that the whole step turns into useful model work.
"""

# %%
predicted_n = gpt_parameters(big)
step_flops = training_flops_per_token(big, T) * B * T
table_flops = sum(flops[k] * count[k] for k in count)
assert predicted_n == gpt.num_parameters(), "the predicted parameter count must match the model"
assert step_flops == table_flops, f"predicted {step_flops:,} FLOPs per step, the table counts {table_flops:,}"
mm_rng = np.random.default_rng(17)
a_big = mm_rng.standard_normal((B * T, C)).astype(np.float32)
w_big = mm_rng.standard_normal((C, 4 * C)).astype(np.float32)
matmul_ms = best_ms({"matmul": lambda: a_big @ w_big})["matmul"]
matmul_gflops = 2 * B * T * C * 4 * C / matmul_ms / 1e6                             # GFLOP/s of one (B*T, C) @ (C, 4C)
achieved = step_flops / timed["whole step"] / 1e6                         # GFLOP/s of the whole step
mfu = achieved / matmul_gflops
print(f"predicted parameters {predicted_n:,} = the model's {gpt.num_parameters():,}")
print(f"predicted FLOPs per token {training_flops_per_token(big, T):,}; per step of {B * T} tokens "
      f"{step_flops / 1e9:.3f} GFLOP = the table's sum")
print(f"whole step {timed['whole step']:.1f} ms -> {achieved:.1f} GFLOP/s; one (B*T, C) @ (C, 4C) matmul "
      f"{matmul_gflops:.1f} GFLOP/s; model FLOPs utilisation {mfu:.0%}")
assert 0.02 < mfu < 1.0, f"an MFU of {mfu:.2f} means a prediction or a timing is off"

# %% [markdown]
r"""
The utilisation is the number the printout gives, below 100 %: the
step's matrix products are only part of its work (the elementwise passes of
LayerNorm, GELU, softmax and the optimizer move memory without doing matrix
FLOPs, and the small per-head products run below BLAS's best rate). Large
training runs report this same ratio against the hardware's peak; a few tens
of percent is typical there too.
"""

# %% [markdown]
r"""
### How the balance shifts with the context length

Everything in a block grows linearly with the number of tokens B·T, except
the attention scores, which grow with $B \cdot n_h \cdot T^2$. At T = 64 the
score tensor of one layer is small; at long contexts it dominates both time
and memory. We keep the number of tokens per step fixed at B·T = 1024 and
raise T, so that any growth is the $T^2$ term alone, and measure the
attention and MLP sub-layers (forward and backward) together with the bytes
of one layer's attention-weight tensor and the peak memory traced during
the attention sub-layer's forward pass.
"""

# %%
contexts = [32, 64, 128, 256, 512]
tokens_per_step = 1024
rows = {}
fns = {}
for T_ in contexts:
    cfg = GPTConfig(vocab_size=65, block_size=T_, n_layer=1, n_head=4, n_embd=128, bias=False)
    manual_seed(0)
    blk = Block(cfg)
    x_ = Tensor(rng.standard_normal((tokens_per_step // T_, T_, 128)).astype(np.float32), requires_grad=True)
    fns[f"attention {T_}"] = forward_backward(lambda x, b=blk: x + b.attn(b.ln_1(x)), x_)
    fns[f"MLP {T_}"] = forward_backward(lambda x, b=blk: x + b.mlp(b.ln_2(x)), x_)
    tracemalloc.start()
    with no_grad():
        blk.attn(blk.ln_1(x_))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rows[T_] = (x_.shape[0] * cfg.n_head * T_ * T_ * 4, peak)
by_context = best_ms(fns, rounds=5)
print(f"{'T':>5}{'B':>5}{'attention ms':>14}{'MLP ms':>9}{'attn/MLP':>10}{'weights MB':>12}{'peak MB':>9}")
for T_ in contexts:
    a, m = by_context[f"attention {T_}"], by_context[f"MLP {T_}"]
    print(f"{T_:>5}{tokens_per_step // T_:>5}{a:>14.2f}{m:>9.2f}{a / m:>10.2f}{rows[T_][0] / 1e6:>12.2f}"
          f"{rows[T_][1] / 1e6:>9.2f}")

fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.plot(contexts, [by_context[f"attention {t}"] for t in contexts], "o-", label="attention sub-layer")
ax.plot(contexts, [by_context[f"MLP {t}"] for t in contexts], "s-", label="MLP sub-layer")
ax.set(xscale="log", yscale="log", xlabel="context length T (B·T = 1024 tokens)", ylabel="ms, forward + backward",
       title="Same tokens, longer context")
ax.set_xticks(contexts, [str(t) for t in contexts])
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
With the tokens per step fixed, the MLP does the same FLOPs at every T, yet
its time, if anything, falls as T grows: its input is (B, T, C), and NumPy's
`matmul` runs a 3-D input as one matrix product per sequence, so at T = 32
it makes 32 small (32 × 128) @ (128 × 512) products where at T = 512 it
makes 2 large ones, which BLAS runs more efficiently. The attention sub-layer
grows with T: at first slowly, because the projections (linear in the
tokens) dominate it, then roughly in proportion to T once the $T^2$ score
work takes over. The weight
tensor doubles with each doubling of T at fixed B·T ($B n_h T^2 = n_h (BT) T$),
and the traced peak of the forward pass grows with it: our softmax is a chain
of operations, each of which writes a new (B, nh, T, T) array, and in
training every one of them is also kept for backward. That is the cost
FlashAttention removes (see *Production context*).
"""

# %% [markdown]
r"""
### Memory of a training step

Four things occupy memory in training: the parameters, their gradients,
AdamW's two moment arrays per parameter, and the activations that the graph
keeps from forward for backward. The first three are fixed by the model
(4 + 4 + 8 = 16 bytes per parameter); activations grow with B·T and with
the depth. We trace the peak of one forward and backward pass and compare.
"""

# %%
params_bytes = sum(p.nbytes for p in gpt.parameters())
adam_bytes = sum(a.nbytes for s in opt.state.values() for a in s.values() if isinstance(a, np.ndarray))
gpt.zero_grad()
tracemalloc.start()
_, loss = gpt(ids, targets)
forward_peak = tracemalloc.get_traced_memory()[1]
loss.backward()
step_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
grad_bytes = sum(p.grad.nbytes for p in gpt.parameters())
print(f"parameters        {params_bytes / 1e6:7.2f} MB ({gpt.num_parameters():,} float32)")
print(f"gradients         {grad_bytes / 1e6:7.2f} MB")
print(f"AdamW state       {adam_bytes / 1e6:7.2f} MB (exp_avg and exp_avg_sq)")
print(f"peak in forward   {forward_peak / 1e6:7.2f} MB (activations kept for backward, B*T = {B * T} tokens)")
print(f"peak in backward  {step_peak / 1e6:7.2f} MB")
print(f"activations per token per layer: {forward_peak / (B * T * L) / 1e3:.1f} kB "
      f"= {forward_peak / (B * T * L * C * 4):.0f} float32 vectors of width C")

# %% [markdown]
r"""
Even this small model keeps more bytes of activations than it has weights,
gradients and optimizer state together, although the package already runs
LayerNorm and the tanh GELU as single primitives (chapters 14 and 03) that
save one array each: every other intermediate (the projections, the
residual sums, each step of the attention's masked softmax) is a saved
array, a few dozen C-wide vectors per token per layer (the printout), plus
the T-wide attention rows. Activation memory grows with batch × context × depth and is
what runs out first when a model is scaled up; production systems fuse
those chains into single kernels that save only their inputs, and recompute
activations in backward (*activation checkpointing*) instead of storing them.
"""

# %% [markdown]
r"""
### The hidden cost: fresh memory

One more cost hides in every step, and no profile of our code shows it:
where the memory comes from. A training step creates hundreds of arrays,
keeps the activations of every layer until backward, then frees them all;
the next step asks for the same sizes again. glibc's `malloc` serves large
blocks (from 128 KB up, a threshold it adapts as the program runs) with
`mmap`, straight from the operating system, returns them with `munmap` when
they are freed, and also hands back the free top of its heap once more than
a threshold is free. Memory fresh from the OS is mapped lazily: the first
write to each 4 KB page traps into the kernel (a *minor page fault*), which
finds a page, zeroes it and maps it. One (12, 64, 512) float32 array of the
MLP is 1.5 MB, 384 pages; if the previous step's memory went back to the
OS, every step pays for all its pages again.

The kernel counts these faults (`resource.getrusage`), so we count them
instead of guessing. The allocator adapts its thresholds to the program's
history, and this notebook has a long one by now, so we measure in fresh
Python processes, as a training script starts (this notebook already called
`reuse_freed_memory()` before training): one with glibc's defaults, one that
first calls `reuse_freed_memory()`, which raises the `mmap`
threshold to 32 MB (our arrays come from the heap) and the trim threshold to
256 MB (the heap keeps what is freed). Each runs six training steps of the
Shakespeare model and reports the page faults per step and the fastest of
the last four steps (with one BLAS thread, which a busy machine disturbs
less); the two kinds of process alternate, twice.
"""

# %%
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tinytorch

PROBE = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from tinytorch import manual_seed
    from tinytorch.models import GPT, GPTConfig, configure_optimizers, get_batch, reuse_freed_memory
    applied = reuse_freed_memory() if sys.argv[1] == "tuned" else False
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=False))
    opt = configure_optimizers(model, 0.1, 1e-3, (0.9, 0.99))
    data, rng = np.random.default_rng(0).integers(0, 65, 10_000), np.random.default_rng(1)
    times = []
    for i in range(6):                                    # two steps to settle, then four measured
        if i == 2:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        _, loss = model(*get_batch(data, 12, 64, rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 4
    print(json.dumps({"faults": faults, "ms": 1e3 * min(times[2:]), "applied": applied}))
""")


def probe(mode: str) -> dict:
    """Run PROBE in a fresh interpreter that imports this same tinytorch."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")       # one BLAS thread: steadier timing on a busy machine
    env["PYTHONPATH"] = os.pathsep.join([str(Path(tinytorch.__file__).resolve().parents[1]),
                                         env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


runs = {"default": [], "tuned": []}
for _ in range(2):
    for mode in runs:
        runs[mode].append(probe(mode))
fresh_mb, fastest, spread = {}, {}, {}
for mode, results in runs.items():
    faults = np.median([r["faults"] for r in results])
    fresh_mb[mode] = faults * 4096 / 1e6
    fastest[mode] = min(r["ms"] for r in results)
    spread[mode] = max(r["ms"] for r in results) - fastest[mode]          # run-to-run noise of this mode
    print(f"{mode:<8} allocator: {faults:8,.0f} page faults per step ({fresh_mb[mode]:5.1f} MB of fresh pages), "
          f"{fastest[mode]:6.1f} ms per step (two runs {spread[mode]:.1f} ms apart; applied: {results[0]['applied']})")
gain = fastest["default"] - fastest["tuned"]
noise = max(spread.values())
if gain > noise:
    print(f"the tuned step is {gain:.1f} ms faster, more than the {noise:.1f} ms between runs of the same kind")
else:
    print(f"the difference, {gain:+.1f} ms, is within the {noise:.1f} ms between runs of the same kind: "
          "no speed difference can be claimed on this machine today")
if runs["default"][0]["applied"] is False and runs["tuned"][0]["applied"]:
    assert 5 < fresh_mb["default"] < 500, f"{fresh_mb['default']:.1f} MB of fresh pages per step is outside the band the text gives"
    assert fresh_mb["tuned"] < 0.2 * fresh_mb["default"], "with the thresholds raised the faults should all but vanish"

# %% [markdown]
r"""
With glibc's defaults, a step faults in tens of megabytes of fresh pages
(the first line above gives this run's figure; the cell asserts it lies
between 5 and 500 MB), for a model whose weights, gradients and optimizer
state take 13 MB; with the thresholds raised, the faults all but vanish,
with not a line of the model changed. Whether that makes the step
measurably faster depends on the machine: a page fault costs more in a
virtual machine, and a busy machine blurs the timing (the fault count does
not blur), so the cell claims a speed-up only when it is larger than the
difference between two runs of the same kind, and says so either way. Elsewhere than Linux with
glibc, `reuse_freed_memory` does nothing and returns False. The example
script calls it before training.

The lesson generalises: an elementwise operation on arrays larger than the
cache is limited by memory traffic, and traffic to *new* memory costs a
kernel trap per page on top. PyTorch's performance tuning guide recommends
swapping the allocator for jemalloc or tcmalloc on CPUs (through
`LD_PRELOAD`) for the same reason: they reuse memory more than the default
`malloc`. On GPUs PyTorch's caching allocator keeps the blocks it frees for
the next request of a similar size and hands them back to the driver only
when asked (`torch.cuda.empty_cache()`).
"""

# %% [markdown]
r"""
### Attention: this chapter's block or chapter 07's module?

We wrote attention again rather than use `nn.MultiheadAttention`. Does the
generality of chapter 07's module cost anything? The same shape, forward and
backward, alternating:
"""

# %%
mha = MultiheadAttention(C, big.n_head, bias=False, batch_first=True)
csa = CausalSelfAttention(big)
choice = best_ms({
    "CausalSelfAttention (this chapter)": forward_backward(lambda x: csa(x), x_in),
    "MultiheadAttention(is_causal=True)": forward_backward(
        lambda x: mha(x, x, x, need_weights=False, is_causal=True)[0], x_in),
}, rounds=15)
for name, ms in choice.items():
    print(f"{name:<38}{ms:7.2f} ms")

# %% [markdown]
r"""
Both compute the same function with the same number of parameters, but not
the same way. For this case (self-attention, a causal mask, no dropout, no
weights returned) chapter 07's module runs one fused primitive,
`SelfAttentionFused`: one projection whose heads are read through strides, no
slices or head-split copies, a softmax down the columns of transposed scores,
and buffers reused from step to step. This chapter's block composes the same
arithmetic from primitives you can read line by line; the times above show
what the fusion buys on this machine. We keep the composition here for that
reason, and because chapter 18's key/value cache needs the keys and values as
tensors of their own, which the fused primitive never makes.
"""

# %% [markdown]
r"""
### Generation without a cache

`generate` runs the model on the whole context for every new token. Its cost
per token grows with the context, up to `block_size`:
"""

# %%
gpt.eval()
gen = {f"context {n}": (lambda n=n: gpt(ids[:1, :n])) for n in (1, 8, 32, 64)}
with no_grad():
    per_token = best_ms(gen, rounds=15)
for name, ms in per_token.items():
    print(f"{name:<12} {ms:6.2f} ms per generated token")
gpt.train()

# %% [markdown]
r"""
A forward pass over 64 tokens produces 64 rows of logits of which sampling
uses one, and recomputes the keys and values of 63 tokens it already
processed for the previous token. Production inference keeps a **KV cache**:
each layer stores the keys and values of the tokens seen so far, and each new
token computes only its own query, key and value and attends to the cache,
which makes the per-token cost nearly flat in the context (attention still
reads the whole cache). Its price is memory: $2 \cdot L \cdot T \cdot C$
numbers per sequence, which for large models and long contexts dominates
inference memory.
"""

# %% [markdown]
r"""
## Production context

- **nanoGPT** (Karpathy), which this chapter follows name for name
  (`c_attn`, `c_proj`, `wte`, `wpe`, `ln_f`, `lm_head`, `get_lr`,
  `configure_optimizers`, `estimate_loss`), trains this model on
  tiny-shakespeare on a CPU in a few minutes to a validation loss near 1.88
  (its README's figure, from one run; its training script defaults to
  `bias=False`, which our config offers). Our `examples/tinygpt_shakespeare.py`
  runs the same configuration and writes its result to the book's results
  pages, and `benchmarks/nanogpt_reference.py` runs nanoGPT's own recipe in
  PyTorch over several seeds. One run's final loss moves by about a hundredth
  from seed to seed, in either framework, so compare means over seeds rather
  than one run with another. The test suite checks that our GPT and a
  PyTorch GPT with copied weights give the same loss and gradients, and
  `benchmarks/run_all.py --only gpt` measures both frameworks' step times
  side by side on your machine.
- **Fused attention.** PyTorch's `F.scaled_dot_product_attention` dispatches
  to FlashAttention-style kernels that compute the softmax in tiles and never
  write the (T, T) score matrix to memory: attention memory becomes linear in
  T, and the elementwise passes we measured disappear into one kernel.
  nanoGPT uses it when available.
- **Tokenizers.** GPT-2 uses byte-pair encoding with a 50,257-token
  vocabulary: about four characters per token, so the same context covers
  four times the text, at the price of a (50,257 × 768) embedding and head,
  which is why weight tying saves so much there (38 M parameters in GPT-2
  small). `tiktoken` and Hugging Face `tokenizers` implement it in Rust.
- **Mixed precision and compilation.** Real training keeps activations in
  bfloat16 (half the activation bytes we measured) with float32 master
  weights, and `torch.compile` fuses chains such as LayerNorm, GELU and
  softmax into single kernels: fewer passes over memory, fewer saved
  intermediates.
- **Scale.** Beyond one device, data parallelism (DDP), sharded optimizer
  state (ZeRO, FSDP, chapter 10) and tensor/pipeline parallelism split the
  same computation across machines; the $6N$ FLOPs per token rule and the
  memory accounting above are how such runs are planned.
"""

# %% [markdown]
r"""
## Integration: the whole system

Everything comes together in the loop we ran above: the tokenizer (this
chapter) made the ids; `Embedding` (07), `LayerNorm` (08), `Linear` and
`ModuleList` (04), GELU and softmax (03), the causal attention built from
chapter 02's primitives, and `cross_entropy` (05) made the loss; chapter 09's
`backward()` made every gradient; `AdamW` and its parameter groups (10)
updated the weights under this chapter's schedule and clipping. Two more
things make it a system rather than an experiment: the model must survive
being saved and loaded, and the loaded model must behave identically. A
model's `state_dict()` (chapter 04) holds every parameter by name (the tied
matrix under both of its names, as in PyTorch); chapter 12's
`save_checkpoint` / `load_checkpoint` write it to disk together with the
optimizer state and metadata such as the config and the vocabulary, and
`examples/tinygpt_shakespeare.py` uses them. Here we check the property they
rely on, through that format: a fresh model built from the saved config and
vocabulary, loaded from the file, produces the same logits and the same sampled text.
"""

# %%
import dataclasses
import tempfile
from pathlib import Path

from tinytorch.training import checkpoint_info, load_checkpoint, save_checkpoint

checkpoint_path = Path(tempfile.mkdtemp()) / "tinygpt.npz"
save_checkpoint(checkpoint_path, model, config=dataclasses.asdict(config), vocabulary="".join(tokenizer.chars))
saved = checkpoint_info(checkpoint_path)["metadata"]          # read the config before building the model
manual_seed(123)                                              # a different random initialisation
restored = GPT(GPTConfig(**saved["config"]))
load_checkpoint(checkpoint_path, restored)
restored.eval()
rebuilt_tokenizer = CharTokenizer(saved["vocabulary"])
print(f"checkpoint: {checkpoint_path.stat().st_size / 1e6:.2f} MB for {restored.num_parameters():,} parameters")
prompt = np.array([rebuilt_tokenizer.encode("\nthe cats ")])
original_logits, _ = model(prompt)
restored_logits, _ = restored(prompt)
assert np.array_equal(original_logits.data, restored_logits.data), "the restored model computes different logits"
a = tokenizer.decode(model.generate(prompt, 60, seed=5).data[0])
b = rebuilt_tokenizer.decode(restored.generate(prompt, 60, seed=5).data[0])
assert a == b, "the restored model samples different text with the same seed"
greedy = rebuilt_tokenizer.decode(restored.generate(prompt, 60, top_k=1).data[0])
print("restored model: identical logits and identical samples")
print(f"greedy continuation of {rebuilt_tokenizer.decode(prompt[0])!r}:", repr(greedy))

# %% [markdown]
r"""
## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_tokenizer()
    test_unit_causal_self_attention()
    test_unit_block()
    test_unit_gpt_forward()
    test_unit_gpt_gradients()
    test_unit_generate()
    test_unit_get_lr()
    test_unit_clip_grad_norm()
    test_unit_training_helpers()
    test_unit_accounting()
    print("All tests of chapter 17 pass.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Activation memory.** You measured the peak of one forward pass of the
0.8 M-parameter model at B·T = 768 tokens, and how it splits per token per
layer. Using that figure, estimate the activation memory of a GPT-2 small
training step (12 layers, C = 768, T = 1024, batch 8) in our framework.
Which of our composed operations (LayerNorm, GELU, softmax) would you fuse
first to cut it, and how many saved arrays per element would each fusion
remove?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_activation_memory", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The printout gives the forward peak per token per layer
(about 20 kB, some 38 float32 vectors of width C, at C = 128 and T = 64; a
few kB either way is fine). Split it: most is C-wide (projections, residual
sums, the q/k/v reshapes, the MLP's 4C-wide hidden layer: say 30 vectors) and
scales with C; the rest is the T-wide attention rows, n_h of them per token
for each saved array of the score chain (scores, masked scores, exp,
normalised weights: about four), which scale with n_h × T. Check: 30 × 128 ×
4 B + 4 × 4 × 64 × 4 B ≈ 15 + 4 = 19 kB. For GPT-2 small: 30 × 768 × 4 B ≈
92 kB plus 4 × 12 × 1024 × 4 B ≈ 197 kB, about 290 kB per token per layer;
with 8 × 1024 = 8,192 tokens and 12 layers, about 8,192 × 12 × 290 kB ≈ 28 GB,
far beyond the 2 GB of weights, gradients and AdamW state (124 M parameters
× 16 bytes). Fuse softmax first (with the mask and scaling): at T = 1024
its T-wide saved arrays dominate, and a fused softmax saves only its output
(three or four arrays per score element become one). LayerNorm and the tanh
GELU are already fused in the package; composed, LayerNorm keeps about five
saved arrays per element (mean, centred, variance, rstd, normalised, scaled)
where the fused one keeps x-hat plus one number per row, and the composed
GELU about ten where the fused one keeps one.

**Rubric (2 points).** 1 point for an estimate (15 to 60 GB) that scales
the C-wide part by C and the attention part by T and n_h, starting from the
learner's own printed figure; 1 point for choosing softmax (or
justifying another choice by the T-wide arrays) and giving per-element saved
array counts before and after a fusion.
### END SOLUTION
"""

# %% [markdown]
r"""
**2. The vocabulary moves the bottleneck.** With 65 characters the head and
the embedding backward were among the cheapest parts of a step. Switch to
a 50,257-token BPE vocabulary at C = 128: how many parameters do the tied
table and head have now, how many FLOPs does the head take per token next
to a block's $24C^2$, and how large is the (B·T, V) logits array at
B·T = 768? What happens to `np.add.at` in the embedding backward?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_vocabulary", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The tied table is 50,257 × 128 = 6.43 M parameters (one
matrix, counted once), about eight times the whole 0.8 M-parameter model.
The head costs 2 × C × V = 2 × 128 × 50,257 ≈ 12.9 M FLOPs per token forward,
against 24C² = 393 k for a block: about 33 blocks' worth, so the head
dominates the step (×3 for training in both). The logits at B·T = 768 are
768 × 50,257 × 4 bytes ≈ 154 MB, and the cross-entropy's composed
log-softmax keeps several arrays of that size for backward. `np.add.at`
still scatters only 768 rows, so its own work stays small, but the gradient
of the table is a dense 25.7 MB array that is allocated, zeroed and then
read by AdamW, which updates all 6.4 M entries every step though at most 768
rows changed: the optimizer and memory traffic, not the scatter, grow.

**Rubric (2 points).** 1 point for the three numbers (6.4 M parameters,
≈ 13 MFLOP per token ≈ 30× a block, ≈ 150 MB of logits); 1 point for the
embedding backward: the dense gradient and the optimizer's full update, not
the scatter, become the cost.
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Longer context.** At fixed B·T you measured the attention sub-layer
grow with T while the MLP stayed flat. Split the attention time into a
part that does not depend on T (the projections) and a part proportional
to T (the score work at fixed B·T), fit both to your table, and predict
the attention-to-MLP time ratio at T = 2048. How much memory do one
layer's attention weights take at T = 2048 with the Shakespeare batch of
12 sequences? What would a fused attention kernel change in each number,
and what would it not change?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_longer_context", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Fit attention(T) = a + b·T by least squares (or through two
rows of the table): a is the projections' time, which at fixed B·T does not
depend on T, b·T the score work. The MLP time m is flat. The prediction is
(a + 2048·b) / m; with the chapter's table the T-proportional part already
dominates at a few hundred tokens, so the ratio at 2048 is several times
larger than at 64 (the learner's own numbers decide). One layer's attention
weights at T = 2048, batch 12, 4 heads, float32: 12 × 4 × 2048 × 2048 × 4
bytes ≈ 805 MB per saved array, and our softmax chain saves several. A fused
attention kernel (FlashAttention) never materialises the T × T array: the
memory falls to O(T) per head (the output and one row statistic), and the
many passes over T × T arrays become one, so b shrinks a lot; it does not
change the FLOPs, which still grow as T² per sequence (at fixed B·T, as T),
so the ratio still grows with T.

**Rubric (2 points).** 1 point for a fit and a prediction computed from the
learner's table, with the 805 MB figure (per saved array); 1 point for what
fusion changes (memory O(T), fewer passes) and what it cannot (the T² FLOPs).
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Serving.** `generate` recomputes the whole context for every token.
Design a KV cache for our `CausalSelfAttention`: what does each layer
store, with what shape, how does `forward` change for a single new token
(which mask does it need?), and how much memory does the cache take for the
Shakespeare model at full context for a batch of 32 conversations?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_kv_cache", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Each layer keeps the keys and values it has computed so far:
two arrays of shape (B, n_head, t, hs), growing by one position per new
token up to block_size. For a new token, `forward` receives x of shape
(B, 1, C), projects it to q, k, v (B, nh, 1, hs), appends k and v to the
cache, and computes the one query's scores against all t + 1 cached keys,
(B, nh, 1, t + 1): no mask is needed, because the newest position may read
every earlier one (the causal mask's last row is all zeros); the prompt's
first pass (prefill) still needs the full causal mask. The cost per token
drops from a forward over the whole context to one position's worth. Memory:
2 (K and V) × 4 layers × 32 sequences × 64 positions × 128 channels × 4 bytes
= 8.4 MB. At block_size the policy must be stated: slide the window (and
recompute, since learned position embeddings shift) or stop.

**Rubric (2 points).** 1 point for what is cached with its shape and the
single-token forward with the right mask (none, or the last row); 1 point for
the memory formula 2 × L × B × T × C × bytes and its value, 8.4 MB.
### END SOLUTION
"""

# %% [markdown]
r"""
## Module summary

You built a GPT from your own framework and trained it:

- **`CharTokenizer`** (`tinytorch.models.tokenizer`): a sorted character
  vocabulary, `encode`/`decode` round trips, unseen characters an error that
  names them, or mapped to one id with `unknown=`;
- **`GPTConfig`, `GPT`** (`tinytorch.models.gpt`): token and learned position
  embeddings, pre-norm blocks of causal self-attention (one fused q/k/v
  projection, an additive $-\infty$ mask) and a GELU MLP with residuals, a
  final LayerNorm and a head tied to the token table; GPT-2's initialisation;
  `forward(idx, targets) -> (logits, loss)`, `num_parameters()`, and
  `generate(idx, max_new_tokens, temperature, top_k, seed)`, reproducible
  with a seed;
- **the training recipe** (`tinytorch.models.train`): `get_batch`, AdamW with
  decay on matrices only (`configure_optimizers`), warm-up and cosine decay
  (`get_lr`), `clip_grad_norm_` (also as `tinytorch.nn.utils.clip_grad_norm_`),
  `estimate_loss`, the `train` loop with `TrainConfig`, and
  `reuse_freed_memory()`.

Everything is composed from chapters 02 to 10, and a finite-difference check
of every parameter's gradient confirms that chapter 09's engine
differentiates all of it. On a generated language whose best possible loss is
known, the model came within a few thousandths of a nat of it wherever a
whole sentence of context was in view, and wrote grammatical sentences,
getting subject-verb agreement right. Measured: the
MLP runs at matrix-multiply speed and dominates the FLOPs; attention runs
slower per FLOP because of its many passes over T × T arrays and grows with
the context at fixed tokens; activations, not weights, dominate training
memory; a default `malloc` adds thousands of page faults to every step,
which `reuse_freed_memory()` removes; generation without a cache pays a full
forward pass per token.

That completes the course: a framework that builds, differentiates,
optimises, trains and samples from a transformer, with every line of it
written by you. The Shakespeare run in `examples/` and the side-by-side
benchmark show how close it comes to PyTorch on the same machine.
"""
