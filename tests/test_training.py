"""Trainer, checkpoints, metrics and plots (chapter 12_training).

Each test states one behaviour. The optimizer, scheduler and loaders come
from tests/training_support.py unless a test says it uses the package's own.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from tinytorch import Tensor, manual_seed
from tinytorch.nn import init
from tinytorch.training import (CheckpointError, History, Trainer, accuracy, checkpoint_info,
                                compute_confusion_matrix, evaluate_model, load_checkpoint,
                                plot_confusion_matrix, plot_training_history, save_checkpoint)
from tinytorch.training import checkpoint as checkpoint_module

from training_support import SGD, Scalar, ShuffledBatches, StepLR, blobs, cross_entropy, mlp, mse


def trained(seed=0, steps=3, momentum=0.9):
    """A small model and an optimizer that has taken a few steps (so it has momentum state)."""
    manual_seed(seed)
    model = mlp()
    opt = SGD(model.parameters(), lr=0.1, momentum=momentum)
    X, y = blobs(32, seed=1)
    for _ in range(steps):
        loss = cross_entropy(model(Tensor(X)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def snapshot(model, opt=None):
    state = {k: v.copy() for k, v in model.state_dict().items()}
    if opt is not None:
        state.update({f"opt{i}": b.copy() for i, b in opt.state.items()})
        state["lr"] = np.array(opt.param_groups[0]["lr"])
    return state


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} changed"


# ---- metrics ------------------------------------------------------------------------------------
def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    cm = compute_confusion_matrix([0, 0, 1, 2, 2, 2], [0, 2, 1, 2, 2, 0], 3)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 2]]
    assert cm.dtype == np.int64


def test_confusion_matrix_rejects_labels_outside_the_classes():
    with pytest.raises(ValueError, match="outside 0..1"):
        compute_confusion_matrix([0, 2], [0, 1], 2)


def test_confusion_matrix_rejects_float_predictions():
    with pytest.raises(TypeError, match="argmax"):
        compute_confusion_matrix([0, 1], [0.2, 0.9], 2)


def test_accuracy_is_the_fraction_of_argmax_hits():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
    assert accuracy(Tensor(logits), np.array([0, 1, 1, 1])) == 0.75


def test_accuracy_refuses_regression_outputs_with_a_hint():
    with pytest.raises(ValueError, match="metrics=()"):
        accuracy(np.zeros(4), np.zeros(4))


def identity_model():
    """A model whose logits are its inputs, so the predictions are known exactly."""
    from tinytorch.nn import Module

    class Logits(Module):
        def forward(self, x):
            return x * 1.0

    return Logits()


def test_evaluate_model_reports_loss_accuracy_and_per_class_accuracy():
    # true classes 0,0,0,1,1,2 ; predicted 0,0,1,1,1,0 -> class 0: 2/3, class 1: 2/2, class 2: 0/1
    preds = [0, 0, 1, 1, 1, 0]
    X = np.eye(4, dtype=np.float32)[preds] * 3.0          # 4 classes: class 3 never appears
    y = np.array([0, 0, 0, 1, 1, 2])
    batches = [(Tensor(X[:4]), y[:4]), (Tensor(X[4:]), y[4:])]
    result = evaluate_model(identity_model(), batches, cross_entropy)
    assert result["num_samples"] == 6
    assert result["accuracy"] == pytest.approx(4 / 6)
    np.testing.assert_allclose(result["per_class_accuracy"][:3], [2 / 3, 1.0, 0.0])
    assert np.isnan(result["per_class_accuracy"][3])
    expected = float(cross_entropy(Tensor(X), y).item())
    assert result["loss"] == pytest.approx(expected, rel=1e-6)   # weighted by batch size: per sample
    assert result["confusion_matrix"].sum() == 6


def test_evaluate_model_runs_in_eval_mode_without_a_graph_and_restores_the_mode():
    seen = []

    from tinytorch.nn import Linear, Module

    class Probe(Module):
        def __init__(self):
            super().__init__()
            self.fc = Linear(2, 2)

        def forward(self, x):
            out = self.fc(x)
            seen.append((self.training, out.requires_grad))
            return out

    model = Probe()
    evaluate_model(model, [(Tensor(np.ones((3, 2), np.float32)), np.array([0, 1, 0]))], cross_entropy)
    assert seen == [(False, False)]
    assert model.training


# ---- checkpoints --------------------------------------------------------------------------------
def test_checkpoint_round_trip_restores_model_optimizer_and_metadata(tmp_path):
    model, opt = trained()
    meta = {"epoch": 3, "history": {"loss": [1.5, 0.25]}, "seed": 7, "rng": init.generator().bit_generator.state,
            "pair": (1, 2.5), "by_index": {0: "a", 1: None}, "table": np.arange(6).reshape(2, 3)}
    save_checkpoint(tmp_path / "c.npz", model, opt, **meta)
    manual_seed(99)
    other, other_opt = mlp(), None
    other_opt = SGD(other.parameters(), lr=0.5, momentum=0.9)
    got = load_checkpoint(tmp_path / "c.npz", other, other_opt)
    assert_same(snapshot(other), snapshot(model))
    assert other_opt.param_groups == opt.param_groups
    assert other_opt.state.keys() == opt.state.keys()
    for i in opt.state:
        assert np.array_equal(other_opt.state[i], opt.state[i])
    assert got["epoch"] == 3 and got["history"] == meta["history"] and got["seed"] == 7
    assert got["rng"] == meta["rng"]                      # 128-bit integers survive JSON exactly
    assert got["pair"] == (1, 2.5) and got["by_index"] == {0: "a", 1: None}
    assert np.array_equal(got["table"], meta["table"])


def test_a_resumed_optimizer_takes_the_same_next_step(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    copy_model = mlp()
    copy_opt = SGD(copy_model.parameters(), lr=0.1, momentum=0.9)
    load_checkpoint(tmp_path / "c.npz", copy_model, copy_opt)
    X, y = blobs(8, seed=3)
    for m, o in ((model, opt), (copy_model, copy_opt)):
        loss = cross_entropy(m(Tensor(X)), y)
        o.zero_grad()
        loss.backward()
        o.step()
    assert_same(snapshot(copy_model), snapshot(model))


def test_checkpoint_is_a_plain_npz_readable_without_pickle(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt, epoch=1)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert "model/0.weight" in npz.files and "checkpoint.json" in npz.files
        assert any(k.startswith("optimizer/") for k in npz.files)
        document = json.loads(npz["checkpoint.json"].tobytes())
    assert document["format_version"] == 1 and document["tinytorch_version"]
    assert document["arrays"]["model/0.weight"] == {"shape": [16, 4], "dtype": "<f4"}
    assert checkpoint_info(tmp_path / "c.npz")["metadata"] == {"epoch": 1}


def test_checkpoint_refuses_to_store_python_objects(tmp_path):
    model, _ = trained()
    with pytest.raises(TypeError, match="cannot store a object"):
        save_checkpoint(tmp_path / "c.npz", model, note=object())
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_no_temporary_files_and_replaces_the_old_file(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt, epoch=1)
    save_checkpoint(tmp_path / "c.npz", model, opt, epoch=2)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]
    assert checkpoint_info(tmp_path / "c.npz")["metadata"]["epoch"] == 2


def test_a_write_that_fails_midway_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt, epoch=1)

    def crash(file, **entries):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "c.npz", model, opt, epoch=2)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]
    assert checkpoint_info(tmp_path / "c.npz")["metadata"]["epoch"] == 1


def test_saving_into_a_missing_folder_says_so(tmp_path):
    model, _ = trained()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "nowhere" / "c.npz", model)


def damage_truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_flip_weight_bytes(path):
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("model/0.weight.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128 + 8   # inside the array's values
    for i in range(start, start + 4):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def damage_flip_document_bytes(path):
    data = bytearray(path.read_bytes())
    i = data.find(b'"format_version"')
    data[i + 2] ^= 0x01
    path.write_bytes(bytes(data))


def damage_garbage(path):
    path.write_bytes(os.urandom(2000))


@pytest.mark.parametrize("damage", [damage_truncate, damage_flip_weight_bytes, damage_flip_document_bytes, damage_garbage])
def test_a_damaged_file_raises_checkpoint_error_and_changes_nothing(tmp_path, damage):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    damage(tmp_path / "c.npz")
    target, target_opt = trained(seed=5)
    before = snapshot(target, target_opt)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "c.npz", target, target_opt)
    assert "\n" not in str(err.value)
    assert_same(snapshot(target, target_opt), before)


def test_an_npz_that_is_not_a_checkpoint_is_named_as_such(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tinytorch checkpoint"):
        load_checkpoint(tmp_path / "plain.npz", mlp())


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.npz", mlp())


def test_a_wrong_format_version_raises_and_changes_nothing(tmp_path, monkeypatch):
    model, opt = trained()
    monkeypatch.setattr(checkpoint_module, "FORMAT_VERSION", 2)
    save_checkpoint(tmp_path / "c.npz", model, opt)
    monkeypatch.undo()
    target, target_opt = trained(seed=5)
    before = snapshot(target, target_opt)
    with pytest.raises(CheckpointError, match="format version 2"):
        load_checkpoint(tmp_path / "c.npz", target, target_opt)
    assert_same(snapshot(target, target_opt), before)


def test_wrong_shapes_raise_and_change_nothing(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    manual_seed(3)
    wider = mlp(hidden=8)
    wider_opt = SGD(wider.parameters(), lr=0.1, momentum=0.9)
    before = snapshot(wider, wider_opt)
    with pytest.raises(CheckpointError, match=r"wrong shapes.*0.weight"):
        load_checkpoint(tmp_path / "c.npz", wider, wider_opt)
    assert_same(snapshot(wider, wider_opt), before)


def test_missing_and_unexpected_names_raise_and_change_nothing(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path / "c.npz", model)
    from tinytorch.nn import Linear, ReLU, Sequential
    deeper = Sequential(Linear(4, 16), ReLU(), Linear(16, 3), ReLU(), Linear(3, 3))
    before = snapshot(deeper)
    with pytest.raises(CheckpointError, match=r"missing \['4.weight', '4.bias'\]"):
        load_checkpoint(tmp_path / "c.npz", deeper)
    assert_same(snapshot(deeper), before)


def test_an_optimizer_state_that_does_not_fit_leaves_model_and_optimizer_unchanged(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    target = mlp()
    few = SGD(list(target.parameters())[:2], lr=0.3, momentum=0.9)     # the optimizer sees 2 of 4 tensors
    few.state[0] = np.ones((16, 4), np.float32)
    before = snapshot(target, few)
    with pytest.raises(CheckpointError, match="optimizer state does not fit"):
        load_checkpoint(tmp_path / "c.npz", target, few)
    assert_same(snapshot(target, few), before)


def test_asking_for_optimizer_state_the_file_lacks_is_an_error(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path / "c.npz", model)
    target = mlp()
    target_opt = SGD(target.parameters())
    before = snapshot(target)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(tmp_path / "c.npz", target, target_opt)
    assert_same(snapshot(target), before)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_round_trip_with_the_package_optimizers(tmp_path, name):
    optim = pytest.importorskip("tinytorch.optim", reason="chapter 10's optimizers are not in this tree")
    cls = getattr(optim, name)
    manual_seed(0)
    model = mlp()
    opt = cls(model.parameters(), lr=0.01)
    X, y = blobs(16, seed=1)
    for _ in range(2):
        loss = cross_entropy(model(Tensor(X)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    copy_model = mlp()
    copy_opt = cls(copy_model.parameters(), lr=0.01)
    load_checkpoint(tmp_path / "c.npz", copy_model, copy_opt)
    for m, o in ((model, opt), (copy_model, copy_opt)):
        loss = cross_entropy(m(Tensor(X)), y)
        o.zero_grad()
        loss.backward()
        o.step()
    assert_same(snapshot(copy_model), snapshot(model))


# ---- the Trainer --------------------------------------------------------------------------------
def make_run(seed=0, noise=True, scheduler=False, **trainer_options):
    """Everything a run builds from a seed: model, optimizer, loaders, trainer."""
    manual_seed(seed)
    model = mlp(noise=noise)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    X, y = blobs(96, seed=1)
    Xv, yv = blobs(48, seed=2)
    train = ShuffledBatches(X, y, batch_size=16, seed=seed + 1)
    val = ShuffledBatches(Xv, yv, batch_size=16, shuffle=False)
    sched = StepLR(opt, step_size=2, gamma=0.5) if scheduler else None
    trainer = Trainer(model, opt, cross_entropy, scheduler=sched, seed=seed + 2, progress=False, **trainer_options)
    return trainer, train, val


def test_fit_learns_an_easy_problem_and_records_the_history():
    trainer, train, val = make_run()
    history = trainer.fit(train, val, epochs=5)
    assert isinstance(history, History) and history.epochs == 5
    assert list(history) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"]
    assert all(len(v) == 5 for v in history.values())
    assert history["val_accuracy"][-1] > 0.9
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert json.loads(json.dumps(history)) == dict(history)
    assert [t["samples"] for t in trainer.timings] == [96] * 5


def test_fit_counts_epochs_in_total_so_a_second_call_continues():
    trainer, train, val = make_run()
    trainer.fit(train, val, epochs=2)
    trainer.fit(train, val, epochs=3)
    assert trainer.history["epoch"] == [1, 2, 3]
    trainer.fit(train, val, epochs=3)
    assert trainer.epoch == 3


def test_fit_accepts_a_plain_list_of_batches():
    trainer, _, _ = make_run(noise=False)
    X, y = blobs(64, seed=1)
    batches = [(X[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]     # NumPy inputs: wrapped as Tensors
    history = trainer.fit(batches, batches, epochs=3)
    assert history.epochs == 3 and history["val_accuracy"][-1] > 0.8


def test_fit_tells_each_loader_its_epoch():
    trainer, train, val = make_run()
    trainer.fit(train, val, epochs=3)
    assert train.epochs_set == [0, 1, 2]


def test_progress_prints_one_line_per_epoch_when_not_a_terminal(capsys):
    trainer, train, val = make_run()
    trainer.progress = True
    trainer.fit(train, val, epochs=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and "val_accuracy" in lines[0] and "samples/s" in lines[0]


def test_progress_false_prints_nothing(capsys):
    trainer, train, val = make_run()
    trainer.fit(train, val, epochs=1)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("scheduler", [False, True])
def test_resuming_after_epoch_k_matches_an_uninterrupted_run_bit_for_bit(tmp_path, scheduler):
    full, train, val = make_run(scheduler=scheduler)
    full.fit(train, val, epochs=5)
    full_rng = init.generator().bit_generator.state

    first, train, val = make_run(scheduler=scheduler, checkpoint_dir=tmp_path)
    first.fit(train, val, epochs=2)
    init.manual_seed(12345)                          # whatever happens in between must not matter
    resumed, train, val = make_run(scheduler=scheduler)
    resumed.fit(train, val, epochs=5, resume_from=tmp_path / "last.npz")

    assert_same(snapshot(resumed.model, resumed.optimizer), snapshot(full.model, full.optimizer))
    assert dict(resumed.history) == dict(full.history)
    assert init.generator().bit_generator.state == full_rng    # and the generator is where it would be


def test_trainer_load_then_fit_resumes_too(tmp_path):
    full, train, val = make_run()
    full.fit(train, val, epochs=4)
    first, train, val = make_run(checkpoint_dir=tmp_path)
    first.fit(train, val, epochs=3)
    resumed, train, val = make_run()
    resumed.load(tmp_path / "last.npz")
    assert resumed.epoch == 3 and resumed.history.epochs == 3
    resumed.fit(train, val, epochs=4)
    assert_same(snapshot(resumed.model, resumed.optimizer), snapshot(full.model, full.optimizer))
    assert dict(resumed.history) == dict(full.history)


def test_resume_with_the_package_data_loader(tmp_path):
    data = pytest.importorskip("tinytorch.data", reason="chapter 11's DataLoader is not in this tree")

    def run(**options):
        manual_seed(0)
        model = mlp(noise=True)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        X, y = blobs(96, seed=1)
        loader = data.DataLoader(data.TensorDataset(Tensor(X), Tensor(y)), batch_size=16, shuffle=True, seed=3)
        return Trainer(model, opt, cross_entropy, seed=2, progress=False, **options), loader

    full, loader = run()
    full.fit(loader, epochs=4)
    first, loader = run(checkpoint_dir=tmp_path)
    first.fit(loader, epochs=2)
    resumed, loader = run()
    resumed.fit(loader, epochs=4, resume_from=tmp_path / "last.npz")
    assert_same(snapshot(resumed.model), snapshot(full.model))
    assert dict(resumed.history) == dict(full.history)


def scalar_run(tmp_path=None, **options):
    """w starts at 0 and moves toward the train target 2 (lr 0.25: w = 1, 1.5, 1.75, 1.875, ...);
    the validation target is 1.5, so the validation loss is .25, 0, .0625, .1406, ...: best at epoch 2."""
    model = Scalar()
    opt = SGD(model.parameters(), lr=0.25)
    x = np.zeros((4, 1), np.float32)
    train = [(x, np.full((4, 1), 2.0))]
    val = [(x, np.full((4, 1), 1.5))]
    trainer = Trainer(model, opt, mse, metrics=(), checkpoint_dir=tmp_path, progress=False, **options)
    return trainer, train, val


def test_early_stopping_stops_after_patience_epochs_without_improvement_and_restores_the_best():
    trainer, train, val = scalar_run(early_stopping_patience=2)
    history = trainer.fit(train, val, epochs=20)
    assert history["epoch"] == [1, 2, 3, 4]
    np.testing.assert_allclose(history["val_loss"], [0.25, 0.0, 0.0625, 0.140625])
    assert trainer.stopped_early and trainer.best_epoch == 2
    assert trainer.model.w.data.tolist() == [1.5]               # the weights of epoch 2, not of epoch 4


def test_early_stopping_also_resumes_exactly(tmp_path):
    full, train, val = scalar_run(early_stopping_patience=2)
    full.fit(train, val, epochs=20)
    first, train, val = scalar_run(tmp_path, early_stopping_patience=2)
    first.fit(train, val, epochs=3)
    resumed, train, val = scalar_run(early_stopping_patience=2)
    resumed.fit(train, val, epochs=20, resume_from=tmp_path / "last.npz")
    assert resumed.history == full.history and resumed.model.w.data.tolist() == [1.5]


def test_save_best_keeps_the_checkpoint_of_the_best_validation_loss(tmp_path):
    trainer, train, val = scalar_run(tmp_path, save_best=True)
    trainer.fit(train, val, epochs=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "last.npz"]
    best = Scalar()
    meta = load_checkpoint(tmp_path / "best.npz", best)
    assert best.w.data.tolist() == [1.5] and meta["trainer"]["epoch"] == 2
    last = Scalar()
    load_checkpoint(tmp_path / "last.npz", last)
    assert last.w.data.tolist() == [1.9375]                    # epoch 5: 2 - 2 * 0.5**5


def test_trainer_load_refuses_a_checkpoint_without_trainer_state(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    trainer, _, _ = make_run(noise=False)                       # the same architecture as the file's
    before = snapshot(trainer.model, trainer.optimizer)
    with pytest.raises(CheckpointError, match="no trainer state"):
        trainer.load(tmp_path / "c.npz")
    assert_same(snapshot(trainer.model, trainer.optimizer), before)


def test_trainer_options_are_checked():
    model = mlp()
    opt = SGD(model.parameters())
    with pytest.raises(ValueError, match="needs checkpoint_dir"):
        Trainer(model, opt, cross_entropy, save_best=True)
    with pytest.raises(ValueError, match="early_stopping_patience"):
        Trainer(model, opt, cross_entropy, early_stopping_patience=0)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        Trainer(model, opt, cross_entropy, metrics=("f1",))
    trainer = Trainer(model, opt, cross_entropy, early_stopping_patience=2, progress=False)
    with pytest.raises(ValueError, match="pass val_loader"):
        trainer.fit([(np.zeros((2, 4), np.float32), np.array([0, 1]))], epochs=1)


def test_a_custom_metric_function_is_recorded_under_its_name():
    def top_class_share(outputs, targets):
        return float(np.mean(outputs.argmax(axis=1) == 0))

    trainer, train, val = make_run(metrics=("accuracy", top_class_share))
    history = trainer.fit(train, val, epochs=1)
    assert "val_top_class_share" in history and 0 <= history["val_top_class_share"][0] <= 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_non_finite_loss_stops_with_a_clear_error():
    trainer, _, _ = make_run(noise=False)
    X = np.full((4, 4), np.inf, np.float32)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        trainer.fit([(X, np.array([0, 1, 2, 0]))], epochs=1)


def test_history_best_finds_the_lowest_validation_loss():
    h = History()
    for epoch, loss in enumerate([0.5, 0.3, 0.4], start=1):
        h.append({"epoch": epoch, "val_loss": loss})
    assert h.best() == (2, 0.3) and h.best("val_loss", mode="max") == (1, 0.5)


# ---- plots --------------------------------------------------------------------------------------
def test_plots_return_a_figure_and_write_png_files(tmp_path):
    trainer, train, val = make_run()
    history = trainer.fit(train, val, epochs=2)
    fig = plot_training_history(history, path=tmp_path / "history.png")
    assert len(fig.axes) == 2                                  # loss and accuracy
    cm = compute_confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3)
    plot_confusion_matrix(cm, class_names=["a", "b", "c"], path=tmp_path / "cm.png")
    for name in ("history.png", "cm.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_reject_what_they_cannot_draw():
    with pytest.raises(ValueError, match="no epochs"):
        plot_training_history(History())
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 class names for 2 classes"):
        plot_confusion_matrix(np.zeros((2, 2)), class_names=["a", "b", "c"])


def test_a_document_that_lists_a_model_entry_without_its_array_is_damaged(tmp_path):
    model, _ = trained()
    save_checkpoint(tmp_path / "c.npz", model)
    with np.load(tmp_path / "c.npz") as npz:
        entries = {k: npz[k] for k in npz.files}
    document = json.loads(entries["checkpoint.json"].tobytes())
    document["model"].append("ghost.weight")                   # a well-formed file whose document lies
    entries["checkpoint.json"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", **entries)
    target = mlp()
    before = snapshot(target)
    with pytest.raises(CheckpointError, match="does not list the model's arrays"):
        load_checkpoint(tmp_path / "c.npz", target)
    assert_same(snapshot(target), before)


# ---- hostile and faulty files: modes, leftovers, malformed documents, bombs ------------------------
def test_a_new_checkpoint_honours_the_umask(tmp_path):
    model, opt = trained()
    old = os.umask(0o077)
    try:
        save_checkpoint(tmp_path / "private.npz", model, opt)
    finally:
        os.umask(old)
    assert (tmp_path / "private.npz").stat().st_mode & 0o777 == 0o600
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "shared.npz", model, opt)
    finally:
        os.umask(old)
    assert (tmp_path / "shared.npz").stat().st_mode & 0o777 == 0o644


def test_saving_over_a_checkpoint_keeps_its_mode(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    (tmp_path / "c.npz").chmod(0o600)
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.npz", model, opt, epoch=2)
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o600, "an existing 0600 file must not be widened"


KILLED_SAVE = """
import os, signal, sys
sys.path.insert(0, {root!r})
import numpy as np
from tinytorch.nn import Linear
from tinytorch.training import checkpoint, save_checkpoint

def die(file, **entries):
    file.write(b"PK" + b"\\0" * 100000)             # half a checkpoint, then the process is killed
    file.flush()
    os.kill(os.getpid(), signal.{signal})
checkpoint.np.savez = die
save_checkpoint({path!r}, Linear(3, 2))
"""


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_the_temporary_a_killed_save_leaves_is_removed_by_the_next_save(tmp_path, signal_name):
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    path = tmp_path / "run.ckpt.npz"
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", KILLED_SAVE.format(root=root, path=str(path), signal=signal_name)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode < 0, done.stderr
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    # the second killed save already removed the first one's temporary: only its own is left
    assert len(leftovers) == 1 and leftovers[0].startswith(".run.ckpt.npz.") and leftovers[0].endswith(".tmp")
    other = tmp_path / ".other.npz.12345.abcdefgh.tmp"             # another target's temporary is not ours
    other.write_bytes(b"x")
    model, opt = trained()
    save_checkpoint(path, model, opt)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, other.name])


def test_a_live_writers_temporary_is_left_alone(tmp_path):
    import subprocess
    import sys

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".c.npz.{sleeper.pid}.abcdefgh.tmp"
        live.write_bytes(b"being written")
        model, opt = trained()
        save_checkpoint(tmp_path / "c.npz", model, opt)
        assert live.exists(), "a temporary whose process is alive belongs to a save in progress"
    finally:
        sleeper.kill()
        sleeper.wait()


def rebuild(path, edit=None, entries=None, compression=zipfile.ZIP_STORED):
    """Rewrite a saved checkpoint with its document edited by `edit(document)` and extra/replaced entries."""
    with zipfile.ZipFile(path) as z:
        arrays = {name[:-4]: np.lib.format.read_array(z.open(name)) for name in z.namelist()}
    document = json.loads(arrays.pop("checkpoint.json").tobytes())
    if edit is not None:
        edit(document)
    arrays.update(entries or {})
    arrays["checkpoint.json"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    path.unlink()
    with zipfile.ZipFile(path, "w", compression) as z:
        for key, array in arrays.items():
            with z.open(key + ".npy", "w") as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def _set(path, value):
    def edit(document):
        *where, last = path
        target = document
        for key in where:
            target = target[key]
        target[last] = value
    return edit


MALFORMED = {
    "shape is a string": _set(["arrays", "model/0.weight", "shape"], "abc"),
    "shape has a negative size": _set(["arrays", "model/0.weight", "shape"], [-16, 4]),
    "dtype is an object": _set(["arrays", "model/0.weight", "dtype"], "|O"),
    "dtype is not a dtype": _set(["arrays", "model/0.weight", "dtype"], 7),
    "arrays is a list": _set(["arrays"], []),
    "model names are numbers": _set(["model"], [1, 2]),
    "metadata is a list": _set(["metadata"], [1]),
    "a tuple marker holds a number": _set(["metadata", "epoch"], {"__tuple__": 5}),
    "an items marker holds a pair of one": _set(["metadata", "epoch"], {"__items__": [[1]]}),
    "an items key is unhashable": _set(["metadata", "epoch"], {"__items__": [[[1], 2]]}),
    "an array marker names a number": _set(["metadata", "epoch"], {"__array__": 5}),
    "the document is a list": lambda document: (document.clear(), document.update({"x": 1})) and None,
}


@pytest.mark.parametrize("what", list(MALFORMED))
def test_a_malformed_document_raises_checkpoint_error_and_changes_nothing(tmp_path, what):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt, epoch=1)
    rebuild(tmp_path / "c.npz", MALFORMED[what])
    target, target_opt = trained(seed=5)
    before = snapshot(target, target_opt)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "c.npz", target, target_opt)
    assert "\n" not in str(err.value)
    assert_same(snapshot(target, target_opt), before)


BAD_SETTINGS = {
    "lr is text": ("lr", "abc"),
    "lr is NaN": ("lr", float("nan")),
    "momentum is a list": ("momentum", [0.9]),
    "nesterov is a number": ("nesterov", 1),
    "an unknown setting": ("bogus", 1.0),
}


@pytest.mark.parametrize("what", list(BAD_SETTINGS))
def test_optimizer_settings_of_the_wrong_type_are_refused_at_load_time(tmp_path, what):
    key, value = BAD_SETTINGS[what]
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    rebuild(tmp_path / "c.npz", _set(["optimizer", "param_groups", 0, key], value))
    target, target_opt = trained(seed=5)
    before = snapshot(target, target_opt)
    with pytest.raises(CheckpointError, match=key) as err:
        load_checkpoint(tmp_path / "c.npz", target, target_opt)
    assert "\n" not in str(err.value)
    assert_same(snapshot(target, target_opt), before)
    target_opt.step()                                          # the optimizer still works


def test_an_npy_header_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    with zipfile.ZipFile(tmp_path / "c.npz") as z:
        arrays = {n[:-4]: np.lib.format.read_array(z.open(n)) for n in z.namelist()}
    (tmp_path / "c.npz").unlink()
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as z:
        for key, array in arrays.items():
            with z.open(key + ".npy", "w") as f:
                if key == "model/0.weight":
                    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                             "shape": (200000, 200000)})
                    f.write(array.tobytes())
                else:
                    np.lib.format.write_array(f, array)
    with pytest.raises(CheckpointError, match=r"declares \(200000, 200000\)"):
        load_checkpoint(tmp_path / "c.npz", mlp())


def test_a_decompression_bomb_is_refused(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    n = 200 << 20                                              # 200 MiB of zeros: about 200 KB deflated
    rebuild(tmp_path / "c.npz", _set(["arrays", "metadata/blob"], {"shape": [n], "dtype": "|u1"}))
    with zipfile.ZipFile(tmp_path / "c.npz", "a", zipfile.ZIP_DEFLATED) as z:
        with z.open("metadata/blob.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n,)})
            zeros = bytes(1 << 20)
            for _ in range(n >> 20):
                f.write(zeros)
    assert (tmp_path / "c.npz").stat().st_size < 2 << 20
    with pytest.raises(CheckpointError, match="decompression bomb"):
        load_checkpoint(tmp_path / "c.npz", mlp())


def test_a_deflated_checkpoint_within_the_limit_still_loads(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt, epoch=4)
    rebuild(tmp_path / "c.npz", compression=zipfile.ZIP_DEFLATED)
    target, target_opt = trained(seed=5)
    assert load_checkpoint(tmp_path / "c.npz", target, target_opt) == {"epoch": 4}


def test_an_unknown_compression_method_is_refused_in_one_line(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    rebuild(tmp_path / "c.npz", compression=zipfile.ZIP_LZMA)
    with pytest.raises(CheckpointError, match="compression method 14") as err:
        load_checkpoint(tmp_path / "c.npz", mlp())
    assert "\n" not in str(err.value)


def test_an_encrypted_entry_is_refused_in_one_line(tmp_path):
    model, opt = trained()
    save_checkpoint(tmp_path / "c.npz", model, opt)
    data = bytearray((tmp_path / "c.npz").read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):   # local and central headers
        i = data.find(signature)
        while i != -1:
            data[i + flag_offset] |= 0x01
            i = data.find(signature, i + 4)
    (tmp_path / "c.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="encrypted") as err:
        load_checkpoint(tmp_path / "c.npz", mlp())
    assert "\n" not in str(err.value)


BAD_TRAINER_STATE = {
    "rng is text": (["metadata", "trainer", "rng"], "abc"),
    "epoch is negative": (["metadata", "trainer", "epoch"], -1),
    "history is a number": (["metadata", "trainer", "history"], 3),
    "stopped_early is text": (["metadata", "trainer", "stopped_early"], "no"),
    "a loader's generator state is bogus": (["metadata", "trainer", "loaders"], {"train": {"generators": {"rng": 1}}}),
    "the scheduler state has the wrong keys": (["metadata", "trainer", "scheduler"], {"bogus": 1}),
}


@pytest.mark.parametrize("what", list(BAD_TRAINER_STATE))
def test_trainer_load_refuses_a_malformed_trainer_state_before_changing_anything(tmp_path, what):
    where, value = BAD_TRAINER_STATE[what]
    first, train, val = make_run(checkpoint_dir=tmp_path, scheduler=True)
    first.fit(train, val, epochs=1)
    rebuild(tmp_path / "last.npz", _set(where, value))
    trainer, _, _ = make_run(scheduler=True)
    before = snapshot(trainer.model, trainer.optimizer)
    rng = init.generator().bit_generator.state
    with pytest.raises(CheckpointError, match="malformed trainer state") as caught:
        trainer.load(tmp_path / "last.npz")
    assert "\n" not in str(caught.value)
    assert_same(snapshot(trainer.model, trainer.optimizer), before)
    assert init.generator().bit_generator.state == rng and trainer.epoch == 0
