"""Checkpoint 13 (regularization): Can I prevent overfitting and build robust models?

Checks that dropout is inverted dropout (a fraction p zeroed, survivors scaled
so the expectation holds, identity in eval mode) whose gradient is its mask,
that the L2 penalty is the same update as SGD's weight decay, and that on a
small problem built to overfit, dropout, weight decay and early stopping each
keep the validation loss below where the unregularised run ends.
"""

import numpy as np

from _harness import main

from tinytorch import Tensor, manual_seed
from tinytorch.nn import Linear, ReLU, Sequential
from tinytorch.nn.functional import log_softmax
from tinytorch.nn.regularization import Dropout, dropout, l2_penalty
from tinytorch.training import Trainer

from tinytorch.optim import SGD

def cross_entropy(logits, targets):
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    return -(log_softmax(logits, dim=-1)[np.arange(len(targets)), targets]).mean()


GLYPHS = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]], [[1, 0, 1], [0, 1, 0], [1, 0, 1]],
                   [[1, 1, 1], [1, 0, 1], [1, 1, 1]], [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
                   [[0, 1, 0], [0, 1, 0], [0, 1, 0]]], dtype=np.float32)


def shapes(n, seed):
    """Noisy 8x8 images of five glyphs at random positions, flattened: a problem a small MLP overfits."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    X = rng.normal(0.0, 0.25, (n, 8, 8)).astype(np.float32)
    rows, cols = rng.integers(0, 6, n), rng.integers(0, 6, n)
    for i in range(n):
        X[i, rows[i]:rows[i] + 3, cols[i]:cols[i] + 3] += GLYPHS[y[i]]
    return X.reshape(n, 64), y


def check_dropout_is_inverted_and_unbiased():
    """dropout zeroes a fraction p, scales survivors by exactly 1/(1-p), keeps the mean, and is the identity in eval."""
    manual_seed(0)
    p = 0.4
    x = Tensor(np.full((500, 200), 2.0, dtype=np.float32))
    y = dropout(x, p)
    zeroed = float(np.mean(y.data == 0))
    assert abs(zeroed - p) < 0.01, f"{zeroed:.3f} of the elements were zeroed with p={p}"
    assert np.all(y.data[y.data != 0] == np.float32(2.0 / (1 - p))), \
        "survivors must be scaled by 1/(1-p) (inverted dropout), so that evaluation needs no scaling"
    assert abs(float(y.data.mean()) - 2.0) < 0.03, f"the mean moved from 2.0 to {y.data.mean():.3f}: dropout must keep the expectation"
    assert dropout(x, p, training=False) is x, "with training=False dropout must return its input unchanged"
    assert not np.any(dropout(x, 1.0).data), "p=1 must drop every element"
    try:
        dropout(x, 1.5)
    except ValueError:
        pass
    else:
        raise AssertionError("dropout accepted p=1.5; it must raise ValueError")


def check_dropout_gradient_is_its_mask():
    """The gradient of dropout with respect to its input is the same mask, scaled by 1/(1-p)."""
    manual_seed(1)
    x = Tensor(np.ones((30, 40), dtype=np.float32), requires_grad=True)
    y = dropout(x, 0.5)
    y.sum().backward()
    assert x.grad is not None, "no gradient reached the input of dropout"
    assert np.array_equal(x.grad.data, y.data), "for an input of ones the gradient must equal the output (the scaled mask)"


def check_dropout_layer_follows_train_and_eval():
    """A model with Dropout draws new masks in train() mode and computes the dropout-free function in eval() mode."""
    manual_seed(2)
    model = Sequential(Linear(6, 16), ReLU(), Dropout(0.5), Linear(16, 3))
    x = Tensor(np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32))
    assert not np.array_equal(model(x).data, model(x).data), "in training mode two calls must use different masks"
    model.eval()
    without = model[3](model[1](model[0](x)))
    assert np.array_equal(model(x).data, without.data), "model.eval() must turn dropout into the identity"
    assert list(Dropout(0.5).parameters()) == [], "Dropout has no parameters"


def check_l2_penalty_is_weight_decay():
    """l2_penalty's gradient is weight_decay * p, and one SGD step with it equals SGD(weight_decay=...)."""
    w = Tensor(np.array([1.0, -2.0, 0.5], dtype=np.float32), requires_grad=True)
    penalty = l2_penalty([w], 0.2)
    assert abs(penalty.item() - 0.1 * 5.25) < 1e-6, f"l2_penalty gave {penalty.item()}, expected 0.2/2 * 5.25"
    penalty.backward()
    assert np.allclose(w.grad.data, 0.2 * w.data), "the gradient of the L2 penalty must be weight_decay * p"
    X, y = shapes(16, seed=0)
    after = []
    for in_loss, in_optimizer in ((0.1, 0.0), (0.0, 0.1)):
        manual_seed(0)
        model = Sequential(Linear(64, 8), ReLU(), Linear(8, 5))
        opt = SGD(model.parameters(), lr=0.5, weight_decay=in_optimizer)
        loss = cross_entropy(model(Tensor(X)), y)
        if in_loss:
            loss = loss + l2_penalty(model.parameters(), in_loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        after.append(model.state_dict())
    for key in after[0]:
        assert np.allclose(after[0][key], after[1][key], rtol=1e-5, atol=1e-6), \
            f"{key}: an SGD step on loss + l2_penalty differs from SGD(weight_decay=...)"


def check_regularisation_stops_the_validation_loss_climbing():
    """On a problem built to overfit, dropout, weight decay and early stopping each end below the unregularised validation loss."""
    X, y = shapes(240, seed=1)
    Xv, yv = shapes(240, seed=2)

    def final_val_loss(p=0.0, weight_decay=0.0, patience=None):
        manual_seed(0)
        drop = [Dropout(p)] if p else []
        model = Sequential(Linear(64, 64), ReLU(), *drop, Linear(64, 64), ReLU(), *drop, Linear(64, 5))
        batches = [(X[i:i + 30], y[i:i + 30]) for i in range(0, 240, 30)]
        trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=weight_decay),
                          cross_entropy, early_stopping_patience=patience, seed=1, progress=False)
        history = trainer.fit(batches, [(Xv, yv)], epochs=25)
        model.eval()
        return float(cross_entropy(model(Tensor(Xv)), yv).item()), history

    plain, history = final_val_loss()
    best = min(history["val_loss"])
    assert history["train_accuracy"][-1] > 0.99 and plain > best * 1.3, \
        "the unregularised baseline should overfit (train accuracy ~1, validation loss well above its minimum)"
    for name, options in [("dropout 0.5", {"p": 0.5}), ("weight decay 1e-2", {"weight_decay": 1e-2}),
                          ("early stopping", {"patience": 3})]:
        loss, _ = final_val_loss(**options)
        assert loss < plain, f"with {name} the final validation loss is {loss:.3f}, not below the baseline's {plain:.3f}"
    assert abs(loss - best) < 1e-6, \
        f"early stopping must end on the best epoch's weights (val loss {best:.4f}), not {loss:.4f}"

if __name__ == "__main__":
    main(globals())
