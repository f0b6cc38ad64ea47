"""Chapter 18: the KV cache, cached generation and byte-pair encoding, against their specification."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tinytorch import manual_seed, no_grad
from tinytorch.models import GPT, BPETokenizer, GPTConfig, KVCache, kv_cache_bytes
from tinytorch.models.gpt import GPT as CapstoneGPT

ROOT = Path(__file__).resolve().parent.parent


def _gpt(seed=0, **shape):
    manual_seed(seed)
    model = GPT(GPTConfig(**{**dict(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=16), **shape}))
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(p.dtype) * 0.3
    return model.eval()


# ---- the cache ---------------------------------------------------------------------------------------------------
def test_kv_cache_bytes_is_two_times_layers_positions_width_bytes():
    config = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    assert kv_cache_bytes(config, 1024) == 75_497_472
    assert kv_cache_bytes(config, 1024, batch_size=2, dtype=np.float16) == 75_497_472


def test_the_models_caches_take_what_the_formula_says():
    model = _gpt()
    assert sum(c.nbytes for c in model.new_cache(4)) == kv_cache_bytes(model.config, 10, batch_size=4)


def test_a_full_cache_refuses_more_positions_in_one_line():
    cache = KVCache(1, 2, 4, max_len=3)
    cache.update(np.zeros((1, 2, 3, 4), np.float32), np.zeros((1, 2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="recompute") as caught:
        cache.update(np.zeros((1, 2, 1, 4), np.float32), np.zeros((1, 2, 1, 4), np.float32))
    assert "\n" not in str(caught.value)


def test_a_cached_step_gives_the_full_forwards_logits():
    model = _gpt()
    ids = np.array([[3, 1, 4, 1, 5, 9]])
    with no_grad():
        full = model(ids)[0].data
        caches = model.new_cache(1)
        steps = [model(ids[:, :2], cache=caches)[0].data] + [model(ids[:, t:t + 1], cache=caches)[0].data
                                                            for t in range(2, 6)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-5)


def test_forward_refuses_to_run_past_the_window_with_a_cache():
    model = _gpt()
    caches = model.new_cache(1)
    with no_grad():
        model(np.zeros((1, 9), np.int64), cache=caches)
        with pytest.raises(ValueError, match="block_size"):
            model(np.zeros((1, 2), np.int64), cache=caches)


# ---- cached generation --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [dict(seed=0), dict(seed=1, top_k=3), dict(seed=2, temperature=0.6),
                                    dict(seed=3, top_k=1), dict(seed=4, top_k=13, temperature=2.0)])
def test_cached_and_uncached_generation_write_the_same_tokens(kwargs):
    model = _gpt()
    prompt = np.array([[1, 2], [3, 4], [5, 6]])
    cached = model.generate(prompt, 25, **kwargs).data          # 27 > block_size 10: the window slides
    assert np.array_equal(cached, model.generate(prompt, 25, use_cache=False, **kwargs).data)
    assert np.array_equal(cached, CapstoneGPT.generate(model, prompt, 25, **kwargs).data)


def test_cached_generation_without_a_seed_follows_manual_seed_like_chapter_17():
    model = _gpt()
    manual_seed(5)
    a = model.generate(np.array([[1]]), 12).data
    manual_seed(5)
    assert np.array_equal(a, model.generate(np.array([[1]]), 12, use_cache=False).data)


def test_a_prompt_that_fills_the_window_still_generates():
    model = _gpt()
    prompt = np.arange(10)[None] % 13
    out = model.generate(prompt, 4, seed=0).data
    assert out.shape == (1, 14)
    assert np.array_equal(out, model.generate(prompt, 4, seed=0, use_cache=False).data)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(max_new_tokens=2, top_k=0), "top_k"),
    (dict(max_new_tokens=2, top_k=14), "top_k"),
    (dict(max_new_tokens=2, temperature=0.0), "temperature"),
    (dict(max_new_tokens=2, temperature=-1.0), "temperature"),
    (dict(max_new_tokens=2, temperature=float("nan")), "temperature"),
    (dict(max_new_tokens=2, temperature=float("inf")), "temperature"),
])
def test_generate_refuses_bad_arguments_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        _gpt().generate(np.array([[1, 2]]), **kwargs)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("use_cache", [True, False])
def test_a_prompt_longer_than_the_window_is_refused_with_what_to_do(use_cache):
    with pytest.raises(ValueError, match="crop it") as caught:
        _gpt().generate(np.zeros((1, 11), np.int64), 2, use_cache=use_cache)
    assert "\n" not in str(caught.value)


# ---- BPE ----------------------------------------------------------------------------------------------------------
TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 20


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer.train(TEXT, 320)


@pytest.mark.parametrize("text", ["", " ", "\n\n\n", "café naïve — “quotes”", "雪が降る", "emoji 😀🚀 and \x00 bytes",
                                  "tabs\tand   spaces   ", "snake_case_name = 3.14159", "'tis 'll 've 're"])
def test_bpe_round_trips_any_text_exactly(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_bpe_training_is_deterministic_and_compresses(tok):
    assert BPETokenizer.train(TEXT, 320).merges == tok.merges
    assert len(tok.encode(TEXT)) < 0.4 * len(TEXT)      # at least one token per chunk (word with its space)


def test_bpe_refuses_a_vocabulary_smaller_than_the_bytes():
    with pytest.raises(ValueError, match="256"):
        BPETokenizer.train(TEXT, 100)


def test_bpe_decode_refuses_ids_outside_the_vocabulary(tok):
    with pytest.raises(IndexError, match="outside"):
        tok.decode([tok.vocab_size])


def test_bpe_saves_versioned_json_and_loads_it(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "tinytorch-bpe" and data["version"] == 1
    assert BPETokenizer.load(path).merges == tok.merges


@pytest.mark.parametrize("content, message", [
    ("{broken", "not JSON"),
    (json.dumps({"format": "something-else", "version": 1}), "not a tinytorch-bpe file"),
    (json.dumps({"format": "tinytorch-bpe", "version": 2}), "version 2"),
    ("[1, 2]", "not a tinytorch-bpe file"),
    (b"\xff\xfe\x00".decode("latin-1"), "not JSON"),
])
def test_bpe_load_refuses_damaged_or_foreign_files_in_one_line(tok, tmp_path, content, message):
    path = tmp_path / "tok.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as caught:
        BPETokenizer.load(path)
    assert "\n" not in str(caught.value)


def test_bpe_load_refuses_merges_that_name_later_tokens(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["merges"][0] = [0, 300]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="damaged"):
        BPETokenizer.load(path)


def test_bpe_load_of_a_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        BPETokenizer.load(tmp_path / "nope.json")


def _shakespeare() -> str | None:
    """tiny-shakespeare if it is here already (data/) or a mirror is configured; None otherwise."""
    local = ROOT / "data" / "tinyshakespeare.txt"
    if local.is_file():
        return local.read_text(encoding="utf-8")
    if os.environ.get("TINYTORCH_SHAKESPEARE_URL"):
        from tinytorch.data import download_shakespeare
        return download_shakespeare(ROOT / "data", progress=False).read_text(encoding="utf-8")
    return None


def test_bpe_round_trips_the_whole_of_tiny_shakespeare():
    text = _shakespeare()
    if text is None:
        pytest.skip("tiny-shakespeare is not in data/ and TINYTORCH_SHAKESPEARE_URL is not set (no network in tests)")
    tok = BPETokenizer.train(text, 512)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < 0.6 * len(text)
