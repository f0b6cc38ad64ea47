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
# Generation at speed: a KV cache, a byte-pair tokenizer, and the decode roofline

The capstone's GPT trains, and its `generate()` writes text. But look at what
`generate()` does for every new token: it runs the whole model over the whole
context again, although the only new thing is one token at the end. Once a
model is trained, generating is where its systems cost lives, and the cost
has two parts that this chapter takes apart:

- **the work per token.** Keys and values of earlier positions never change
  (the mask stops them from reading anything later), so each attention layer
  can keep them: a **KV cache**. A step then processes one new token instead
  of the whole context. We derive what the cache costs in memory, measure the
  speed-up against the position in the text, and explain it with chapter 15's
  roofline: generating one token at a time (*decode*) is memory-bound, reading
  the prompt in one pass (*prefill*) is compute-bound.
- **the number of tokens.** A character model spends a full forward pass on
  every character. A **byte-pair encoding** (BPE) tokenizer, the kind GPT-2
  and its successors use, merges frequent pairs of bytes into single tokens,
  so the same text takes fewer steps, at the price of a larger embedding
  table and output head. We build one that never meets an unknown character
  (every byte is a token), round-trips any text exactly, and trains fast
  enough for a real corpus.

**What you write.** The cache's memory formula, the cache's `update`, the
cached sampling loop of `GPT.generate`, and the two halves of BPE: the merge
loop that learns the vocabulary and the function that applies the merges to
a piece of text. The rest (argument checks, saving and loading, the
pre-tokenizer) is given. Every piece is tested right after you write it.

Everything here runs on the model of chapter 17, unchanged except for one
thing that chapter already prepared: its attention layers, blocks and `GPT.forward`
accept an optional per-layer cache (`cache=None`), which this chapter fills.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp models.generation

# %%
import json
import math
import os
import tempfile
import time
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")   # one BLAS thread, as in chapters 15 and 17: timings that mean something

import matplotlib.pyplot as plt
import numpy as np

from tinytorch import Tensor, manual_seed, no_grad
from tinytorch.models import GPTConfig
from tinytorch.models.gpt import GPT as CapstoneGPT
from tinytorch.profiling import measure_roofline

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
r"""
## Why generation without a cache is slow

`generate()` from chapter 17 calls the model on the context for every token.
At position $t$ that is a forward pass over $t$ tokens, so writing $N$ tokens
costs $1 + 2 + \dots + N \approx N^2/2$ token-forwards, and the attention
inside each costs another factor $t$. Almost all of it is repeated: in a
causal model the hidden state of position $i$ depends only on tokens
$0..i$, so appending a token changes nothing that was computed for the
earlier positions. The one thing the new token needs from them, inside each
attention layer, is their **keys and values** (its query is scored against
every earlier key, and the weights mix every earlier value).

So each attention layer keeps two arrays that grow by one position per token:

$$K, V \in \mathbb{R}^{B \times n_\text{head} \times t \times h_s}.$$

Per sequence, over the $L$ layers, for $t$ positions of width
$C = n_\text{head} h_s$ stored in $b$ bytes per number, that is

$$\text{cache bytes} = 2 \times L \times t \times C \times b$$

(the 2 is K and V). The first exercise is that formula, as a function we use
to check the real cache against and to size caches for bigger models.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_kv_cache", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export

import math

import numpy as np

from tinytorch.nn.activation import softmax
from tinytorch.core.autograd import no_grad
from tinytorch.nn.init import generator
from tinytorch.core.tensor import Tensor
from tinytorch.models import gpt


def kv_cache_bytes(config, n_tokens: int, batch_size: int = 1, dtype=np.float32) -> int:
    """Bytes a KV cache of `n_tokens` positions takes for a model of shape `config` (a GPTConfig).

    Args: config with n_layer and n_embd; n_tokens, positions held per sequence; batch_size,
        sequences; dtype, what each number is stored as (np.float32: 4 bytes).
    Returns: an int, 2 (keys and values) x layers x sequences x positions x width x bytes.
    """
    # Every layer stores one key and one value vector of width n_embd (all heads together) per
    # position per sequence. np.dtype(dtype).itemsize is the bytes per number.
    # Pitfall: return a Python int (int(...)), not a NumPy scalar, and do not forget the 2.
    ### BEGIN SOLUTION
    return int(2 * config.n_layer * batch_size * n_tokens * config.n_embd * np.dtype(dtype).itemsize)
    ### END SOLUTION


class KVCache:
    """One attention layer's keys and values for a batch of sequences, in arrays allocated once.

    `update(k, v)` writes the new positions after the ones held and returns every key and
    value so far; `len(cache)` is the number of positions held. Chapter 17's attention calls
    `update` when it is given a cache. Inference only: the stored arrays carry no gradient.
    """

    def __init__(self, batch_size: int, n_head: int, head_size: int, max_len: int, dtype=np.float32):
        for name, value in (("batch_size", batch_size), ("n_head", n_head), ("head_size", head_size),
                            ("max_len", max_len)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"KVCache: {name} must be a positive integer, got {value!r}")
        shape = (batch_size, n_head, max_len, head_size)          # (B, nh, max_len, hs)
        self.k = np.zeros(shape, dtype=dtype)
        self.v = np.zeros(shape, dtype=dtype)
        self.length = 0

    def __len__(self) -> int:
        return self.length

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes allocated for keys and values (the whole window, used or not)."""
        return self.k.nbytes + self.v.nbytes

    def update(self, k, v) -> tuple[Tensor, Tensor]:
        """Append new keys and values (B, nh, T, hs) and return all of them, (B, nh, length + T, hs).

        Args: k, v, Tensors (or arrays) of the new positions' keys and values.
        Returns: (keys, values) as Tensors viewing the stored arrays up to the new length.
        """
        # 1. Take the arrays (getattr(k, "data", k)); T = k.shape[2]. Refuse (ValueError, one line)
        #    keys whose shape is not (B, nh, T, hs) of this cache, or values of another shape than k.
        # 2. end = self.length + T; if end > self.max_len the cache is full: ValueError saying so and
        #    that the window must be recomputed from the last max_len tokens.
        # 3. Write k into self.k[:, :, self.length:end] (and v likewise), set self.length = end and
        #    return Tensor(self.k[:, :, :end]), Tensor(self.v[:, :, :end]): views, no copy of the past.
        # Pitfall: np.concatenate on every step would copy the whole cache each token (O(t) per step).
        ### BEGIN SOLUTION
        k, v = np.asarray(getattr(k, "data", k)), np.asarray(getattr(v, "data", v))
        B, nh, _, hs = self.k.shape
        if k.ndim != 4 or (k.shape[0], k.shape[1], k.shape[3]) != (B, nh, hs):
            raise ValueError(f"KVCache: keys must have shape ({B}, {nh}, T, {hs}), got {k.shape}")
        if v.shape != k.shape:
            raise ValueError(f"KVCache: values {v.shape} and keys {k.shape} must have the same shape")
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KVCache: holding {self.length} of {self.max_len} positions, no room for "
                             f"{k.shape[2]} more; recompute the cache from the last {self.max_len} tokens")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return Tensor(self.k[:, :, :end]), Tensor(self.v[:, :, :end])   # (B, nh, end, hs) each
        ### END SOLUTION

    def __repr__(self) -> str:
        B, nh, T, hs = self.k.shape
        return f"KVCache(batch_size={B}, n_head={nh}, head_size={hs}, length={self.length}/{T})"


# %% [markdown]
r"""
The test checks the formula against numbers worked by hand, and the cache
against the obvious but slow alternative: concatenating every step's keys.
Writing in place must give the same arrays, must not copy the past (the
returned keys are a view of the cache's own storage), and a full cache must
refuse more rather than silently drop positions.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_kv_cache", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_kv_cache():
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    assert kv_cache_bytes(config, 64) == 2 * 4 * 64 * 128 * 4 == 262_144
    assert kv_cache_bytes(config, 64, batch_size=32) == 8_388_608            # chapter 17's question 4: 8.4 MB
    assert kv_cache_bytes(config, 10, dtype=np.float16) == 2 * 4 * 10 * 128 * 2
    assert isinstance(kv_cache_bytes(config, 3), int)
    cache = KVCache(batch_size=2, n_head=3, head_size=4, max_len=6)
    rng = np.random.default_rng(0)
    chunks = [rng.standard_normal((2, 3, t, 4)).astype(np.float32) for t in (3, 1, 2)]
    for i, chunk in enumerate(chunks):
        keys, values = cache.update(Tensor(chunk), Tensor(-chunk))
        expected = np.concatenate(chunks[:i + 1], axis=2)
        assert keys.shape == expected.shape, f"after {i + 1} updates the keys should be {expected.shape}, got {keys.shape}"
        assert np.array_equal(keys.data, expected) and np.array_equal(values.data, -expected)
        assert len(cache) == expected.shape[2]
    assert np.shares_memory(keys.data, cache.k), "update must return a view of the stored keys, not a copy"
    for bad in (np.zeros((2, 3, 1, 5), np.float32), np.zeros((1, 3, 1, 4), np.float32)):
        try:
            KVCache(2, 3, 4, 6).update(bad, bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"keys of shape {bad.shape} do not fit a (2, 3, T, 4) cache: expected ValueError")
    try:
        cache.update(chunks[1], chunks[1])
    except ValueError as err:
        assert "\n" not in str(err)
    else:
        raise AssertionError("a full cache (6 of 6 positions) must refuse another position with a ValueError")
    assert cache.nbytes == 2 * 2 * 3 * 6 * 4 * 4
    print("kv_cache_bytes matches the hand count; KVCache appends in place, returns views, refuses when full: ok")


test_unit_kv_cache()

# %% [markdown]
r"""
### The cached generate

Chapter 17 already threads a cache through the model: `GPT.forward(idx,
cache=caches)` takes a list with one `KVCache` per block, starts the
position embeddings at `len(caches[0])` (the positions already held), and
each attention layer calls `update` on its own cache, scoring the new
queries against every key so far with the last rows of the causal mask. So
generation becomes two phases:

1. **prefill**: one forward pass over the whole prompt, with empty caches,
   fills every layer's cache and gives the logits of the prompt's last
   position;
2. **decode**: sample a token from those logits, then run the model on that
   one token (`idx` of shape `(B, 1)`), which appends one position to every
   cache and gives the next logits; repeat.

The sampling is chapter 17's, step for step (temperature, top-k, one
uniform draw per sequence from the same generator), written once here as
`sample_next`, so that a cached and an uncached run with the same seed draw
the same random numbers and, since their logits agree to float32 rounding,
the same tokens.

**What happens at `block_size`.** The model has learned position embeddings
for positions $0..\text{block\_size}-1$ only. Chapter 17's `generate` crops
the context to its last `block_size` tokens, so once the text is longer than
the window every token moves one position to the left at each step, and
every cached key and value (computed at the old positions) is stale. Our
policy keeps the cached result identical to the uncached one: **when the
cache is full, the next step recomputes it from the last `block_size`
tokens** (a prefill). Past the window each token therefore costs a full
forward pass again, as it would without a cache; the cache speeds up the
first `block_size` positions. (Models with relative positions, such as
RoPE, can instead keep most of a sliding cache; ours cannot.) A prompt
longer than the window is refused with an error that says to crop it.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_generate", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export

def sample_next(logits, temperature: float, top_k, rng) -> np.ndarray:
    """Chapter 17's sampling step: logits (B, V) of the last position -> next ids (B,), one draw each."""
    logits = logits * (1.0 / temperature)                                         # (B, V)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.sort(logits.data, axis=-1)[:, -top_k][:, None]                    # (B, 1): k-th largest
        logits = logits + Tensor(np.where(logits.data < kth, -np.inf, 0.0).astype(logits.dtype))
    probs = softmax(logits, dim=-1).data.astype(np.float64)                       # (B, V)
    cdf = np.cumsum(probs, axis=-1)                                               # (B, V)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]                            # (B, 1): one draw per sequence
    return np.minimum((cdf < u).sum(axis=-1), logits.shape[-1] - 1)               # (B,)


class GPT(gpt.GPT):
    """Chapter 17's GPT with a generate that keeps a KV cache (the same parameters and state dict)."""

    def new_cache(self, batch_size: int) -> list[KVCache]:
        """One empty KVCache per block, for batch_size sequences of up to block_size positions."""
        c = self.config
        return [KVCache(batch_size, c.n_head, c.n_embd // c.n_head, c.block_size, dtype=self.ln_f.weight.dtype)
                for _ in range(c.n_layer)]

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None, use_cache: bool = True) -> Tensor:
        """Extend idx (B, T) by max_new_tokens sampled tokens; returns (B, T + max_new_tokens).

        Args:
            temperature, top_k, seed: as in chapter 17 (top_k at most vocab_size).
            use_cache: keep each layer's keys and values, so a step runs the model on one new token;
                False recomputes the whole context every step (chapter 17's generate). Both give the
                same tokens for the same seed.
        The prompt must fit the window (T <= block_size). Past block_size the window slides: the
        cache is recomputed from the last block_size tokens, exactly what the uncached model reads.
        """
        if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
        # Chapter 17's generate asked for no new tokens only checks its arguments and returns the prompt.
        idx = gpt.GPT.generate(self, idx, 0, temperature, top_k, seed).data           # (B, T) int64
        V, window = self.config.vocab_size, self.config.block_size
        if top_k is not None and top_k > V:
            raise ValueError(f"generate: top_k={top_k} is more than the vocabulary's {V} tokens; "
                             f"use top_k <= {V}, or None to sample from all of them")
        if idx.shape[1] > window:
            raise ValueError(f"generate: the prompt has {idx.shape[1]} tokens, more than block_size {window}; "
                             f"crop it to its last {window} tokens (idx[:, -{window}:])")
        if not use_cache or max_new_tokens == 0:
            return gpt.GPT.generate(self, idx, max_new_tokens, temperature, top_k, seed)
        rng = generator() if seed is None else np.random.default_rng(seed)
        # Under no_grad():
        # 1. prefill: caches = self.new_cache(B); logits, _ = self(idx, cache=caches): (B, T, V).
        # 2. for each new token: nxt = sample_next(logits[:, -1, :], temperature, top_k, rng), (B,);
        #    append it to idx; stop after the last token (no forward pass for a token nobody reads).
        # 3. next logits: if the caches are full (len(caches[0]) == window), start new caches and
        #    prefill idx[:, -window:]; else run the model on nxt[:, None] (B, 1) with the caches.
        # Pitfall: feeding all of idx again with a non-empty cache would store the prompt twice;
        # only the new token goes in, and its position comes from the cache (chapter 17's forward).
        ### BEGIN SOLUTION
        with no_grad():
            caches = self.new_cache(idx.shape[0])
            logits, _ = self(idx, cache=caches)                                     # prefill: (B, T, V)
            for step in range(max_new_tokens):
                nxt = sample_next(logits[:, -1, :], temperature, top_k, rng)         # (B,)
                idx = np.concatenate([idx, nxt[:, None]], axis=1)                    # (B, t + 1)
                if step == max_new_tokens - 1:
                    break
                if len(caches[0]) == window:                                         # full: positions shift
                    caches = self.new_cache(idx.shape[0])
                    logits, _ = self(idx[:, -window:], cache=caches)                 # re-prefill: (B, window, V)
                else:
                    logits, _ = self(nxt[:, None], cache=caches)                     # decode: (B, 1, V)
        return Tensor(idx)
        ### END SOLUTION


# %% [markdown]
r"""
The test is the promise of the cache: with the same seed, cached and
uncached generation write the same tokens, for a batch, with top-k and
temperature, and past `block_size`, where the window slides. Before the
tokens it compares what decides them, the logits: one cached step must give
the logits of a full forward pass to float32 rounding (not bit for bit: a
(1, t) row of a matrix product can be summed in another order than the same
row inside a (t, t) product). Then the bad arguments: each is one line
that says what to do.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_generate_cached", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _small_gpt(seed=0, **shape):
    manual_seed(seed)
    config = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
    model = GPT(GPTConfig(**{**config, **shape}))
    for p in model.parameters():                    # larger weights than GPT-2's init: peaked, varied logits
        p.data[...] = np.random.default_rng(seed).standard_normal(p.shape).astype(p.dtype) * 0.3
    return model.eval()


def test_unit_generate_cached():
    model = _small_gpt()
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    with no_grad():
        full, _ = model(ids)                                               # (2, 3, V)
        caches = model.new_cache(2)
        model(ids[:, :2], cache=caches)
        step, _ = model(ids[:, 2:], cache=caches)                          # (2, 1, V): the third position alone
    np.testing.assert_allclose(step.data[:, 0], full.data[:, 2], rtol=1e-5, atol=1e-5,
                               err_msg="one cached step must give the full forward's last logits")
    assert len(caches[0]) == 3 and len(caches[1]) == 3
    for kwargs in (dict(seed=3), dict(seed=4, temperature=0.7, top_k=3), dict(seed=5, top_k=1)):
        cached = model.generate(ids, 20, **kwargs).data                    # 23 > block_size 8: the window slides
        plain = model.generate(ids, 20, use_cache=False, **kwargs).data
        assert cached.shape == (2, 23)
        assert np.array_equal(cached, plain), f"cached and uncached tokens differ with {kwargs}"
    ### BEGIN HIDDEN TESTS
    wide = _small_gpt(seed=1, block_size=12, vocab_size=7)
    prompt = np.array([[1], [2], [3]])
    for seed in range(3):
        assert np.array_equal(wide.generate(prompt, 30, seed=seed, temperature=1.3).data,
                              wide.generate(prompt, 30, seed=seed, temperature=1.3, use_cache=False).data)
    ### END HIDDEN TESTS
    chapter17 = CapstoneGPT.generate(model, ids, 20, seed=3).data
    assert np.array_equal(model.generate(ids, 20, seed=3).data, chapter17), "must equal chapter 17's generate"
    assert np.array_equal(model.generate(ids, 0).data, ids)
    seen = []                                                          # positions per forward pass

    class Counting(GPT):
        def forward(self, idx, targets=None, cache=None):
            seen.append(np.asarray(idx).shape[1])
            return super().forward(idx, targets, cache)

    counting = Counting(model.config).eval()
    counting.generate(ids, 5)
    assert seen == [3, 1, 1, 1, 1], f"a prefill of the 3-token prompt, then one position per token; ran {seen}"
    bad = [(dict(max_new_tokens=-1), "max_new_tokens"), (dict(max_new_tokens=2, top_k=0), "top_k"),
           (dict(max_new_tokens=2, top_k=12), "top_k"), (dict(max_new_tokens=2, temperature=0.0), "temperature"),
           (dict(max_new_tokens=2, temperature=float("nan")), "temperature")]
    for kwargs, word in bad:
        try:
            model.generate(ids, **kwargs)
        except ValueError as err:
            assert word in str(err) and "\n" not in str(err), f"{kwargs}: {err}"
        else:
            raise AssertionError(f"generate({kwargs}) must raise a ValueError naming {word}")
    try:
        model.generate(np.zeros((1, 9), np.int64), 2)
    except ValueError as err:
        assert "block_size" in str(err) and "crop" in str(err)
    else:
        raise AssertionError("a 9-token prompt for block_size 8 must raise a ValueError that says to crop it")
    print("cached generate: one step equals the full forward; one position per new token; cached = uncached tokens (batch, top-k, past "
          "block_size); bad arguments are one-line errors: ok")


test_unit_generate_cached()

# %% [markdown]
r"""
## Measuring the cache

Now a model of a useful size: the shape of the capstone's Shakespeare model
(4 layers, 4 heads, width 128, a 65-character vocabulary) with a window of
128 positions. We generate a whole window of tokens both ways and time
every step. First the memory: the cache's arrays, measured, against the
formula.
"""

# %%
manual_seed(0)
config = GPTConfig(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128)
model = GPT(config).eval()
caches = model.new_cache(1)
allocated = sum(cache.nbytes for cache in caches)
weights = sum(p.data.nbytes for p in model.parameters())
assert allocated == kv_cache_bytes(config, config.block_size)
print(f"KV cache for one sequence at the full window of {config.block_size}: {allocated / 1e6:.3f} MB measured "
      f"= 2 x {config.n_layer} x {config.block_size} x {config.n_embd} x 4 bytes; "
      f"the weights are {weights / 1e6:.2f} MB")
print(f"the cache equals the weights at a batch of {weights / allocated:.1f} full-window sequences")

# %% [markdown]
r"""
For this model the cache of one full-window sequence is a fraction of the
weights (the printed batch size is where the two are equal); the cache
grows with the batch and the context, the weights do not. That is why a
server's memory, not its arithmetic, limits how many conversations it
holds at once (question 1 works it out for GPT-2).

Next, the time per token against the position, cached and uncached. Each
step is timed alone; the uncached step at position $t$ is a forward pass
over $t + 1$ tokens.
"""

# %%
def time_steps(model, n_tokens, use_cache, repeats=2):
    """Seconds per generated token at positions 0..n_tokens-1 (the fastest of `repeats` runs: other work
    on the machine only ever adds time)."""
    ids = np.random.default_rng(1).integers(0, model.config.vocab_size, (1, n_tokens))
    runs = []
    with no_grad():
        for _ in range(repeats):
            times, caches = [], model.new_cache(1)
            for t in range(n_tokens):
                start = time.perf_counter()
                if use_cache:
                    model(ids[:, t:t + 1], cache=caches)               # one new position
                else:
                    model(ids[:, :t + 1])                              # the whole context again
                times.append(time.perf_counter() - start)
            runs.append(times)
    return np.min(np.array(runs), axis=0)


cached_s = time_steps(model, config.block_size, use_cache=True)
plain_s = time_steps(model, config.block_size, use_cache=False)
first, last = slice(0, 8), slice(-8, None)
speedup_end = plain_s[last].mean() / cached_s[last].mean()
speedup_total = plain_s.sum() / cached_s.sum()
print(f"ms per token, positions 0-7: cached {cached_s[first].mean() * 1e3:.2f}, uncached {plain_s[first].mean() * 1e3:.2f}")
print(f"ms per token, positions {config.block_size - 8}-{config.block_size - 1}: cached "
      f"{cached_s[last].mean() * 1e3:.2f}, uncached {plain_s[last].mean() * 1e3:.2f} ({speedup_end:.1f}x)")
print(f"a whole window of {config.block_size} tokens: cached {cached_s.sum() * 1e3:.0f} ms, uncached "
      f"{plain_s.sum() * 1e3:.0f} ms, {speedup_total:.1f}x faster with the cache")
growth = plain_s[last].mean() / plain_s[first].mean()
print(f"the uncached step costs {growth:.1f}x more at the end of the window than at its start")
assert growth > 1.5, f"the text says the uncached step climbs with the position; measured {growth:.1f}x"
assert speedup_end > 1.5, f"the text says the cache wins most at the end of the window; measured {speedup_end:.1f}x"

fig, ax = plt.subplots(figsize=(6.5, 3.6), facecolor="white")
positions = np.arange(config.block_size)
ax.plot(positions, plain_s * 1e3, label="uncached: whole context each step", color="tab:red")
ax.plot(positions, cached_s * 1e3, label="KV cache: one position each step", color="tab:blue")
ax.set_xlabel("position of the generated token")
ax.set_ylabel("ms per token")
ax.set_title(f"Generating with the {model.num_parameters() / 1e6:.2f} M-parameter GPT, one thread")
ax.set_ylim(bottom=0)
ax.legend(frameon=False)
ax.set_facecolor("white")
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
The uncached line climbs with the position: its step is a forward pass
over the whole context, so its cost grows linearly (and its attention part
quadratically). The cached line is nearly flat: one position through every
layer, plus an attention row whose length grows, which is cheap at this
size. The printed ratio over a whole window is the speed-up a user sees;
it grows with the length generated, since the uncached total grows as
$N^2$ and the cached as $N$. `benchmarks/generation.py` measures the same
for 256 new tokens at `block_size` 256.

## The decode roofline

Why is a cached step still slower per token than reading the prompt in one
pass? Chapter 15's roofline answers it. Count, for one forward pass over
$T$ new tokens, the FLOPs and the bytes that must at least move:

- FLOPs: about $2N$ per token for the $N$ weights of the matrix products
  (each weight is one multiply and one add), so $2NT$;
- bytes: every weight read once per pass, $4N$ in float32, whatever $T$ is.

So the arithmetic intensity is about $2NT / 4N = T/2$ FLOP per byte. A decode
step has $T = 1$: half a FLOP per byte, far left of the ridge point of any
CPU, so memory-bound. A prefill of 128 tokens has intensity 64, right of
the ridge: compute-bound. We measure the machine's roof (chapter 15's
`measure_roofline`, one thread) and both kinds of step.
"""

# %%
roof = measure_roofline(n=512, megabytes=32, repeats=3)
n_matmul = sum(p.numel() for name, p in model.named_parameters() if p.ndim == 2 and "wpe" not in name)
prompt = np.random.default_rng(2).integers(0, config.vocab_size, (1, config.block_size))
decode_caches = model.new_cache(1)
with no_grad():
    model(prompt[:, :-1], cache=decode_caches)                 # block_size - 1 positions held


def prefill():
    with no_grad():
        model(prompt, cache=model.new_cache(1))                # (1, 128) new tokens, empty caches


def decode():
    with no_grad():
        for cache in decode_caches:
            cache.length = config.block_size - 1               # forget the last step: the same step every time
        model(prompt[:, -1:], cache=decode_caches)             # (1, 1): the last position


timings = {}
for name, fn in (("prefill", prefill), ("decode", decode)):
    fn()
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    timings[name] = best

points = {}
for name, T in (("prefill", config.block_size), ("decode", 1)):
    flops = 2 * n_matmul * T
    intensity = flops / (4 * n_matmul)
    rate = flops / timings[name]
    points[f"{name} (T={T})"] = (intensity, rate)
    print(f"{name:7s} T={T:3d}: {timings[name] * 1e3:6.2f} ms per pass, {timings[name] / T * 1e3:6.3f} ms per token, "
          f"intensity {intensity:5.1f} FLOP/B, {rate / 1e9:5.2f} GFLOP/s = {roof.efficiency(intensity, rate):.0%} "
          f"of the roof there ({roof.bound(intensity)}-bound)")
print(f"machine: peak {roof.peak_flops / 1e9:.1f} GFLOP/s, bandwidth {roof.bandwidth / 1e9:.1f} GB/s, "
      f"ridge {roof.ridge:.1f} FLOP/B")
per_token_ratio = (timings["decode"] / 1) / (timings["prefill"] / config.block_size)
print(f"a decoded token costs {per_token_ratio:.0f}x a prefilled token")
assert roof.bound(0.5) == "memory" and roof.bound(config.block_size / 2) == "compute", \
    f"the text says decode is memory-bound and prefill compute-bound; the ridge is {roof.ridge:.1f} FLOP/B"
assert per_token_ratio > 3, f"the text says a decoded token costs several prefilled ones; measured {per_token_ratio:.1f}x"

print(f"decode reaches {roof.efficiency(0.5, points['decode (T=1)'][1]):.0%} of its memory roof: the rest of its "
      f"{timings['decode'] * 1e3:.1f} ms is the Python overhead of a few hundred small operations")
ax = roof.plot(points, title="Prefill and decode on the roofline (one thread)")
ax.figure.set_facecolor("white")
plt.tight_layout()
plt.show()

# %% [markdown]
r"""
Both kinds of step sit on the side of the ridge the counting predicts, and
neither reaches its roof. The prefill's matrix products are big enough for
BLAS, but the attention's masked softmax is still composed of many small
NumPy passes (LayerNorm and the tanh GELU run as single primitives from
chapters 14 and 03; chapter 14 measured what fusing LayerNorm saves on one
token). The decode step is further below its
roof: its matrix products are matrix-vector products of one row, and each
of its few hundred operations pays a fixed cost in Python and NumPy
dispatch that does not shrink with the work. That fixed cost is why the
cached line in the plot above is flat rather than tiny: a decoder in C++
or on a GPU removes it, and what remains is the memory roof, the weights
read once per token. The lesson carries over unchanged: per token, decode
is many times more expensive than prefill, and batching decode steps (the
weights read once for many sequences) is how servers close the gap
(question 2).
"""

# %% [markdown]
r"""
## Fewer tokens: byte-pair encoding

The cache makes each step cheap; the tokenizer decides how many steps there
are. A character model spends one forward pass (and one position of the
window) per character. Byte-pair encoding, the tokenizer of GPT-2 and most
models since, learns a vocabulary of frequent pieces of text:

1. start from the 256 possible **bytes** of UTF-8 text: every text, in any
   script, is a sequence of them, so no character is ever unknown (an emoji
   the training text never contained is simply its four bytes);
2. count every adjacent pair of tokens in the training text, give the most
   frequent pair a new id (256, 257, ...), replace it everywhere, and repeat
   until the vocabulary has the size asked for.

Encoding applies the learned merges to new text in the order they were
learned; decoding joins the bytes of the tokens and reads them as UTF-8, so
`decode(encode(text)) == text` for every text.

Two things make it fast enough for a real corpus, and both are part of the
design, not afterthoughts:

- **Chunks.** Like GPT-2, we first split the text into chunks (a word with
  its leading space, a run of digits, of punctuation, of spaces) and never
  merge across them. A corpus of a million characters has only tens of
  thousands of *distinct* chunks, so training works on a table of distinct
  chunks and their counts, not on the text.
- **Incremental pair counts.** A merge changes only the chunks that contain
  the merged pair. Rescanning the whole table after every merge costs the
  table's size per merge; instead we keep the pair counts and, for every
  pair, the chunks that contain it, and after a merge update only those
  chunks: subtract their old pairs, merge, add their new pairs.

Encoding caches each distinct chunk's ids, so a word that occurs ten
thousand times is merged once.

The pre-tokenizer and the bookkeeping are given. You write the merge loop
(`learn_merges`) and the encoding of one chunk (`encode_chunk`).
"""

# %% nbgrader={"grade": false, "grade_id": "impl_bpe", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export models.bpe

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

FORMAT = "tinytorch-bpe"
VERSION = 1
# GPT-2's pre-tokenizer with Python's `re` classes: contractions, a word with its leading space,
# digits, other symbols (and _), whitespace not followed by a word, and any other whitespace.
PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""


def pre_tokenize(text: str) -> list[str]:
    """The chunks of `text` that BPE merges within (never across); joined, they are the text."""
    return re.findall(PATTERN, text)                  # `re` compiles the pattern once and keeps it


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """ids with every non-overlapping occurrence of `pair`, left to right, replaced by new_id."""
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(chunk_counts: dict, n_merges: int) -> list[tuple[int, int]]:
    """The first n_merges merges of byte-pair encoding, learned from distinct chunks and their counts.

    Args: chunk_counts, {chunk as bytes: how often it occurs}; n_merges, how many new tokens to make.
    Returns: a list of (left id, right id) pairs; merge r makes the token 256 + r. It is shorter than
        n_merges only when no pair is left (every chunk is a single token).
    """
    # 1. words = [list(chunk) for chunk in chunk_counts] (each a list of byte ids), with their counts.
    # 2. pair_counts: Counter {pair: occurrences, weighted by the chunk's count}; where: {pair: set of
    #    word indices containing it}. Fill both with one pass over every word's zip(w, w[1:]).
    # 3. For new_id = 256, 257, ...: best = the pair with the largest count (ties: the smallest pair,
    #    max over (count, -left, -right), so training is deterministic); append it; for each word i in
    #    where[best]: subtract its pairs' counts (delete a pair whose count reaches 0), merge with
    #    merge_pair, add the new pairs' counts and record i in where for each. Stop early when no pair is left.
    # Pitfall: rescanning every word for every merge is correct but far too slow for a real corpus;
    # touch only the words in where[best] (an entry there may be stale: merging it then changes nothing).
    ### BEGIN SOLUTION
    words = [list(chunk) for chunk in chunk_counts]
    counts = list(chunk_counts.values())
    pair_counts, where = Counter(), defaultdict(set)
    for i, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            where[pair].add(i)
    merges = []
    for new_id in range(256, 256 + n_merges):
        if not pair_counts:
            break
        best = max(pair_counts.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))[0]
        merges.append(best)
        for i in where.pop(best):
            word, count = words[i], counts[i]
            for pair in zip(word, word[1:]):
                pair_counts[pair] -= count
                if pair_counts[pair] <= 0:
                    del pair_counts[pair]
            word = words[i] = merge_pair(word, best, new_id)
            for pair in zip(word, word[1:]):
                pair_counts[pair] += count
                where[pair].add(i)
    return merges
    ### END SOLUTION


class _Ranks(dict):
    """{pair: rank}, in which a pair never learned ranks after every learned one (instead of a KeyError)."""

    def __missing__(self, pair):
        return len(self)


class BPETokenizer:
    """Byte-level byte-pair encoding: text <-> ids, with merges learned by `BPETokenizer.train`.

    Ids 0..255 are the bytes of UTF-8, so every text encodes (nothing is unknown) and
    decode(encode(text)) == text exactly. Id 256 + r is merge r, the pair merges[r] joined.
    """

    def __init__(self, merges):
        self.merges = [tuple(int(x) for x in pair) for pair in merges]
        self.vocab = [bytes([b]) for b in range(256)]                 # id -> the bytes it stands for
        for r, (a, b) in enumerate(self.merges):
            if not (0 <= a < 256 + r and 0 <= b < 256 + r):
                raise ValueError(f"BPETokenizer: merge {r} joins ids {a} and {b}, but only ids below {256 + r} "
                                 "exist at that point; the merges are damaged, train the tokenizer again")
            self.vocab.append(self.vocab[a] + self.vocab[b])
        self.ranks = _Ranks((pair, r) for r, pair in enumerate(self.merges))   # pair -> when it was learned
        self._cache = {}                                               # chunk -> its ids

    @classmethod
    def train(cls, text: str, vocab_size: int) -> "BPETokenizer":
        """Learn vocab_size - 256 merges from `text` (fewer if the text runs out of pairs)."""
        if not isinstance(text, str) or not text:
            raise ValueError("BPETokenizer.train: give a non-empty str of training text")
        if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool) or vocab_size < 256:
            raise ValueError(f"BPETokenizer.train: vocab_size must be an integer >= 256 (the bytes), got {vocab_size!r}")
        chunk_counts = Counter(chunk.encode("utf-8") for chunk in pre_tokenize(text))
        return cls(learn_merges(chunk_counts, int(vocab_size) - 256))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_chunk(self, chunk: bytes) -> list[int]:
        """The ids of one chunk: its bytes, with the learned merges applied in the order they were learned.

        Args: chunk, the UTF-8 bytes of one pre-tokenized chunk. Returns: a list of ids.
        """
        # 1. ids = list(chunk): one id per byte.
        # 2. While at least two ids are left: among the adjacent pairs, find the one learned first,
        #    the lowest self.ranks[pair] (min with key=self.ranks.__getitem__); a pair never learned
        #    ranks len(self.ranks), after all others: if even the best has that rank, stop; else
        #    ids = merge_pair(ids, pair, 256 + rank).
        # Pitfall: merging the most frequent or leftmost pair instead of the earliest-learned one gives
        # other ids than training did, and a text that encodes differently from how the model learned it.
        ### BEGIN SOLUTION
        ids = list(chunk)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=self.ranks.__getitem__)
            rank = self.ranks[pair]
            if rank == len(self.ranks):                                   # no pair here was ever learned
                break
            ids = merge_pair(ids, pair, 256 + rank)
        return ids
        ### END SOLUTION

    def encode(self, text: str) -> list[int]:
        """The ids of `text`: chunk it, and encode each distinct chunk once (cached)."""
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode: expected a str, got {type(text).__name__}")
        ids, cache = [], self._cache
        if len(cache) > 200_000:                                       # a bound on the cache's memory
            cache.clear()
        for chunk in pre_tokenize(text):
            found = cache.get(chunk)
            if found is None:
                found = cache[chunk] = self.encode_chunk(chunk.encode("utf-8"))
            ids.extend(found)
        return ids

    def decode(self, ids) -> str:
        """The text of a sequence of ids (a list, 1-D array or 1-D Tensor)."""
        ids = np.asarray(getattr(ids, "data", ids)).reshape(-1)
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"BPETokenizer.decode: ids must be integers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            bad = int(ids.min() if ids.min() < 0 else ids.max())
            raise IndexError(f"BPETokenizer: id {bad} is outside the vocabulary (0 to {self.vocab_size - 1})")
        vocab = self.vocab
        return b"".join(vocab[i] for i in ids.tolist()).decode("utf-8", errors="replace")

    def save(self, path) -> None:
        """Write the tokenizer to `path` as JSON: format, version, pre-tokenizer pattern, merges."""
        data = {"format": FORMAT, "version": VERSION, "pattern": PATTERN, "merges": [list(p) for p in self.merges]}
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path) -> "BPETokenizer":
        """Read a tokenizer that `save` wrote; a damaged file or another version is a one-line ValueError."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"BPETokenizer.load: {path} not found; give the file BPETokenizer.save wrote")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"BPETokenizer.load: {path} is not a tokenizer file (not JSON: {err}); "
                             "save the tokenizer again with BPETokenizer.save") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"BPETokenizer.load: {path} is not a {FORMAT} file; give the file BPETokenizer.save wrote")
        if data.get("version") != VERSION:
            raise ValueError(f"BPETokenizer.load: {path} has format version {data.get('version')!r}, this tinytorch "
                             f"reads version {VERSION}; train and save the tokenizer again with this version")
        if data.get("pattern") != PATTERN:
            raise ValueError(f"BPETokenizer.load: {path} was made with another pre-tokenizer pattern; "
                             "train and save the tokenizer again with this version")
        merges = data.get("merges")
        if not isinstance(merges, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in p)
                for p in merges):
            raise ValueError(f"BPETokenizer.load: {path} is damaged (merges must be a list of [int, int] pairs); "
                             "save the tokenizer again with BPETokenizer.save")
        return cls(merges)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


# %% [markdown]
r"""
The test trains on a short text where the merges can be worked out by
hand, checks the incremental bookkeeping against the slow way (rescan the
whole table after every merge), and then the promises: an exact round
trip for text in any script, including bytes training never saw; the
chunk encoder reproducing training's merges; and a saved file that loads
to the same tokenizer, while a damaged one or one of another version is
refused in one line.
"""

# %% nbgrader={"grade": true, "grade_id": "test_unit_bpe", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def _merges_by_rescanning(chunk_counts, n_merges):
    """The slow reference: count every pair of every word again before each merge."""
    words, merges = {bytes(c): list(c) for c in chunk_counts}, []
    for new_id in range(256, 256 + n_merges):
        pairs = Counter()
        for chunk, word in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += chunk_counts[chunk]
        if not pairs:
            break
        best = max(pairs.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))[0]
        merges.append(best)
        words = {chunk: merge_pair(word, best, new_id) for chunk, word in words.items()}
    return merges


def test_unit_bpe():
    assert merge_pair([1, 2, 1, 2, 2], (1, 2), 9) == [9, 9, 2] and merge_pair([5, 5, 5], (5, 5), 7) == [7, 5]
    counts = {b"aaab": 5, b"ab": 2, b"b": 1}
    assert learn_merges(counts, 2) == [(97, 97), (97, 98)], "first 'aa' (5 + 5 = 10 times), then 'ab' (5 + 2)"
    assert learn_merges({b"ab": 1}, 5) == [(97, 98)], "stop when no pair is left"
    text = "the cat sat on the mat; the cats sat on the mats. " * 3 + "a dog, a log, a frog! 1234 1234"
    counts = Counter(chunk.encode("utf-8") for chunk in pre_tokenize(text))
    assert learn_merges(counts, 40) == _merges_by_rescanning(counts, 40), \
        "the incremental pair counts must learn the merges that rescanning learns"
    assert BPETokenizer.train(text, 1000).vocab_size < 1000, "a short text runs out of pairs: fewer merges"
    tok = BPETokenizer.train(text, 280)
    assert tok.vocab_size == 280 and tok.vocab[256] == b"at", f"the first merge is 'at', got {tok.vocab[256]!r}"
    for sample in (text, "Unseen: Ωmega, 雪, ☃, tabs\t\tand\nnewlines, _under_scores_ 3.14", ""):
        ids = tok.encode(sample)
        assert tok.decode(ids) == sample, f"round trip failed for {sample!r}"
        assert all(0 <= i < tok.vocab_size for i in ids)
    assert len(tok.encode(text)) < 0.4 * len(text), "the training text should shrink to well under half"
    ### BEGIN HIDDEN TESTS
    everything = "".join(chr(c) for c in range(32, 0x800)) + "\U0001F600 \x00\x01 end"
    assert tok.decode(tok.encode(everything)) == everything, "every character must round-trip"
    assert BPETokenizer(tok.merges).encode(text) == tok.encode(text), "the chunk cache must not change the ids"
    ### END HIDDEN TESTS
    assert tok.encode_chunk(b" the") == [tok.vocab.index(b" the")], "a learned word is one token"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bpe.json"
        tok.save(path)
        assert BPETokenizer.load(path).encode(text) == tok.encode(text)
        saved = json.loads(path.read_text(encoding="utf-8"))
        for damage, word in ((lambda d: "{broken", "not JSON"), (lambda d: json.dumps({**d, "version": 99}), "version"),
                             (lambda d: json.dumps({**d, "merges": [[1, 900]]}), "damaged"),
                             (lambda d: json.dumps({**d, "merges": "x"}), "damaged")):
            path.write_text(damage(saved), encoding="utf-8")
            try:
                BPETokenizer.load(path)
            except ValueError as err:
                assert word in str(err) and "\n" not in str(err), f"expected a one-line error about {word}: {err}"
            else:
                raise AssertionError(f"loading a file that is {word!r} must raise ValueError")
    print("BPE: merges worked by hand, incremental = rescanning, exact round trip for unseen bytes, "
          "save/load and one-line errors: ok")


test_unit_bpe()

# %% [markdown]
r"""
### What a vocabulary costs and buys

We need a real text, and the chapter must run without a network, so we use
one every reader has: the source code of the `tinytorch` package you built
(English docstrings and Python, about half a megabyte). We train on the
first 90 % and measure on the last 10 %, which the tokenizer never saw.
Merges are learned one at a time, each the most frequent pair given the
merges before it, so the tokenizer of a smaller vocabulary is the first
merges of a larger one (the cell checks this on a slice of the text): we
train once, to 1024 tokens (768 merges), and take its first 128 merges for
384 tokens, its first 256 for 512.
For each vocabulary size the table gives the tokens per character on the
held-out text, how many characters a window of 64 tokens covers, and what
the vocabulary costs in parameters: the token table (vocab × `n_embd`, with
`n_embd` 128 as in the capstone), which is also the output head because the
two are tied.
"""

# %%
import tinytorch
from tinytorch.models import CharTokenizer

package_files = sorted(Path(tinytorch.__file__).parent.rglob("*.py"))
corpus = "".join(path.read_text(encoding="utf-8") for path in package_files)
split = int(0.9 * len(corpus))
corpus_train, corpus_held_out = corpus[:split], corpus[split:]
chars = CharTokenizer(corpus)
n_embd = 128
print(f"corpus: the {len(package_files)} files of tinytorch, {len(corpus):,} characters, {chars.vocab_size} distinct")
sizes = (256, 384, 512, 1024)
start = time.perf_counter()
largest = BPETokenizer.train(corpus_train, max(sizes))
seconds = time.perf_counter() - start
sample = corpus_train[:50_000]                             # a shorter training learns the first merges of a longer one
assert BPETokenizer.train(sample, 300).merges == BPETokenizer.train(sample, 400).merges[:44], \
    "training to 300 tokens must learn the first 44 merges that training to 400 learns"
print(f"{'tokenizer':>16s} {'vocab':>6s} {'tokens/char':>12s} {'chars per 64 tokens':>20s} {'embedding+head params':>22s}")
print(f"{'characters':>16s} {chars.vocab_size:6d} {1.0:12.3f} {64:20.0f} {chars.vocab_size * n_embd:22,d}")
table, tokenizers = {}, {}
for size in sizes:
    trained = BPETokenizer(largest.merges[:size - 256])    # the first merges: what training to `size` learns
    ids = trained.encode(corpus_held_out)
    assert trained.decode(ids) == corpus_held_out
    tokenizers[size] = trained
    table[size] = len(ids) / len(corpus_held_out)
    print(f"{'BPE':>16s} {size:6d} {table[size]:12.3f} {64 / table[size]:20.0f} {size * n_embd:22,d}")
print(f"training the {max(sizes)}-token vocabulary ({max(sizes) - 256} merges) took {seconds:.2f} s")
assert table[256] == 1.0 or abs(table[256] - 1.0) < 0.01, "bytes of mostly-ASCII text: about one token per character"
assert table[512] < 0.6 * table[256], f"the text says 512 tokens roughly halve the length; measured {table[512]:.3f}"
print("the first 12 merges:", [tokenizers[512].vocab[256 + r].decode("utf-8", "replace") for r in range(12)])
print(f"BPE-512 needs {1 / table[512]:.1f}x fewer steps than characters for the same text, and its table costs "
      f"{512 * n_embd - chars.vocab_size * n_embd:,} more parameters than the character model's")

# %% [markdown]
r"""
Each doubling of the vocabulary buys less: the first merges are the most
frequent pairs (printed below), later ones rarer words. For the
capstone's model (0.8 M parameters) a 512-token table is about 7 % of the
model, for GPT-2 (50,257 tokens × 768) it is 38.6 M of 124 M
parameters. What the shorter sequences buy is fewer decode steps per
character written and more text in the same window (and attention cost);
what they cost is the table and the output head, whose matrix product grows
with the vocabulary at every step.

Whether a model learns text better per character with BPE than with
characters has to be measured per **character**, not per token: a BPE token
carries about two characters, so its loss per token is naturally higher.
Loss per character = loss per token × tokens per character. The
comparison on tiny-shakespeare, trained for the same time, is
`examples/tinygpt_bpe.py` and its page in the book's results.

## Quantised generation

Decode is memory-bound: a step reads every weight once for one token. So
the weights' size is the speed limit of a well-implemented decoder, and
chapter 16's int8 weights (a quarter of float32's bytes) should help. We
train a small character model on the package source for a few seconds,
quantise it with chapter 16's `quantize_model`, and measure what it costs
and saves: memory, time per generated token, and held-out loss per
character.
"""

# %%
from tinytorch.deploy import model_nbytes, quantize_model
from tinytorch.models import TrainConfig, estimate_loss, train

data_train = np.array(chars.encode(corpus_train), dtype=np.int64)
data_held_out = np.array(chars.encode(corpus_held_out), dtype=np.int64)
manual_seed(0)
small = GPT(GPTConfig(vocab_size=chars.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64))
start = time.perf_counter()
history = train(small, data_train, data_held_out,
                TrainConfig(max_iters=120, batch_size=8, learning_rate=3e-3, min_lr=3e-4, warmup_iters=10,
                            lr_decay_iters=120, eval_interval=120, eval_iters=4, seed=0))
print(f"trained {small.num_parameters():,} parameters for 120 steps in {time.perf_counter() - start:.1f} s; "
      f"training loss {history['loss'][0]:.2f} -> {history['loss'][-1]:.2f}")
small.eval()
small_int8 = quantize_model(small)                    # weight matrices in int8, dequantized at use


def held_out_loss(model):
    return estimate_loss(model, {"held_out": data_held_out}, 20, 8, 64, np.random.default_rng(7))["held_out"]


def generation_seconds(model, n=60, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model.generate(np.array([[0]]), n, seed=0)
        best = min(best, time.perf_counter() - start)
    return best / n


rows = {}
for name, m in (("float32", small), ("int8 weights", small_int8)):
    rows[name] = (model_nbytes(m), generation_seconds(m), held_out_loss(m))
    print(f"{name:>13s}: {rows[name][0] / 1e3:7.1f} kB, {rows[name][1] * 1e3:5.2f} ms/token, "
          f"held-out loss {rows[name][2]:.4f} nats/char")
(b32, s32, l32), (b8, s8, l8) = rows["float32"], rows["int8 weights"]
same = np.mean(small.generate(np.array([[0]]), 100, seed=3).data == small_int8.generate(np.array([[0]]), 100, seed=3).data)
print(f"int8: {b32 / b8:.1f}x less memory, {s8 / s32:.2f}x the time per token, loss per char {l8 - l32:+.4f} nats; "
      f"{same:.0%} of 100 sampled tokens identical with the same seed")
assert b32 / b8 > 2, f"the text says int8 weights take well under half the memory; measured {b32 / b8:.1f}x"
assert s32 / s8 < 0.75 * b32 / b8, f"the text says the time does not fall with the memory; measured {s32 / s8:.2f}x faster"
assert abs(l8 - l32) < 0.05, f"the text says int8 costs a few hundredths of a nat at most; measured {l8 - l32:+.4f}"

# %% [markdown]
r"""
The memory falls by the printed factor (not the full 4×: LayerNorms,
biases and the int8 scales stay in float32, and the small model's
embedding tables are a large share), and the loss per character moves by the
printed amount, well inside the 0.05 nats the cell asserts: for
generation, int8 weights are nearly free in quality (the sampled text
does change: a small change of the probabilities moves some draws to a
neighbouring token, and from there the texts part). The time per token does *not* fall with the memory
(the printed ratio; the cell asserts it is far from the memory factor), and
the roofline says why that is our implementation, not the idea: chapter 16's
`QuantizedLinear` dequantizes the int8 matrix back to float32 before
every product, so a step reads the int8 bytes *and* writes and reads a
float32 copy. A decoder that multiplies straight from int8 (llama.cpp's
kernels, PyTorch's int8 `linear` on CPU) reads a quarter of the bytes and,
memory-bound, runs up to that much faster. NumPy has no such kernel; at our
size, Python's per-operation overhead dominates the step anyway.

## Production context

- **KV caches in real servers.** Hugging Face `transformers` passes a
  `past_key_values` cache object through every attention layer, as we do
  (a growing `DynamicCache`, or a preallocated `StaticCache` like ours,
  which lets the step be compiled once). vLLM's PagedAttention stores the
  cache in fixed-size blocks, like virtual memory pages, so that thousands
  of conversations of unpredictable length share GPU memory without
  fragmentation; the cache, not the weights, limits the batch.
- **Prefill and decode are scheduled apart.** Because prefill is
  compute-bound and decode memory-bound, servers batch many conversations'
  decode steps together (the weights read once serve the whole batch) and
  split long prefills into chunks that share a step with decodes.
- **Shrinking the cache.** Multi-query and grouped-query attention (one or
  a few key/value heads shared by all query heads) cut the cache by the
  ratio of heads; Llama 2 70B keeps 8 KV heads for 64 query heads.
  Quantising the cache to 8 bits halves it again.
- **Tokenizers.** GPT-2's BPE is byte-level with a regex pre-tokenizer
  like ours; OpenAI's `tiktoken` does the same in Rust, with a 100 k-token
  vocabulary for GPT-4. SentencePiece (Llama 1 and 2, T5) learns BPE or a
  unigram model on raw text with spaces as a symbol and falls back to bytes
  for unknown characters.
- **Positions and the window.** Models with rotary position embeddings
  (RoPE) can keep a sliding cache (plus a few "attention sink" tokens, in
  StreamingLLM) because a key's rotation encodes its position relative to
  the query; our learned absolute positions force a recomputation.

## Run every test of this chapter
"""

# %%
if __name__ == "__main__":
    test_unit_kv_cache()
    test_unit_generate_cached()
    test_unit_bpe()
    print("All tests of chapter 18 pass.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. The cache at GPT-2's size.** GPT-2 small has 12 layers, width 768,
a 1024-token window and 124 M parameters. How much memory does the KV
cache of one full-window conversation take in float32 (use your
`kv_cache_bytes`)? At what batch size does the cache outgrow the weights,
and what would grouped-query attention with 4 key/value heads (of 12) do
to that batch size?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_gpt2_cache", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** 2 × 12 layers × 1024 positions × 768 × 4 bytes
= 75,497,472 bytes ≈ 75.5 MB per conversation. The weights are
124 M × 4 bytes ≈ 496 MB, so the cache outgrows them at
496 / 75.5 ≈ 6.6, i.e. from a batch of 7 full-window conversations. With 4
key/value heads instead of 12 the cache is a third (about 25.2 MB per
conversation), so the crossover moves to about 19.7, a batch of 20.

**Rubric (2 points).** 1 point for 75.5 MB from the formula (the factor 2
and the layers included); 1 point for the crossover near 7 and the GQA
factor of 3 (near 20).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Batching decode.** You measured a decode step at about half a FLOP
per byte and the machine's ridge point. If a server decodes B
conversations in one step (one new token each, the same weights), what is
the arithmetic intensity of the weight products as a function of B, and
from which B would they become compute-bound on your machine? Why does the
attention over the cache not benefit in the same way?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_batched_decode", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The weights are read once per step whatever B is (4N
bytes) and the FLOPs are 2N per token, 2NB per step: intensity
2NB / 4N = B/2 FLOP/byte. It crosses the ridge when B/2 equals the ridge;
with the ridge printed in this chapter (17 to 19 FLOP/byte in our runs on
one quiet thread, less on a busy machine; the reader's own number is
accepted) and a ridge of 18, that is B ≈ 36. The attention
part does not improve: every conversation has its own cache, so its bytes
grow with B as fast as its FLOPs (each cached key and value is used by one
query only), and it stays at about 0.5 FLOP per byte of cache in float32
(2 FLOPs per cached number per query, 4 bytes per number), memory-bound at
any batch size.

**Rubric (2 points).** 1 point for intensity B/2 and the crossover at
twice the ridge (with the reader's measured ridge); 1 point for why the
cache reads grow with the batch (no reuse across sequences).
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Choosing the vocabulary.** Your table shows tokens per character
for BPE at 256 to 1024 tokens. For the capstone's model (4 layers, width
128, window 64), what does going from characters (65) to 512 BPE tokens
cost in parameters, and what does it buy in characters per window and in
decode steps for 1,000 characters? What grows with the vocabulary at every
decode step, whatever the cache does?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_vocabulary_choice", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** The tied table grows from 65 × 128 = 8,320 to
512 × 128 = 65,536 parameters, +57,216 (about 7 % of the 0.8 M model).
With about 0.5 tokens per character (the table: 0.48 on the package
source; 0.52 on tiny-shakespeare, `benchmarks/bpe.py`) a window of 64
tokens covers about 130 characters instead of 64, and 1,000 characters
take about 500 decode steps instead of 1,000. Every step still computes
the head's product, n_embd × vocab = 128 × 512 multiply-adds instead of
128 × 65, and a softmax over 512 entries: the head grows with the
vocabulary no matter what is cached (at GPT-2's 50 k tokens it is the
largest single product of a decode step).

**Rubric (2 points).** 1 point for the parameter cost and the roughly
halved steps and doubled window (from the measured tokens per character);
1 point for naming the output head (and softmax) as the per-step cost that
grows with the vocabulary.
### END SOLUTION
"""

# %% [markdown]
r"""
**4. The window.** Our cache recomputes itself from the last
`block_size` tokens whenever the window is full, so past the window each
token costs a prefill. For the 128-position model of this chapter,
generating 1,000 tokens from a 1-token prompt: how many token-positions
pass through the model with our policy, and how many without a cache?
Propose a policy that amortises the recomputation (say what it changes in
the output) and compute its count.
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_window_policy", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** With our policy the first 127 new tokens take the prompt's
1 position plus one position each (128 in all, the cache then full); each
of the remaining 1,000 − 128 = 872 steps re-prefills 128 positions:
128 + 872 × 128 = 111,744 token-positions. Without a cache, step t runs
min(t, 128) positions: 1 + 2 + ... + 128 = 8,256 for the first 128 steps,
then 128 for each of the remaining 872 (111,616 in all, about the same:
past the window the cache saves nothing). Amortised policy: when the
window is full, keep only the last 64 tokens (re-prefill 64 positions),
then decode 64 more cheaply; each 64 tokens then cost 64 + 64 = 128
positions instead of 64 × 128 = 8,192, so 1,000 tokens cost about
128 + 14 × 128 ≈ 1,900 positions. It changes the output: the model then
sees between 64 and 128 tokens of context instead of always 128, so the
tokens differ from the uncached model's (and the context is shorter on
average).

**Rubric (2 points).** 1 point for the two counts (about 112 k each,
showing the cache only helps within the window); 1 point for a policy that
amortises (slide by half, or relative positions/RoPE) with its count and
the honest statement of what changes in the output.
### END SOLUTION
"""

# %% [markdown]
r"""
## Module summary

You made a trained model generate fast and with fewer steps:

- **`kv_cache_bytes`, `KVCache`** (`tinytorch.models.generation`): the
  cache's memory, 2 × layers × positions × width × bytes per sequence,
  and a preallocated per-layer cache whose `update` writes new keys and
  values in place and returns views, refusing when full;
- **`GPT.generate(idx, max_new_tokens, temperature=1.0, top_k=None,
  seed=None, use_cache=True)`** (`tinytorch.models.GPT`, chapter 17's GPT
  with its cache argument filled): a prefill, then one position per step;
  identical tokens to the uncached model with the same seed; past
  `block_size` the window slides by recomputing the cache; one-line errors
  for bad arguments and a prompt longer than the window;
- **`BPETokenizer`** (`tinytorch.models.bpe`): byte-level BPE with a GPT-2
  style pre-tokenizer, training by incremental pair counts over distinct
  chunks, encoding with a per-chunk cache, exact round trips for any text,
  and `save`/`load` as versioned JSON.

Measured: without a cache the time per token grows with the position, with
it stays nearly flat, and over a whole window the cache wins by the printed
factor (`benchmarks/generation.py` measures 256 tokens at `block_size` 256).
On chapter 15's roofline a decode step sits at half a FLOP per byte, far
left of the ridge, and a prefilled token is many times cheaper than a
decoded one. BPE with 512 tokens halves the number of steps for English
text; int8 weights cost almost nothing in loss per character and cut the
memory, though not our NumPy step time.
"""
