"""TinyGPT (chapter 17): tokenizer, model, sampling and training recipe, against their specification and PyTorch."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tinytorch import Tensor, gradcheck, manual_seed
from tinytorch.models import GPT, CharTokenizer, GPTConfig, TrainConfig, configure_optimizers, get_batch, get_lr, train
from tinytorch.models.gpt import CausalSelfAttention
from tinytorch.nn.utils import clip_grad_norm_

from torch_reference import compare_with_torch, requires_torch, torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))   # the PyTorch reference GPT


def _gpt(seed=0, **overrides) -> GPT:
    manual_seed(seed)
    config = dict(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8)
    config.update(overrides)
    return GPT(GPTConfig(**config))


def _ids(shape, vocab=7, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, size=shape)


def _randomise(model, seed=11):
    """Non-zero biases and LayerNorm parameters, so comparisons exercise them."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    return model


# ---- tokenizer ----------------------------------------------------------------------------

def test_tokenizer_round_trips_text():
    text = "First Citizen:\nBefore we proceed any further, hear me speak."
    tok = CharTokenizer(text)
    assert tok.decode(tok.encode(text)) == text


def test_tokenizer_ids_follow_sorted_characters():
    tok = CharTokenizer("cab")
    assert tok.chars == ["a", "b", "c"] and tok.encode("abc") == [0, 1, 2] and tok.vocab_size == 3


def test_tokenizer_decodes_arrays_and_tensors():
    tok = CharTokenizer("abc")
    assert tok.decode(np.array([2, 0])) == "ca" and tok.decode(Tensor(np.array([1, 1]))) == "bb"


def test_unknown_character_error_names_it_and_suggests_a_fix():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"'é' \(U\+00E9\) at position 2 .*unknown="):
        tok.encode("abéc")


def test_unknown_option_maps_unseen_characters_to_one_id():
    tok = CharTokenizer("abc", unknown="?")
    assert "?" in tok.chars and tok.vocab_size == 4
    assert tok.decode(tok.encode("axbyc")) == "a?b?c"


def test_unknown_must_be_one_character():
    with pytest.raises(ValueError, match="single character"):
        CharTokenizer("abc", unknown="<unk>")


def test_empty_text_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer("")


def test_decoding_an_id_outside_the_vocabulary_is_an_error():
    with pytest.raises(IndexError, match="id 5 is outside"):
        CharTokenizer("abc").decode([0, 5])


# ---- the model --------------------------------------------------------------------------

def test_logits_have_shape_batch_time_vocab_and_loss_is_scalar():
    model = _gpt()
    logits, loss = model(_ids((3, 6)), _ids((3, 6), seed=1))
    assert logits.shape == (3, 6, 7) and loss.shape == ()
    assert model(_ids((2, 4)))[1] is None


def test_changing_a_later_token_changes_no_earlier_logit():
    model = _randomise(_gpt(n_layer=2))
    ids = _ids((4, 6))
    for t in range(6):
        changed = ids.copy()
        changed[:, t] = (changed[:, t] + 1) % 7
        a, b = model(ids)[0].data, model(changed)[0].data
        assert np.array_equal(a[:, :t], b[:, :t]), f"changing token {t} changed logits before it"
        assert not np.allclose(a[:, t:], b[:, t:]), f"changing token {t} must change the logits from {t} on"


def test_parameter_count_matches_the_formula_and_counts_the_tied_head_once():
    model = _gpt(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    V, T, C, L = 65, 64, 128, 4
    assert model.num_parameters() == (V + T) * C + L * (12 * C * C + 13 * C) + 2 * C == 809_856
    assert model.num_parameters(non_embedding=True) == 809_856 - T * C
    assert model.lm_head.weight is model.wte.weight


def test_without_biases_the_linears_and_layernorms_have_none():
    model = _gpt(bias=False)
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())


def test_residual_projections_start_smaller():
    model = _gpt(vocab_size=50, block_size=32, n_layer=8, n_head=4, n_embd=64)
    assert model.h[0].mlp.c_fc.weight.data.std() == pytest.approx(0.02, rel=0.05)
    assert model.h[0].mlp.c_proj.weight.data.std() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)


def test_a_sequence_longer_than_block_size_is_an_error():
    with pytest.raises(ValueError, match="exceeds block_size 6"):
        _gpt()(np.zeros((1, 7), dtype=np.int64))


def test_ids_without_a_batch_axis_are_an_error():
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        _gpt()(np.zeros(5, dtype=np.int64))


def test_targets_of_another_shape_are_an_error():
    with pytest.raises(ValueError, match="targets must have the shape"):
        _gpt()(_ids((2, 5)), _ids((2, 4)))


def test_gradients_of_every_parameter_match_finite_differences():
    model = _randomise(_gpt(n_layer=2, n_embd=4, block_size=5).double())
    ids, targets = _ids((2, 5)), _ids((2, 5), seed=1)
    assert gradcheck(lambda *ps: model(ids, targets)[1], list(model.parameters()))


def test_gradients_flow_to_both_uses_of_the_tied_matrix():
    model = _gpt().double()
    ids, targets = _ids((2, 6), vocab=4), _ids((2, 6), seed=1)   # ids 4..6 never appear as inputs
    model(ids, targets)[1].backward()
    tied = model.wte.weight.grad.data.copy()
    unused = sorted(set(range(7)) - set(ids.ravel()))          # rows only the head uses
    assert unused and np.abs(tied[unused]).sum() > 0, "the head's gradient must reach the shared matrix"


def test_dropout_is_random_in_training_and_off_in_eval():
    model = _gpt(dropout=0.5)
    ids = _ids((2, 6))
    assert not np.allclose(model(ids)[0].data, model(ids)[0].data)
    model.eval()
    assert np.array_equal(model(ids)[0].data, model(ids)[0].data)


@requires_torch
def test_causal_self_attention_matches_pytorch():
    import torch_gpt

    tiny = _randomise(CausalSelfAttention(GPTConfig(vocab_size=5, block_size=6, n_head=2, n_embd=8)).double())
    ref = torch_gpt.CausalSelfAttention(GPTConfig(vocab_size=5, block_size=6, n_head=2, n_embd=8)).double()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(torch.from_numpy(dict(tiny.named_parameters())[name].data))
    compare_with_torch(tiny, ref, np.random.default_rng(0).standard_normal((3, 6, 8)))


@requires_torch
def test_loss_and_every_gradient_match_pytorch():
    import torch_gpt

    model = _randomise(_gpt(n_layer=2, vocab_size=11, block_size=8, n_embd=16).double())
    ref = torch_gpt.copy_weights(model, torch_gpt.GPT(model.config), dtype=torch.float64)
    ids, targets = _ids((3, 8), vocab=11), _ids((3, 8), vocab=11, seed=1)
    logits, loss = model(ids, targets)
    ref_logits, ref_loss = ref(torch.from_numpy(ids), torch.from_numpy(targets))
    np.testing.assert_allclose(logits.data, ref_logits.detach().numpy(), rtol=1e-10, atol=1e-12)
    loss.backward()
    ref_loss.backward()
    grads = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.data, grads[name].grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


@requires_torch
def test_the_nanogpt_initialisation_draws_from_torch_with_nanogpts_scales():
    import torch_gpt

    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=True)
    torch.manual_seed(0)
    ref = torch_gpt.init_like_nanogpt(torch_gpt.GPT(config, gelu="none"))
    for name, p in ref.named_parameters():
        if name.endswith("c_proj.weight"):
            assert abs(p.std().item() - 0.02 / math.sqrt(8)) < 5e-4, name
        elif p.dim() == 2:
            assert abs(p.std().item() - 0.02) < 1e-3, name
        elif name.endswith("bias"):
            assert not p.any(), name
        else:
            assert bool((p == 1).all()), f"{name}: LayerNorm weights stay at one"
    torch.manual_seed(0)
    again = torch_gpt.init_like_nanogpt(torch_gpt.GPT(config, gelu="none"))
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), again.parameters())), "same seed, same weights"
    tanh = torch_gpt.GPT(config)                                       # the default: tinytorch's GELU
    tanh.load_state_dict(ref.state_dict())
    ids = torch.arange(64)[None] % 65
    exact_logits, tanh_logits = ref(ids)[0], tanh(ids)[0]
    assert not torch.equal(exact_logits, tanh_logits) and torch.allclose(exact_logits, tanh_logits, atol=1e-3)


# ---- sampling -----------------------------------------------------------------------------

def test_generation_with_a_seed_repeats():
    model = _gpt()
    start = _ids((2, 3))
    a = model.generate(start, 12, seed=3).data
    assert a.shape == (2, 15) and np.array_equal(a[:, :3], start)
    assert np.array_equal(a, model.generate(start, 12, seed=3).data)
    assert not np.array_equal(a, model.generate(start, 12, seed=4).data)


def test_generation_without_a_seed_follows_manual_seed():
    model = _gpt()
    manual_seed(9)
    a = model.generate(_ids((1, 2)), 10).data
    manual_seed(9)
    assert np.array_equal(a, model.generate(_ids((1, 2)), 10).data)


def test_top_k_1_is_greedy_decoding():
    model = _randomise(_gpt())
    ids = _ids((2, 2))
    out = model.generate(ids, 8, top_k=1, seed=0).data
    for _ in range(8):
        logits = model(ids[:, -6:])[0].data
        ids = np.concatenate([ids, logits[:, -1].argmax(-1)[:, None]], axis=1)
    assert np.array_equal(out, ids)


def test_top_k_samples_only_among_the_k_most_likely_tokens():
    model = _randomise(_gpt(block_size=40))
    start = _ids((1, 1))
    out = model.generate(start, 1, top_k=2, temperature=100.0, seed=0)
    logits = model(start)[0].data[0, -1]
    assert out.data[0, -1] in np.argsort(logits)[-2:]
    many = np.concatenate([model.generate(start, 1, top_k=2, temperature=100.0, seed=s).data[0, -1:]
                           for s in range(40)])
    assert set(many) == set(np.argsort(logits)[-2:]), "with a flat temperature both of the top 2 should appear"


def test_generation_crops_the_context_to_block_size():
    model = _gpt(block_size=4)
    assert model.generate(_ids((1, 3)), 10, seed=0).shape == (1, 13)


@pytest.mark.parametrize("kwargs, message", [(dict(temperature=0.0), "temperature"), (dict(top_k=0), "top_k")])
def test_bad_sampling_options_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _gpt().generate(_ids((1, 2)), 3, **kwargs)


# ---- the training recipe -------------------------------------------------------------------

def test_learning_rate_warms_up_linearly_then_decays_on_a_cosine_to_min_lr():
    kw = dict(learning_rate=1.0, warmup_iters=10, lr_decay_iters=110, min_lr=0.1)
    assert [get_lr(i, **kw) for i in (0, 4, 9)] == pytest.approx([1 / 11, 5 / 11, 10 / 11])
    assert get_lr(10, **kw) == pytest.approx(1.0)
    assert get_lr(60, **kw) == pytest.approx(0.55)
    assert get_lr(110, **kw) == pytest.approx(0.1) and get_lr(500, **kw) == 0.1


@requires_torch
@pytest.mark.parametrize("max_norm, norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, math.inf)])
def test_clip_grad_norm_matches_pytorch(max_norm, norm_type):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) for s in ((3, 4), (5,), (2, 2, 2))]
    ours = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, q, g in zip(ours, theirs, grads):
        p.grad, q.grad = Tensor(g.copy()), torch.from_numpy(g.copy())
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_skips_parameters_without_gradients():
    a, b = Tensor(np.zeros(2), requires_grad=True), Tensor(np.zeros(2), requires_grad=True)
    a.grad = Tensor(np.array([3.0, 4.0]))
    assert clip_grad_norm_([a, b], 1.0).item() == pytest.approx(5.0)
    assert np.allclose(a.grad.data, [0.6, 0.8]) and b.grad is None


def test_clip_grad_norm_is_also_in_nn_utils():
    from tinytorch.nn.utils import clip_grad_norm_ as from_nn_utils

    assert from_nn_utils is clip_grad_norm_


def test_weight_decay_applies_to_matrices_only():
    model = _gpt()
    decay, no_decay = configure_optimizers(model, 0.1, 1e-3, (0.9, 0.99)).param_groups
    assert {id(p) for p in decay["params"]} == {id(p) for p in model.parameters() if p.ndim == 2}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert decay["betas"] == (0.9, 0.99)


def test_batches_are_windows_and_targets_are_the_next_tokens():
    data = np.arange(50)
    x, y = get_batch(data, 4, 10, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 10)
    assert np.array_equal(y, x + 1) and np.array_equal(x, x[:, :1] + np.arange(10))
    assert y.max() <= 49


def test_a_text_shorter_than_a_window_is_an_error():
    with pytest.raises(ValueError, match="too few"):
        get_batch(np.arange(8), 2, 8, np.random.default_rng(0))


def test_default_train_config_is_nanogpts_shakespeare_char_cpu_setting():
    c = TrainConfig()
    assert (c.max_iters, c.batch_size, c.learning_rate, c.min_lr, c.warmup_iters, c.lr_decay_iters) == \
        (2000, 12, 1e-3, 1e-4, 100, 2000)
    assert (c.weight_decay, c.beta1, c.beta2, c.grad_clip) == (0.1, 0.9, 0.99, 1.0)


def test_loss_on_a_repeated_text_falls_within_a_few_dozen_steps():
    tok = CharTokenizer("hello world! ")
    data = np.array(tok.encode("hello world! " * 40), dtype=np.int64)
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32))
    config = TrainConfig(max_iters=60, batch_size=8, learning_rate=1e-2, min_lr=1e-3, warmup_iters=5,
                         lr_decay_iters=60, eval_interval=30, eval_iters=2, seed=0)
    history = train(model, data, data, config)
    assert history["loss"][0] > 2.0
    assert np.mean(history["loss"][-5:]) < 0.3, f"loss only fell to {np.mean(history['loss'][-5:]):.3f}"
    assert [it for it, _ in history["eval"]] == [0, 30, 60]
    assert len(history["lr"]) == len(history["grad_norm"]) == 60


def test_a_trained_model_continues_the_text_it_learned():
    tok = CharTokenizer("abcdefgh")
    data = np.array(tok.encode("abcdefgh" * 60), dtype=np.int64)
    manual_seed(1)
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=32))
    train(model, data, data, TrainConfig(max_iters=80, batch_size=8, learning_rate=1e-2, min_lr=1e-3,
                                         warmup_iters=5, lr_decay_iters=80, eval_interval=80, eval_iters=1))
    out = model.generate(np.array([tok.encode("cd")]), 10, top_k=1)
    assert tok.decode(out.data[0]) == "cdefghabcdef"


# ---- saving and loading ----------------------------------------------------------------------

def test_state_dict_round_trip_gives_identical_logits():
    model = _randomise(_gpt(seed=0))
    restored = _gpt(seed=5)
    restored.load_state_dict(model.state_dict())
    ids = _ids((2, 6))
    assert np.array_equal(model(ids)[0].data, restored(ids)[0].data)


def test_checkpoint_save_and_load_give_identical_logits(tmp_path):
    training = pytest.importorskip("tinytorch.training", reason="chapter 12's save_checkpoint is not in this tree")
    model = _randomise(_gpt(seed=0))
    optimizer = configure_optimizers(model, 0.1, 1e-3)
    model(_ids((2, 6)), _ids((2, 6), seed=1))[1].backward()
    optimizer.step()
    path = tmp_path / "gpt.ckpt"
    training.save_checkpoint(path, model, optimizer, iter_num=1, vocabulary="abcdefg")
    restored = _gpt(seed=5)
    metadata = training.load_checkpoint(path, restored, configure_optimizers(restored, 0.1, 1e-3))
    assert metadata["iter_num"] == 1 and metadata["vocabulary"] == "abcdefg"
    ids = _ids((2, 6))
    assert np.array_equal(model(ids)[0].data, restored(ids)[0].data)


def test_reuse_freed_memory_reports_whether_it_could_tune_the_allocator():
    import platform

    from tinytorch.models import reuse_freed_memory

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is expected


REPO = Path(__file__).resolve().parent.parent


def _run_on_tiny_text(tmp_path, script: str, *args: str):
    """Run a repository script on a small text instead of tiny-shakespeare; returns (completed process, text path)."""
    import subprocess

    text = tmp_path / "tiny.txt"
    text.write_text("To be, or not to be, that is the question:\n" * 40, encoding="utf-8")
    done = subprocess.run([sys.executable, str(REPO / script), "--data", str(text), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done, text


@pytest.mark.slow
def test_the_example_reports_the_spread_over_more_seeds(tmp_path):
    _run_on_tiny_text(tmp_path, "examples/tinygpt_shakespeare.py", "--iters", "3", "--eval-interval", "3",
                      "--eval-iters", "1", "--final-eval-iters", "2", "--sample-chars", "5", "--more-seeds", "1", "2",
                      "--out-dir", str(tmp_path))
    report = (tmp_path / "tinygpt.md").read_text(encoding="utf-8")
    rows = [line for line in report.splitlines() if line.startswith(("| 1337 |", "| 1 |", "| 2 |"))]
    assert len(rows) == 3, report
    losses = np.array([[float(cell) for cell in row.split("|")[2:4]] for row in rows])
    mean_row = next(line for line in report.splitlines() if "mean ± std over 3 seeds" in line)
    assert f"{losses[:, 1].mean():.4f} ± {losses[:, 1].std(ddof=1):.4f}" in mean_row
    assert len({tuple(row) for row in losses}) == 3, "each seed trains its own model"


@requires_torch
@pytest.mark.slow
def test_the_nanogpt_reference_writes_a_page_of_seeds(tmp_path):
    def first_row(page: Path) -> str:
        return next(line for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("| 5 |"))

    args = ["--iters", "3", "--final-eval-iters", "2", "--seeds", "5", "6", "--book-page"]
    _, text = _run_on_tiny_text(tmp_path, "benchmarks/nanogpt_reference.py", *args, str(tmp_path / "one.md"))
    report = (tmp_path / "one.md").read_text(encoding="utf-8")
    assert "| 6 |" in report and "mean ± std over 2 seeds" in report
    assert str(text) not in report, "the data file is not named by a machine's path"
    _run_on_tiny_text(tmp_path, "benchmarks/nanogpt_reference.py", *args, str(tmp_path / "two.md"))
    assert first_row(tmp_path / "one.md").split("|")[2:4] == first_row(tmp_path / "two.md").split("|")[2:4], \
        "a seed repeats its losses"


def test_the_example_names_a_missing_data_file_in_one_line(tmp_path):
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(repo / "examples" / "tinygpt_shakespeare.py"), "--data",
                           str(tmp_path / "missing.txt"), "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "missing.txt not found" in done.stderr and "--data" in done.stderr


# ---- edges: each bad argument is one ValueError/TypeError line ------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    (dict(max_new_tokens=-5), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=2.5), ValueError, "max_new_tokens"),
    (dict(max_new_tokens=3, temperature=float("nan")), ValueError, "temperature"),
    (dict(max_new_tokens=3, temperature=float("inf")), ValueError, "temperature"),
    (dict(max_new_tokens=3, temperature=0.0), ValueError, "temperature"),
    (dict(max_new_tokens=3, top_k=0), ValueError, "top_k"),
    (dict(max_new_tokens=3, top_k=1.5), ValueError, "top_k"),
])
def test_generate_refuses_bad_sampling_arguments(kwargs, error, message):
    with pytest.raises(error, match=message) as caught:
        _gpt().generate(_ids((1, 3)), **kwargs)
    assert "\n" not in str(caught.value)


def test_generate_with_zero_new_tokens_returns_the_prompt():
    ids = _ids((2, 3))
    assert np.array_equal(_gpt().generate(ids, 0).data, ids)


@pytest.mark.parametrize("context, error, message", [
    (np.zeros((1, 0), np.int64), ValueError, "empty"),
    (np.zeros((0, 3), np.int64), ValueError, "empty"),
    (np.array([[1.7, 2.0]]), TypeError, "integer"),
    (np.array([[1, 9]]), ValueError, "outside the vocabulary"),
    (np.array([[-1, 2]]), ValueError, "outside the vocabulary"),
])
def test_generate_refuses_empty_float_or_out_of_range_contexts(context, error, message):
    with pytest.raises(error, match=message):
        _gpt().generate(context, 2)


def test_forward_refuses_an_empty_context():
    with pytest.raises(ValueError, match="empty"):
        _gpt()(np.zeros((2, 0), np.int64))


@pytest.mark.parametrize("field, value", [("block_size", 0), ("vocab_size", 0), ("n_layer", -1), ("n_head", 0),
                                          ("n_embd", 2.5), ("vocab_size", True), ("dropout", 1.0),
                                          ("dropout", float("nan")), ("bias", "yes")])
def test_gpt_config_refuses_impossible_shapes(field, value):
    config = dict(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8) | {field: value}
    with pytest.raises((ValueError, TypeError), match=field) as caught:
        GPTConfig(**config)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("ids", [[1.7], np.array([0.0, 1.0]), [True]])
def test_decode_refuses_ids_that_are_not_integers(ids):
    with pytest.raises(TypeError, match="integers"):
        CharTokenizer("abc").decode(ids)


def test_decode_of_nothing_is_the_empty_string_and_encode_wants_text():
    tok = CharTokenizer("abc")
    assert tok.decode([]) == ""
    with pytest.raises(TypeError, match="str"):
        tok.encode(5)


MIRRORED_TEXT = "To be, or not to be, that is the question:\n" * 40


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory) -> dict:
    """One run of the Shakespeare example that downloads its text from a mirror (a local file) and trains on it.

    The example is slow to start and train: the tests below (grouped on one worker) read this one run; reading
    a given file (--data) is test_the_example_reports_the_spread_over_more_seeds's.
    """
    import hashlib
    import os
    import subprocess

    tmp_path = tmp_path_factory.mktemp("mirrored")
    mirror = tmp_path / "mirror.txt"
    mirror.write_text(MIRRORED_TEXT, encoding="utf-8")
    env = dict(os.environ, TINYTORCH_SHAKESPEARE_URL=mirror.as_uri(),
               TINYTORCH_SHAKESPEARE_CHECKSUM="sha256:" + hashlib.sha256(MIRRORED_TEXT.encode()).hexdigest())
    args = [sys.executable, str(REPO / "examples" / "tinygpt_shakespeare.py"), "--download-dir", str(tmp_path / "data"),
            "--iters", "4", "--eval-interval", "2", "--eval-iters", "1", "--final-eval-iters", "1",
            "--sample-chars", "20", "--out-dir", str(tmp_path / "out")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    return {"tmp": tmp_path, "args": args, "env": env, "done": done}


MIRRORED_RUN = pytest.mark.xdist_group("test_gpt-mirrored_run")


@pytest.mark.slow
@MIRRORED_RUN
def test_the_shakespeare_example_trains_and_writes_its_report(mirrored_run):
    tmp_path, done = mirrored_run["tmp"], mirrored_run["done"]
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    report = (out / "tinygpt.md").read_text(encoding="utf-8")
    assert "| 4 |" in report and "validation" in report
    assert str(tmp_path) not in report, "a page names no machine's paths (neither its text's nor its own folder)"
    assert (out / "tinygpt_loss.png").stat().st_size > 0
    assert "spread over seeds" not in report, "one seed unless --more-seeds asks for more"


@pytest.mark.slow
@MIRRORED_RUN
def test_the_example_downloads_its_text_on_first_use_from_a_mirror(mirrored_run):
    import subprocess

    tmp_path, done, args = mirrored_run["tmp"], mirrored_run["done"], mirrored_run["args"]
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8") == MIRRORED_TEXT
    env = dict(mirrored_run["env"], TINYTORCH_SHAKESPEARE_CHECKSUM="sha256:" + "0" * 64)  # a mirror whose bytes do not match
    done = subprocess.run([*args[:3], str(tmp_path / "other")] + args[4:], capture_output=True, text=True,
                          timeout=300, env=env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]   # (the progress bar aside)
    assert done.returncode != 0 and len(errors) == 1 and "checksum mismatch" in errors[0]
    assert not (tmp_path / "other" / "tinyshakespeare.txt").exists()


def test_no_tracked_file_refers_to_data_outside_the_repository():
    import subprocess

    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    offenders = []
    for name in listed.stdout.splitlines():
        path = REPO / name
        if path.suffix in {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".json"} and path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if ('"..", "shared"' in text or "../shared/" in text or '/ ".." / "shared"' in text) and name != "tests/test_gpt.py":
                offenders.append(name)
    assert offenders == [], f"these files point outside the repository: {offenders}"
