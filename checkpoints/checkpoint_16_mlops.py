"""Checkpoint 16 (mlops): Can I deploy and monitor ML systems in production?

Passing means a trained model can leave the process that trained it: it is
saved as one file that another Python process loads, without pickle and
without the training code, into a model that gives the same answers; damaged
or edited files are refused with a clear error; a Predictor serves requests in
batches with the answers of one big call and reports latency percentiles; a
drift monitor stays quiet on data like the training data and names the feature
that moved; and int8 quantization and magnitude pruning shrink the model while
keeping its accuracy.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from _harness import main

import tinytorch
from tinytorch import Tensor, manual_seed, no_grad
from tinytorch.deploy import (DriftMonitor, ModelFormatError, Predictor, QuantizedLinear, build_model, ks_2samp,
                              load_model, model_info, prune_magnitude, psi, quantize_model, save_model, sparsity)
from tinytorch.nn.functional import log_softmax

CONFIG = {"architecture": "mlp", "sizes": [8, 32, 3]}
WORKDIR = Path(tempfile.mkdtemp(prefix="checkpoint-14-"))
atexit.register(shutil.rmtree, WORKDIR, ignore_errors=True)


def _data(n, seed):
    """Three classes decided by x0 + x1 and x2; features 3..7 are noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = np.where(x[:, 0] + x[:, 1] > 0.5, 0, np.where(x[:, 2] > 0, 1, 2))
    return x, y


def _accuracy(model, x, y):
    with no_grad():
        return float((model(Tensor(x)).data.argmax(1) == y).mean())


def _trained():
    manual_seed(0)
    model = build_model(CONFIG)
    x, y = _data(1500, 1)
    onehot = np.eye(3, dtype=np.float32)[y]
    rng = np.random.default_rng(0)
    for lr in [0.3] * 8 + [0.05] * 4:
        order = rng.permutation(len(x))
        for start in range(0, len(x), 50):
            idx = order[start:start + 50]
            loss = -(log_softmax(model(Tensor(x[idx]))) * Tensor(onehot[idx])).sum(dim=1).mean()
            model.zero_grad()
            loss.backward()
            with no_grad():
                for p in model.parameters():
                    p.data -= lr * p.grad.data
    return model


X_TEST, Y_TEST = _data(1000, 2)
MODEL = FLOAT_ACCURACY = PATH = None


def check_a_trained_model_is_saved_as_one_file():
    """A small MLP trained here classifies held-out data well and save_model writes it as one file."""
    global MODEL, FLOAT_ACCURACY, PATH
    MODEL = _trained()
    FLOAT_ACCURACY = _accuracy(MODEL, X_TEST, Y_TEST)
    assert FLOAT_ACCURACY > 0.9, f"test accuracy {FLOAT_ACCURACY:.1%}; training the checkpoint's MLP failed"
    PATH = save_model(WORKDIR / "model.ttm", MODEL, CONFIG, "1.0.0", input_shape=(8,), class_names=["a", "b", "c"])
    assert PATH.is_file(), "save_model wrote no file"


def check_another_process_loads_the_file_and_gives_the_same_answers():
    """A fresh Python process loads the saved file (no pickle, no training code) and predicts identically."""
    np.save(WORKDIR / "x.npy", X_TEST)
    script = (
        "import sys, numpy as np\n"
        "from tinytorch import Tensor\n"
        "from tinytorch.deploy import load_model\n"
        "model = load_model(sys.argv[1])\n"
        "assert not model.training, 'the loaded model is not in eval mode'\n"
        "np.save(sys.argv[3], model(Tensor(np.load(sys.argv[2]))).data)\n"
    )
    package_root = str(Path(tinytorch.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=package_root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", script, str(PATH), str(WORKDIR / "x.npy"), str(WORKDIR / "out.npy")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"load_model failed in a fresh process: {run.stderr.strip().splitlines()[-1:]}"
    with no_grad():
        expected = MODEL(Tensor(X_TEST)).data
    assert np.array_equal(np.load(WORKDIR / "out.npy"), expected), "the reloaded model's outputs differ from the original's"
    info = model_info(PATH)
    assert info["model_version"] == "1.0.0" and info["input_shape"] == [None, 8], f"model.json records {info}"
    with zipfile.ZipFile(PATH) as archive:
        assert sorted(archive.namelist()) == ["model.json", "weights.npz"], archive.namelist()


def check_damaged_or_edited_files_are_refused():
    """A file cut short, with a flipped byte, or with other weights than its checksum says is refused clearly."""
    data = PATH.read_bytes()
    cut, flipped, swapped = WORKDIR / "cut.ttm", WORKDIR / "flipped.ttm", WORKDIR / "swapped.ttm"
    cut.write_bytes(data[: len(data) // 2])
    flipped.write_bytes(data[:-150] + bytes([data[-150] ^ 0xFF]) + data[-149:])
    other = WORKDIR / "other.ttm"
    manual_seed(1)
    save_model(other, build_model(CONFIG), CONFIG)
    with zipfile.ZipFile(PATH) as good, zipfile.ZipFile(other) as bad, zipfile.ZipFile(swapped, "w") as out:
        out.writestr("model.json", good.read("model.json"))
        out.writestr("weights.npz", bad.read("weights.npz"))
    for path, word in [(cut, "damaged"), (flipped, "damaged"), (swapped, "checksum")]:
        try:
            load_model(path)
        except ModelFormatError as err:
            assert word in str(err) and "\n" not in str(err), f"{path.name}: unclear error: {err}"
        else:
            raise AssertionError(f"{path.name} loaded although it is damaged; load_model must verify the file")


def check_a_predictor_batches_requests_without_changing_answers():
    """Predictor in batches of 16 answers like one call of the model, and reports p50 <= p95 latency."""
    predictor = Predictor.from_file(PATH, batch_size=16)
    got = predictor.predict(X_TEST[:100])
    assert got.shape == (100, 3), f"Predictor returned outputs of shape {got.shape} for 100 requests of 3 classes"
    with no_grad():
        expected = MODEL(Tensor(X_TEST[:100])).data
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-6), "batched answers differ from one call of the model"
    stats = predictor.latency_stats()
    assert stats["requests"] == 100 and stats["batches"] == 7, f"expected 100 requests in 7 batches, got {stats}"
    assert 0 < stats["p50_ms"] <= stats["p95_ms"], f"latency percentiles are not ordered: {stats}"
    try:
        predictor.predict(np.zeros((2, 7), np.float32))
    except ValueError:
        pass
    else:
        raise AssertionError("a request with 7 features was accepted by a model of 8")


def check_drift_statistics_and_the_monitor():
    """PSI and KS give the hand-computed values; the monitor is quiet on 20 fresh batches and names a shifted feature."""
    value = psi([0.0] * 50 + [1.0] * 50, [0.0] * 25 + [1.0] * 75, bins=[0.5])
    assert abs(value - 0.2747) < 1e-3, f"PSI of (0.5, 0.5) -> (0.25, 0.75) is 0.2747, got {value:.4f}"
    d, _ = ks_2samp([1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8])
    assert d == 0.5, f"the KS statistic of the hand example is 0.5, got {d}"
    x_train, _ = _data(1500, 1)
    monitor = DriftMonitor(x_train)
    for seed in range(20):
        report = monitor.check(_data(600, 100 + seed)[0])
        assert not report.drift_detected, f"false alarm on fresh data (batch {seed}): {report.drifted_features}"
    fresh, y_fresh = _data(600, 3)
    moved = fresh.copy()
    moved[:, 2] += 1.5
    report = monitor.check(moved)
    assert report.drifted_features == ["x2"], f"expected drift in x2 only, the monitor reports {report.drifted_features}"
    assert _accuracy(MODEL, moved, y_fresh) < _accuracy(MODEL, fresh, y_fresh) - 0.1, \
        "shifting x2 should cost accuracy (the data, not the monitor, is wrong)"


def check_int8_quantization_shrinks_the_model_and_keeps_its_accuracy():
    """int8 weights are 4x smaller, keep accuracy within one point, and survive save/load."""
    q = quantize_model(MODEL)
    layers = [layer for layer in q if isinstance(layer, QuantizedLinear)]
    assert len(layers) == 2, f"expected both Linear layers quantized, found {len(layers)}"
    float_bytes = sum(layer.weight.data.nbytes for layer in MODEL if hasattr(layer, "weight"))
    int8_bytes = sum(layer.weight_q.data.nbytes for layer in layers)
    assert int8_bytes * 4 == float_bytes, f"int8 weights take {int8_bytes} bytes, float32 {float_bytes}"
    q_accuracy = _accuracy(q, X_TEST, Y_TEST)
    assert q_accuracy >= FLOAT_ACCURACY - 0.01, f"int8 accuracy {q_accuracy:.1%} vs float {FLOAT_ACCURACY:.1%}"
    path = save_model(WORKDIR / "int8.ttm", q, CONFIG, "1.0.0-int8")
    with no_grad():
        assert np.array_equal(load_model(path)(Tensor(X_TEST)).data, q(Tensor(X_TEST)).data), \
            "the reloaded int8 model answers differently"


def check_magnitude_pruning_is_exact_and_keeps_accuracy():
    """Pruning half the weights zeroes exactly half, removes the smallest, and keeps accuracy within two points."""
    pruned = build_model(CONFIG)
    pruned.load_state_dict(MODEL.state_dict())
    magnitudes = np.concatenate([np.abs(layer.weight.data).ravel() for layer in pruned if hasattr(layer, "weight")])
    prune_magnitude(pruned, 0.5)
    assert sparsity(pruned) == 0.5, f"sparsity after pruning half: {sparsity(pruned)}"
    kept = np.concatenate([layer.weight.data.ravel() for layer in pruned if hasattr(layer, "weight")]) != 0
    assert magnitudes[~kept].max() <= magnitudes[kept].min(), "pruning removed a weight larger than one it kept"
    accuracy = _accuracy(pruned, X_TEST, Y_TEST)
    assert accuracy >= FLOAT_ACCURACY - 0.02, f"accuracy fell from {FLOAT_ACCURACY:.1%} to {accuracy:.1%} at 50% sparsity"
    json.dumps(model_info(PATH))                     # the description stays plain JSON


if __name__ == "__main__":
    main(globals())
