"""Checkpoint 12 (training): Can I build complete training loops for end-to-end learning?

Trains small models with tinytorch's Trainer and checks that the loop learns
and records its history, that a checkpoint moves a run's complete state
through a file without pickle (and that a damaged or mismatched file changes
nothing), that early stopping ends on the best weights, that evaluation
reports the right per-class numbers, and that a run resumed from a checkpoint
is the same run, bit for bit.
"""

import json
import tempfile
from pathlib import Path

import numpy as np

from _harness import main

from tinytorch import Tensor, manual_seed
from tinytorch.nn import init
from tinytorch.nn import Linear, Module, Parameter, ReLU, Sequential
from tinytorch.nn.functional import log_softmax
from tinytorch.training import (CheckpointError, Trainer, compute_confusion_matrix, evaluate_model,
                                load_checkpoint, save_checkpoint)

from tinytorch.optim import SGD

def cross_entropy(logits, targets):
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    return -(log_softmax(logits, dim=-1)[np.arange(len(targets)), targets]).mean()


def blobs(n, seed):
    centres = np.random.default_rng(100).standard_normal((3, 4)) * 2
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (centres[y] + 0.6 * rng.standard_normal((n, 4))).astype(np.float32), y


class Shuffled:
    """Batches reshuffled every epoch by the loader's own generator."""

    def __init__(self, X, y, batch_size, seed):
        self.X, self.y, self.batch_size = X, y, batch_size
        self.generator = np.random.default_rng(seed)

    def __len__(self):
        return -(-len(self.X) // self.batch_size)

    def __iter__(self):
        order = self.generator.permutation(len(self.X))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield Tensor(self.X[index]), self.y[index]


class Jitter(Module):
    """Adds noise from tinytorch's generator while training, as dropout draws its masks."""

    def forward(self, x):
        if not self.training:
            return x
        return x + Tensor(init.generator().standard_normal(x.shape).astype(np.float32) * 0.1)


def run(seed=0, **options):
    """A run built from its seeds, as a restarted job builds it again."""
    manual_seed(seed)
    model = Sequential(Linear(4, 16), ReLU(), Jitter(), Linear(16, 3))
    X, y = blobs(96, seed=1)
    Xv, yv = blobs(48, seed=2)
    trainer = Trainer(model, SGD(model.parameters(), lr=0.1, momentum=0.9), cross_entropy,
                      seed=seed + 2, progress=False, **options)
    return trainer, Shuffled(X, y, 16, seed=seed + 1), [(Xv, yv)]


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def check_trainer_learns_and_records_history():
    """fit() learns a 3-class problem and records a JSON-serialisable history, one entry per epoch."""
    trainer, train, val = run()
    history = trainer.fit(train, val, epochs=6)
    for key in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert key in history and len(history[key]) == 6, f"history[{key!r}] must hold one value per epoch (6)"
    assert history["val_accuracy"][-1] > 0.9, \
        f"validation accuracy is {history['val_accuracy'][-1]:.2f} after 6 epochs on well-separated clusters; expected > 0.9"
    assert history["train_loss"][-1] < history["train_loss"][0], "the training loss did not go down"
    assert json.loads(json.dumps(history)) == dict(history), "the history must be plain JSON (Python numbers in lists)"
    trainer.fit(train, val, epochs=6)
    assert trainer.epoch == 6, "epochs counts epochs in total: fit(epochs=6) again must not train more"


def check_checkpoint_round_trip():
    """save_checkpoint/load_checkpoint move weights, optimizer state and metadata exactly, without pickle."""
    trainer, train, val = run()
    trainer.fit(train, val, epochs=2)
    meta = {"epoch": 2, "history": {"loss": [0.9, 0.5]}, "rng": init.generator().bit_generator.state}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.npz"
        save_checkpoint(path, trainer.model, trainer.optimizer, **meta)
        assert [p.name for p in Path(folder).iterdir()] == ["run.npz"], "saving must leave no temporary file"
        with np.load(path, allow_pickle=False) as npz:
            assert any(k.startswith("model/") for k in npz.files), "model arrays must be stored as model/<name>"
        other, _, _ = run(seed=5)
        got = load_checkpoint(path, other.model, other.optimizer)
        assert same(weights(other.model), weights(trainer.model)), "loaded weights differ from the saved ones"
        saved_opt, loaded_opt = trainer.optimizer.state_dict(), other.optimizer.state_dict()
        for i, entry in saved_opt["state"].items():
            for k, v in entry.items():
                assert np.array_equal(np.asarray(loaded_opt["state"][i][k]), np.asarray(v)), f"optimizer state {i}/{k} differs"
        assert got == meta, f"metadata came back as {got}"


def check_bad_checkpoints_change_nothing():
    """A truncated file, a wrong format version or the wrong shapes raise CheckpointError and change nothing."""
    from tinytorch.training import checkpoint as checkpoint_module

    trainer, train, val = run()
    trainer.fit(train, val, epochs=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.npz"
        save_checkpoint(path, trainer.model, trainer.optimizer)
        good = path.read_bytes()
        path.write_bytes(good[: len(good) // 2])
        target, _, _ = run(seed=7)
        before = weights(target.model)
        try:
            load_checkpoint(path, target.model, target.optimizer)
        except CheckpointError:
            pass
        else:
            raise AssertionError("a truncated checkpoint loaded without CheckpointError")
        assert same(weights(target.model), before), "a failed load of a truncated file changed the model"

        path.write_bytes(good)
        wider = Sequential(Linear(4, 32), ReLU(), Jitter(), Linear(32, 3))
        before = weights(wider)
        try:
            load_checkpoint(path, wider)
        except CheckpointError as err:
            assert "0.weight" in str(err), f"the error must name the entry whose shape is wrong: {err}"
        else:
            raise AssertionError("a checkpoint of a 16-unit model loaded into a 32-unit model")
        assert same(weights(wider), before), "a failed load with wrong shapes changed the model"

        version = checkpoint_module.FORMAT_VERSION
        checkpoint_module.FORMAT_VERSION = version + 1
        try:
            save_checkpoint(path, trainer.model)
        finally:
            checkpoint_module.FORMAT_VERSION = version
        before = weights(target.model)
        try:
            load_checkpoint(path, target.model)
        except CheckpointError:
            pass
        else:
            raise AssertionError(f"a checkpoint of format version {version + 1} loaded without CheckpointError")
        assert same(weights(target.model), before), "a failed load of a wrong version changed the model"


def check_early_stopping_restores_the_best_weights():
    """Early stopping stops after `patience` epochs without improvement and ends on the best epoch's weights."""

    class Scalar(Module):
        def __init__(self):
            super().__init__()
            self.w = Parameter(np.zeros(1, dtype=np.float32))

        def forward(self, x):
            return x * 0.0 + self.w

    def mse(out, target):
        diff = out - Tensor(np.asarray(target, dtype=np.float32))
        return (diff * diff).mean()

    model = Scalar()
    x = np.zeros((4, 1), np.float32)
    # plain SGD at lr 0.25 towards 2 gives w = 1, 1.5, 1.75, 1.875, ...; the validation target 1.5 is best at epoch 2
    opt = SGD(model.parameters(), lr=0.25)
    trainer = Trainer(model, opt, mse, metrics=(), early_stopping_patience=2, progress=False)
    history = trainer.fit([(x, np.full((4, 1), 2.0))], [(x, np.full((4, 1), 1.5))], epochs=30)
    assert history["epoch"] == [1, 2, 3, 4], \
        f"with the best epoch 2 and patience 2 the run must stop after epoch 4, not {history['epoch'][-1]}"
    assert model.w.data.tolist() == [1.5], f"early stopping must restore epoch 2's w = 1.5, not {model.w.data.tolist()}"


def check_evaluation_reports_per_class_numbers():
    """compute_confusion_matrix and evaluate_model count every (true, predicted) pair correctly."""
    cm = compute_confusion_matrix([0, 0, 1, 2, 2, 2], [0, 2, 1, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 2]], f"confusion matrix {cm.tolist()} is wrong"

    class GivenLogits(Module):
        def forward(self, x):
            return x * 1.0

    predicted, targets = [0, 0, 1, 1, 1, 0], np.array([0, 0, 0, 1, 1, 2])
    X = np.eye(3, dtype=np.float32)[predicted] * 3.0
    result = evaluate_model(GivenLogits(), [(X[:4], targets[:4]), (X[4:], targets[4:])], cross_entropy)
    assert abs(result["accuracy"] - 4 / 6) < 1e-12, f"accuracy {result['accuracy']} should be 4/6"
    assert np.allclose(result["per_class_accuracy"], [2 / 3, 1.0, 0.0]), \
        f"per-class accuracy {result['per_class_accuracy']} should be [2/3, 1, 0]"
    expected = float(cross_entropy(Tensor(X), targets).item())
    assert abs(result["loss"] - expected) < 1e-6, "the loss must be the per-sample mean over all batches"


def check_resume_is_exact():
    """A run resumed from last.npz after epoch 2 of 5 ends with exactly the uninterrupted run's weights and history."""
    full, train, val = run()
    full.fit(train, val, epochs=5)
    with tempfile.TemporaryDirectory() as folder:
        first, train, val = run(checkpoint_dir=folder)
        first.fit(train, val, epochs=2)
        manual_seed(999)                                   # a restarted process starts from another random state
        resumed, train, val = run()
        resumed.fit(train, val, epochs=5, resume_from=Path(folder) / "last.npz")
    assert resumed.history == full.history, "the resumed run's history differs from the uninterrupted run's"
    assert same(weights(resumed.model), weights(full.model)), \
        "the resumed weights differ from the uninterrupted run's: is every generator's state (tinytorch's, the loader's) saved and restored?"


if __name__ == "__main__":
    main(globals())
