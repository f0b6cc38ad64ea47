"""Checkpoint 17 (capstone): Can I build complete end-to-end ML systems from scratch?

Builds TinyGPT from chapter 17 on top of every earlier chapter and uses it
end to end: text becomes ids and back, the model is causal and its gradients
are right, the training recipe (AdamW, warm-up and cosine schedule, gradient
clipping) teaches it a text it then continues on its own, sampling repeats
with a seed, and a model restored from its saved state behaves identically.
"""

from _harness import main

import math

import numpy as np

from tinytorch import Tensor, gradcheck, manual_seed
from tinytorch.models import CharTokenizer, GPTConfig, TrainConfig, get_lr, train
from tinytorch.models.gpt import GPT  # chapter 17's own GPT: this checkpoint must not need chapter 18's cache
from tinytorch.nn.utils import clip_grad_norm_

TEXT = "to be or not to be, that is the question. "


def _trained():
    """A small GPT trained on TEXT repeated, and its tokenizer (about a second)."""
    tok = CharTokenizer(TEXT)
    data = np.array(tok.encode(TEXT * 30), dtype=np.int64)
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=2, n_head=2, n_embd=32))
    config = TrainConfig(max_iters=150, batch_size=8, learning_rate=1e-2, min_lr=1e-3, warmup_iters=10,
                         lr_decay_iters=150, eval_interval=150, eval_iters=2, seed=0)
    history = train(model, data, data, config)
    return model, tok, history


MODEL, TOKENIZER, HISTORY = None, None, None


def _model():
    global MODEL, TOKENIZER, HISTORY
    if MODEL is None:
        MODEL, TOKENIZER, HISTORY = _trained()
    return MODEL, TOKENIZER, HISTORY


def check_tokenizer():
    """Text becomes ids and back unchanged; an unseen character is refused by name."""
    tok = CharTokenizer(TEXT)
    assert tok.vocab_size == len(set(TEXT)), f"vocabulary should have {len(set(TEXT))} characters, has {tok.vocab_size}"
    assert tok.decode(tok.encode("not to be")) == "not to be", "decode(encode(text)) must give the text back"
    try:
        tok.encode("to be!")
    except ValueError as err:
        assert "'!'" in str(err), f"the error should name the unseen character '!': {err}"
    else:
        raise AssertionError("encoding a character that is not in the vocabulary must raise ValueError")


def check_gpt_is_causal():
    """The logits at position t do not depend on any token after t."""
    manual_seed(1)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=16))
    ids = np.random.default_rng(0).integers(0, 10, size=(2, 8))
    changed = ids.copy()
    changed[:, 6] = (changed[:, 6] + 1) % 10
    a, b = model(ids)[0].data, model(changed)[0].data
    assert a.shape == (2, 8, 10), f"logits should be (B, T, vocab) = (2, 8, 10), got {a.shape}"
    assert np.array_equal(a[:, :6], b[:, :6]), "changing token 6 changed logits at positions 0..5: the mask leaks"
    assert not np.allclose(a[:, 6:], b[:, 6:]), "positions 6 and 7 should see token 6"


def check_gpt_gradients():
    """backward() through the whole GPT agrees with finite differences for every parameter."""
    manual_seed(2)
    model = GPT(GPTConfig(vocab_size=6, block_size=4, n_layer=1, n_head=2, n_embd=4)).double()
    rng = np.random.default_rng(2)
    ids, targets = rng.integers(0, 6, size=(2, 4)), rng.integers(0, 6, size=(2, 4))
    gradcheck(lambda *ps: model(ids, targets)[1], list(model.parameters()))


def check_training_recipe():
    """Warm-up and cosine learning rates and global-norm clipping follow their definitions."""
    kw = dict(learning_rate=1e-3, warmup_iters=100, lr_decay_iters=2000, min_lr=1e-4)
    got = [get_lr(i, **kw) for i in (0, 100, 1050, 2000, 3000)]
    want = [1e-3 / 101, 1e-3, 5.5e-4, 1e-4, 1e-4]
    assert np.allclose(got, want), f"get_lr at steps 0, 100, 1050, 2000, 3000 should be {want}, got {got}"
    p = Tensor(np.zeros(2), requires_grad=True)
    p.grad = Tensor(np.array([6.0, 8.0]))
    norm = clip_grad_norm_([p], 1.0)
    assert math.isclose(norm.item(), 10.0), f"clip_grad_norm_ should return the norm before clipping (10), got {norm.item()}"
    assert np.allclose(p.grad.data, [0.6, 0.8]), f"the gradient should be scaled to norm 1, got {p.grad.data}"


def check_gpt_learns_a_text():
    """Trained with the full recipe, the loss on a repeated text falls from ln(vocab) to a tenth of it."""
    _, tok, history = _model()
    first, last = history["loss"][0], float(np.mean(history["loss"][-10:]))
    assert abs(first - math.log(tok.vocab_size)) < 0.5, f"the untrained loss {first:.2f} should be near ln V = {math.log(tok.vocab_size):.2f}"
    # Not to 0: a window's first positions see one or two characters, which do not fix the next one.
    assert last < 0.25, f"after {len(history['loss'])} steps the loss is still {last:.3f}; training is not working"


def check_gpt_writes_the_text():
    """Greedy generation from a prompt continues the learned text character for character."""
    model, tok, _ = _model()
    model.eval()
    out = tok.decode(model.generate(np.array([tok.encode("to be or")]), 34, top_k=1).data[0])
    assert out == (TEXT * 2)[:42], f"the model should continue the text it learned, wrote {out!r}"


def check_sampling_and_restoring():
    """Sampling repeats with a seed, and a model restored from its state_dict samples the same text."""
    model, tok, _ = _model()
    prompt = np.array([tok.encode("that ")])
    a = model.generate(prompt, 30, temperature=1.5, seed=4).data
    assert np.array_equal(a, model.generate(prompt, 30, temperature=1.5, seed=4).data), "the same seed gave different text"
    manual_seed(99)
    restored = GPT(model.config)
    restored.load_state_dict(model.state_dict())
    restored.eval()
    assert np.array_equal(model(prompt)[0].data, restored(prompt)[0].data), "the restored model computes different logits"
    assert np.array_equal(a, restored.generate(prompt, 30, temperature=1.5, seed=4).data), \
        "the restored model samples different text with the same seed"


if __name__ == "__main__":
    main(globals())
