"""Checkpoint 18 (generation): Can I make a trained language model generate text fast?

Uses chapter 18 on the capstone's GPT: a KV cache of the size the formula
predicts, cached generation that writes exactly the tokens of uncached
generation with the same seed (also past block_size, where the window
slides) and runs one position per new token instead of the whole context, one-line errors for bad arguments,
and a byte-pair tokenizer that learns merges, round-trips any text exactly
(bytes it never saw included), shortens text, and saves and loads as JSON.
"""

from _harness import main

import json
import tempfile
from pathlib import Path

import numpy as np

from tinytorch import manual_seed
from tinytorch.models import GPT, BPETokenizer, GPTConfig, KVCache, kv_cache_bytes

TEXT = ("to be or not to be, that is the question: whether 'tis nobler in the mind to suffer "
        "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles. ") * 4


def _model(block_size=16, seed=0):
    manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=20, block_size=block_size, n_layer=2, n_head=2, n_embd=16))
    rng = np.random.default_rng(seed)
    for p in model.parameters():                 # large weights: peaked logits that differ between tokens
        p.data[...] = rng.standard_normal(p.shape).astype(p.dtype) * 0.3
    return model.eval()


def check_cache_memory():
    """The cache holds 2 x layers x positions x width x 4 bytes, and appends in place."""
    model = _model()
    caches = model.new_cache(3)
    assert len(caches) == 2 and all(isinstance(c, KVCache) for c in caches), "new_cache makes one KVCache per block"
    measured = sum(c.nbytes for c in caches)
    assert measured == kv_cache_bytes(model.config, 16, batch_size=3) == 2 * 2 * 3 * 16 * 16 * 4, \
        f"the cache takes {measured} bytes; 2 x 2 layers x 3 sequences x 16 positions x 16 wide x 4 bytes = 24576"
    keys, _ = caches[0].update(np.ones((3, 2, 5, 8), np.float32), np.ones((3, 2, 5, 8), np.float32))
    assert keys.shape == (3, 2, 5, 8) and len(caches[0]) == 5, "after 5 positions the cache returns (3, 2, 5, 8)"


def check_cached_equals_uncached():
    """With the same seed, cached and uncached generation write the same tokens, also past block_size."""
    model = _model()
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    for kwargs in (dict(seed=1), dict(seed=2, top_k=4, temperature=0.8)):
        cached = model.generate(prompt, 30, **kwargs).data       # 33 tokens, block_size 16
        plain = model.generate(prompt, 30, use_cache=False, **kwargs).data
        assert cached.shape == (2, 33), f"expected (2, 33) ids, got {cached.shape}"
        assert np.array_equal(cached, plain), f"cached and uncached generation differ with {kwargs}"


class _CountingGPT(GPT):
    """The same GPT, counting the token positions its forward pass processes."""

    positions = 0

    def forward(self, idx, targets=None, cache=None):
        _CountingGPT.positions += np.asarray(getattr(idx, "data", idx)).shape[1]
        return super().forward(idx, targets, cache)


def check_cache_does_one_position_per_token():
    """With the cache a generated token costs one position of work; without it, the whole context."""
    manual_seed(3)
    model = _CountingGPT(GPTConfig(vocab_size=20, block_size=64, n_layer=2, n_head=2, n_embd=16)).eval()
    work = {}
    for use_cache in (True, False):
        _CountingGPT.positions = 0
        model.generate(np.array([[1, 2]]), 62, seed=0, use_cache=use_cache)
        work[use_cache] = _CountingGPT.positions
    assert work[True] == 2 + 61, \
        f"62 tokens from a 2-token prompt should run 63 positions with the cache (a prefill of 2, then 1 per token), ran {work[True]}"
    assert work[False] == sum(range(2, 64)), f"without the cache each step reruns the context: expected 1952, got {work[False]}"


def check_bad_generate_arguments():
    """Bad sampling arguments and a prompt longer than the window are one-line ValueErrors."""
    model = _model()
    cases = [(dict(max_new_tokens=-1), "max_new_tokens"), (dict(max_new_tokens=1, top_k=0), "top_k"),
             (dict(max_new_tokens=1, top_k=21), "top_k"), (dict(max_new_tokens=1, temperature=-1.0), "temperature"),
             (dict(max_new_tokens=1, temperature=float("inf")), "temperature")]
    for kwargs, word in cases:
        try:
            model.generate(np.array([[1]]), **kwargs)
        except ValueError as err:
            assert word in str(err) and "\n" not in str(err), f"generate({kwargs}) should say what was wrong: {err}"
        else:
            raise AssertionError(f"generate({kwargs}) must raise ValueError")
    try:
        model.generate(np.zeros((1, 17), np.int64), 1)
    except ValueError as err:
        assert "block_size" in str(err), f"the error should name block_size: {err}"
    else:
        raise AssertionError("a 17-token prompt for block_size 16 must raise ValueError")


def check_bpe_round_trip_and_compression():
    """BPE learns merges, shortens the text, and round-trips any text exactly, unseen bytes included."""
    tok = BPETokenizer.train(TEXT, vocab_size=300)
    assert tok.vocab_size == 300, f"training to 300 tokens gave {tok.vocab_size}"
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT, "decode(encode(text)) must give the training text back"
    assert len(ids) < 0.5 * len(TEXT), f"{len(ids)} tokens for {len(TEXT)} characters: the merges should compress"
    unseen = "Ωmega ☃ snow, 雪, and a tab\there"
    assert tok.decode(tok.encode(unseen)) == unseen, "text with bytes never seen in training must round-trip"


def check_bpe_save_and_load():
    """A tokenizer saved as JSON loads to the same encoding; a damaged file is a one-line error."""
    tok = BPETokenizer.train(TEXT, vocab_size=280)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tok.json"
        tok.save(path)
        saved = json.loads(path.read_text(encoding="utf-8"))
        assert "version" in saved, "the saved file should record its format version"
        loaded = BPETokenizer.load(path)
        assert loaded.encode(TEXT) == tok.encode(TEXT), "the loaded tokenizer encodes differently"
        path.write_text("{not json", encoding="utf-8")
        try:
            BPETokenizer.load(path)
        except ValueError as err:
            assert "\n" not in str(err), "the error should be one line"
        else:
            raise AssertionError("loading a damaged file must raise ValueError")


if __name__ == "__main__":
    main(globals())
