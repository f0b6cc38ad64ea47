"""Checkpoint 08 (normalization): Can I stabilize training with normalization techniques?

Uses chapter 08's LayerNorm and BatchNorm the way networks do: keeping a deep
stack at unit scale whatever its weights, per-sample and per-channel
statistics, running estimates that converge to the data's, and the train/eval
switch with state that survives a save and load.
"""

from _harness import main

import numpy as np

from tinytorch import Tensor, manual_seed
from tinytorch.nn import BatchNorm1d, BatchNorm2d, LayerNorm, Linear, Sequential
from tinytorch.nn.activation import relu


def _deep_stack_stds(norm=None, depth=20, width=64, weight_scale=4.0):
    manual_seed(0)
    x = Tensor(np.random.default_rng(0).standard_normal((128, width)).astype(np.float32))
    stds = []
    for _ in range(depth):
        linear = Linear(width, width, bias=False)
        linear.weight.data *= weight_scale
        x = relu(norm(width)(linear(x))) if norm else relu(linear(x))
        stds.append(float(x.data.std()))
    return np.array(stds)


def check_normalization_keeps_a_deep_stack_at_unit_scale():
    """20 Linear+ReLU layers with oversized weights explode; with LayerNorm or BatchNorm they stay at unit scale."""
    plain = _deep_stack_stds()
    assert plain[-1] > 100 * plain[0], f"the unnormalized stack should explode (sanity check), stds {plain[[0, -1]]}"
    for norm in (LayerNorm, BatchNorm1d):
        stds = _deep_stack_stds(norm)
        assert np.all((stds > 0.4) & (stds < 0.8)), \
            f"with {norm.__name__} every layer's activation std should stay near 0.58, got {stds.min():.3g}..{stds.max():.3g}"


def check_layer_norm_normalizes_each_sample_and_ignores_its_scale():
    """LayerNorm: each sample gets mean 0 and variance 1; scaling a sample changes nothing (with eps=0)."""
    x = np.random.default_rng(1).standard_normal((6, 10)) * np.arange(1, 7)[:, None] + 4.0
    y = LayerNorm(10)(Tensor(x)).data
    assert np.allclose(y.mean(-1), 0.0, atol=1e-6) and np.allclose(y.var(-1), 1.0, atol=1e-4), \
        "every row should have mean 0 and variance 1 over the last dimension"
    ln = LayerNorm(10, eps=0.0)
    assert np.allclose(ln(Tensor(x * 100.0)).data, ln(Tensor(x)).data, atol=1e-8), \
        "LayerNorm(a x) should equal LayerNorm(x): subtract the mean, divide by the standard deviation"
    ln.weight.data[...] = 2.0
    ln.bias.data[...] = 1.0
    assert np.allclose(ln(Tensor(x)).data, 2.0 * y + 1.0, atol=1e-4), "weight scales and bias shifts the result"


def check_batch_norm_normalizes_each_channel_over_the_batch():
    """BatchNorm1d and BatchNorm2d in train mode: per-channel mean 0 and variance 1 over all but the channel axis."""
    rng = np.random.default_rng(2)
    x1 = rng.standard_normal((32, 4)) * [1.0, 5.0, 0.5, 2.0] + [0.0, 3.0, -1.0, 8.0]
    y1 = BatchNorm1d(4)(Tensor(x1)).data
    assert np.allclose(y1.mean(0), 0.0, atol=1e-6) and np.allclose(y1.var(0), 1.0, atol=1e-3), \
        "BatchNorm1d should normalize each column over the batch"
    x2 = rng.standard_normal((4, 3, 5, 5)) * 3.0 + 2.0
    y2 = BatchNorm2d(3)(Tensor(x2)).data
    assert np.allclose(y2.mean((0, 2, 3)), 0.0, atol=1e-6) and np.allclose(y2.var((0, 2, 3)), 1.0, atol=1e-3), \
        "BatchNorm2d should normalize each channel over batch, height and width"


def check_running_statistics_converge_to_the_data():
    """Running mean and (unbiased) running variance converge to the data's; momentum is the weight of the new batch."""
    true_mean, true_var = np.array([2.0, -3.0]), np.array([9.0, 0.25])
    rng = np.random.default_rng(3)
    first = rng.standard_normal((8, 2)) * np.sqrt(true_var) + true_mean
    one_step = BatchNorm1d(2, momentum=0.1)
    one_step(Tensor(first))
    assert np.allclose(one_step.running_mean.data, 0.1 * first.mean(0), atol=1e-5), \
        "after one batch running_mean should be 0.9 * 0 + 0.1 * batch mean (PyTorch: momentum weights the new batch)"
    assert np.allclose(one_step.running_var.data, 0.9 + 0.1 * first.var(0, ddof=1), atol=1e-4), \
        "after one batch running_var should be 0.9 * 1 + 0.1 * unbiased batch variance"
    ema, average = BatchNorm1d(2, momentum=0.1), BatchNorm1d(2, momentum=None)
    for _ in range(600):
        batch = Tensor(rng.standard_normal((4, 2)) * np.sqrt(true_var) + true_mean)   # small batches of 4
        ema(batch)
        average(batch)
    assert np.allclose(ema.running_mean.data, true_mean, atol=0.5 * np.sqrt(true_var)), \
        f"running_mean {ema.running_mean.data} should approach {true_mean} (momentum weights the new batch)"
    ratio = average.running_var.data / true_var
    assert np.all(np.abs(ratio - 1.0) < 0.1), \
        f"running_var / true var = {ratio}: the running variance must use the unbiased batch variance (divide by n-1)"
    assert int(average.num_batches_tracked.data) == 600, "num_batches_tracked should count the training batches"


def check_eval_mode_is_batch_independent_and_survives_save_and_load():
    """model.eval() makes outputs independent of the batch, freezes running stats, and a state_dict restores them."""
    manual_seed(4)
    make = lambda: Sequential(Linear(6, 16), BatchNorm1d(16), relu, Linear(16, 2))   # noqa: E731
    model = make()
    rng = np.random.default_rng(5)
    for _ in range(10):
        model(Tensor(rng.standard_normal((32, 6)) * 2 + 1, dtype=np.float32))
    sample = rng.standard_normal((1, 6))
    other_a, other_b = rng.standard_normal((7, 6)), rng.standard_normal((7, 6)) + 3.0
    train_a = model(Tensor(np.vstack([sample, other_a]), dtype=np.float32)).data[0]
    train_b = model(Tensor(np.vstack([sample, other_b]), dtype=np.float32)).data[0]
    assert not np.allclose(train_a, train_b), "in train mode a sample's output should depend on its batch"
    model.eval()
    frozen = model.state_dict()
    eval_a = model(Tensor(np.vstack([sample, other_a]), dtype=np.float32)).data[0]
    eval_b = model(Tensor(np.vstack([sample, other_b]), dtype=np.float32)).data[0]
    alone = model(Tensor(sample, dtype=np.float32)).data[0]
    assert np.allclose(eval_a, eval_b) and np.allclose(eval_a, alone), \
        "in eval mode a sample's output must not depend on its batch (use running_mean/running_var)"
    assert all(np.array_equal(frozen[k], v) for k, v in model.state_dict().items()), \
        "eval mode must not update the running statistics"
    assert "1.running_mean" in frozen and "1.running_var" in frozen, "running statistics belong in the state_dict"
    manual_seed(99)
    restored = make()
    restored.load_state_dict(frozen)
    restored.eval()
    assert np.allclose(restored(Tensor(sample, dtype=np.float32)).data[0], alone), "a restored model should reproduce eval outputs"


if __name__ == "__main__":
    main(globals())
