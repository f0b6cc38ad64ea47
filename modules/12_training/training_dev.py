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
"""
# Training: the loop, checkpoints, and runs you can resume

Chapters 02 to 11 built every piece a neural network needs: tensors, layers,
losses, gradients, optimizers and batches of data. Training puts them in a loop:

```python
for epoch in range(epochs):
    for inputs, targets in train_loader:
        loss = loss_fn(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
```

Five lines, and they work. Yet the training code of any real project is
hundreds or thousands of lines, because a run that matters lasts hours or
weeks, and around those five lines sit the questions that decide whether the
run is worth anything:

- **Is it working?** The training loss going down says the model fits the data
  it sees. Whether it will be right on data it has *not* seen needs a held-out
  validation set, metrics such as accuracy, and a per-class view (a confusion
  matrix) that a single number hides.
- **What happens when it dies?** Machines are preempted, jobs hit their time
  limit, a process runs out of memory on the one batch with the longest
  sequences. A long run *will* be interrupted, so it must save its state to a
  file (a *checkpoint*) and continue from it. Published logbooks of large
  training runs, such as Meta's for OPT-175B, read largely as a list of
  restarts from checkpoints.
- **Is a resumed run the same run?** If continuing from a checkpoint gives
  different weights than never stopping would have, a crash silently changes
  your results and no bug can be reproduced. Getting this exactly right is a
  question of *state*: everything that determines the rest of the run must be
  in the file, including the state of every random number generator.
- **When should it stop, and which weights should it keep?** Past some epoch
  the model starts memorising its training set and the validation loss rises.
  *Early stopping* notices, stops, and goes back to the best weights seen.

This chapter builds `tinytorch.training`, the layer that answers them:

| piece | what it does | counterpart elsewhere |
| --- | --- | --- |
| `accuracy`, `compute_confusion_matrix`, `evaluate_model` | metrics, and a full evaluation pass without a graph | `torchmetrics`, `sklearn.metrics.confusion_matrix` |
| `save_checkpoint`, `load_checkpoint`, `CheckpointError` | one `.npz` file with weights, optimizer state and metadata; no pickle; atomic; validated before anything is loaded | `torch.save`/`torch.load`, safetensors |
| `Trainer`, `History` | the loop with progress, validation, checkpoints, early stopping and exact resume | PyTorch Lightning's `Trainer`, Keras' `fit`, Hugging Face's `Trainer` |
| `plot_training_history`, `plot_confusion_matrix` | the two plots you look at after every run | TensorBoard, Weights & Biases |

PyTorch itself has no `Trainer`: it leaves the loop to you, and libraries
built on top of it supply one. We build ours on exactly the interfaces
PyTorch's ecosystem uses (`zero_grad`, `step`, `state_dict`,
`load_state_dict`), so it trains any tinytorch model with any tinytorch
optimizer. Then we measure where an epoch's time goes, what a checkpoint
costs in bytes and seconds, and what a resumed run gets wrong if any piece of
state is missing from the file.
"""

# %% [markdown]
"""
## Background

### The loop and what it costs

One pass over the training set is an **epoch**. With `N` samples in batches
of `B`, an epoch is `N/B` **steps**, and each step does three things:

1. **forward**: compute the outputs and the loss, recording the graph
   (chapter 09). For a network whose forward pass costs `F` FLOPs per sample,
   this is `B·F` FLOPs.
2. **backward**: walk the graph in reverse. Every matrix product `Y = X W`
   of the forward pass needs two products backward (`dX = dY Wᵀ` and
   `dW = Xᵀ dY`), so backward costs about `2·B·F`: a training step is about
   three forward passes' worth of arithmetic.
3. **optimizer step**: update every one of the `P` parameters, a few
   elementwise operations each: `O(P)` per step, independent of `B`.

So an epoch costs about `3·N·F` FLOPs plus `(N/B)·c·P` for the optimizer,
and a validation pass over `N_val` samples costs `N_val·F` more (forward
only, and without recording a graph: chapter 09's `no_grad`). The formula
leaves out what a small model in Python spends most of its time on, the
fixed cost of each call; we will measure it.

### Why a validation set, and what early stopping does

The training loss measures how well the model fits the samples it is trained
on. The quantity we care about is the loss on samples it has never seen, and
the two diverge as soon as the model has enough capacity to memorise: the
training loss keeps falling while the loss on new data levels off and then
rises. A **validation set**, held out from training, estimates the loss on new
data. Because we *use* it (to decide when to stop and which weights to keep),
it becomes slightly optimistic, so final numbers are reported on a third,
untouched **test set**.

**Early stopping** with patience `k` watches the validation loss after every
epoch, remembers the best value and the weights that produced it, and stops
once `k` epochs in a row have not improved on it; then it puts the best
weights back. Its cost is one copy of the weights (`P` numbers) and its
benefit is every epoch it does not run.

### Metrics: accuracy hides what the confusion matrix shows

For a classifier with `C` classes, the **confusion matrix** `M` counts, for
every true class `i` and predicted class `j`, how many samples of class `i`
the model labelled `j`. Its diagonal holds the correct answers, so

    accuracy = trace(M) / sum(M)        per-class accuracy_i = M[i, i] / Σ_j M[i, j]

Accuracy is one number: 90% can mean every class at 90%, or nine classes
perfect and one always wrong. The rows of `M` tell them apart, and the
off-diagonal cells say *which* classes are mistaken for which, which is
usually the first clue to what the model has not learned. Building `M` is
one pass over the predictions: `O(N + C²)`.

### What a checkpoint must contain

A checkpoint is everything that determines the rest of the run:

| state | size | what goes wrong without it |
| --- | --- | --- |
| weights (and buffers, e.g. BatchNorm statistics) | `P` numbers | everything |
| optimizer state | 0 for plain SGD, `P` with momentum, `2P` for Adam, plus step counts | the first steps after resuming move differently (momentum restarts from zero; Adam's bias correction restarts) |
| learning-rate scheduler | a few numbers | the schedule starts over |
| epoch counter, history, best validation loss, patience counter | a few numbers per epoch | early stopping and the curves start over |
| random generators: tinytorch's (dropout, initialisation) and the loader's (shuffling) | a few integers each | different batches and dropout masks: a different run |

With Adam, a resumable checkpoint is three times the size of the weights:
for GPT-2 small (124M parameters) in float32, 0.5 GB of weights become about
1.5 GB of checkpoint.

### A file format that cannot hurt you

PyTorch's `torch.save` writes Python's `pickle` format, and unpickling can run
arbitrary code: loading a checkpoint from the internet used to mean trusting
its author with your machine. (Since PyTorch 2.6, `torch.load` refuses
anything but tensors and plain containers unless told otherwise.) We use a
format that holds only data:

- an **`.npz` file**, which is a zip archive of `.npy` files: each `.npy` is a
  short text header (dtype, shape, memory order) followed by the raw bytes of
  the array. The zip layer adds a CRC-32 checksum per entry, so a flipped bit
  is detected when the entry is read. `np.load(..., allow_pickle=False)`
  refuses object arrays, the one way pickle could sneak in.
- a **JSON document** stored as one more entry (its UTF-8 bytes as a `uint8`
  array) with a format version, the tinytorch version, the name, shape and
  dtype of every array, the structure of the optimizer state, and the
  caller's metadata.

Two more properties matter when a crash can happen at any moment:

- **Atomic writes.** Writing a 1.5 GB file takes seconds; a crash halfway
  leaves half a file. So we write to a temporary file *in the same folder*,
  flush it to disk, and `os.replace` it over the old checkpoint. On POSIX
  systems a rename within one filesystem is atomic: a reader sees the old
  file or the new one, never a mix. (Across filesystems a "rename" is a copy,
  which is why the temporary file must be in the same folder.)
- **Validate, then copy.** Loading reads the whole file and checks the format
  version, every name and every shape *before* writing a single number into
  the model. A model that is half old weights and half new is worse than an
  error, because it runs and produces plausible garbage.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp training.trainer

# %% [markdown]
"""
## Implementation

### What the loop trains with

The loop calls four things it does not build: the **model** (chapter 04's
`Module`), a **loss** (chapter 05's `CrossEntropyLoss`), an **optimizer**
(chapter 10's `SGD`) and a **loader** (chapter 11's `DataLoader`). It relies
only on their interfaces:

- model: `model(inputs) -> outputs`, `train()`/`eval()`, `state_dict()`/`load_state_dict()`;
- loss: `loss_fn(outputs, targets) -> scalar Tensor`, averaged over the batch;
- optimizer: `zero_grad()`, `step()`, `state_dict()`/`load_state_dict()`, and,
  if it has them, PyTorch's `param_groups` (to record the learning rate);
- loader: any iterable of `(inputs, targets)` batches with a `len()`: a
  `DataLoader`, or just a Python list of batches.

The next cell imports them. For each one it also holds a minimal version with
the same interface, used only when the package it runs against lacks that
chapter, so that this chapter runs on its own.
"""

# %%
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from tinytorch import Tensor, manual_seed, no_grad
from tinytorch.nn import init
from tinytorch.nn import Linear, Module, Parameter, ReLU, Sequential
from tinytorch.nn.functional import log_softmax

from tinytorch.nn import CrossEntropyLoss

from tinytorch.optim import SGD

from tinytorch.data import DataLoader, TensorDataset

print("loss:", CrossEntropyLoss.__module__, "| optimizer:", SGD.__module__, "| loader:", DataLoader.__module__)

# %% [markdown]
"""
### Metrics

`accuracy` compares the index of each row's largest output with the target
class. `compute_confusion_matrix` counts (true, predicted) pairs with a
single `np.bincount`: the pair `(i, j)` becomes the number `i·C + j`, so
counting those numbers and reshaping to `(C, C)` gives the matrix in one
vectorised pass. Both take Tensors or arrays; neither needs a gradient, so
they work on `.data` directly. These cells export to
`tinytorch.training.metrics`.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_accuracy", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export training.metrics
import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor


def as_numpy(x) -> np.ndarray:
    """The values of a Tensor or anything array-like, as a NumPy array (no copy when possible)."""
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def batch_size_of(inputs, targets) -> int:
    """Samples in a batch: the length of the targets (or of the inputs when targets are scalars)."""
    targets = as_numpy(targets)
    return int(targets.shape[0]) if targets.ndim else int(as_numpy(inputs).shape[0])


def accuracy(outputs, targets) -> float:
    """Fraction of rows whose largest output is the target class: outputs (N, C), targets (N,)."""
    outputs, targets = as_numpy(outputs), as_numpy(targets)
    if outputs.ndim != 2 or targets.shape != outputs.shape[:1]:
        raise ValueError(f"accuracy needs outputs of shape (N, C) and class targets of shape (N,), got "
                         f"{outputs.shape} and {targets.shape}; for regression pass metrics=()")
    return float(np.mean(outputs.argmax(axis=1) == targets))


def compute_confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """counts[i, j] = how many samples of true class i were predicted as class j.

    Args: y_true, y_pred: integer class indices (Tensors or arrays of any shape, flattened); num_classes: C.
    Returns: an integer array (C, C) whose entries add up to the number of samples.
    """
    # One vectorised pass: the pair (i, j) becomes the number i * C + j (in int64); np.bincount with
    # minlength=C * C counts every such number, and reshape(C, C) turns the counts into the matrix.
    # Refuse bad input first, each with a message that says what to do: different lengths (ValueError),
    # float labels (TypeError: take argmax of the outputs first), a label outside 0..C-1 (ValueError);
    # bincount would otherwise miscount them silently or fail with a message about bins.
    ### BEGIN SOLUTION
    y_true = as_numpy(y_true).reshape(-1)
    y_pred = as_numpy(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"compute_confusion_matrix: {y_true.size} true labels but {y_pred.size} predictions; "
                         "pass one prediction per sample")
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"compute_confusion_matrix: {name} must hold integer class indices, not {labels.dtype}; "
                            "take argmax of the outputs first")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"compute_confusion_matrix: {name} holds class {labels.min() if labels.min() < 0 else labels.max()}"
                             f" outside 0..{num_classes - 1}; pass the right num_classes")
    flat = y_true.astype(np.int64) * num_classes + y_pred.astype(np.int64)   # one bin per (true, predicted) pair
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    ### END SOLUTION

# %% [markdown]
"""
### Unit test: accuracy and the confusion matrix

A hand-sized example whose matrix we can write down: six samples, one of
class 0 predicted as 1 and one of class 1 predicted as 0. The test checks
every cell, that the matrix accounts for every sample once, that `accuracy`
agrees with the diagonal, and that mismatched inputs raise instead of
producing a matrix of the wrong size.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_confusion_matrix", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_confusion_matrix():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 2])
    cm = compute_confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]], cm
    assert cm.sum() == len(y_true) and np.trace(cm) == 4
    logits = np.eye(3)[y_pred] * 5.0                       # one-hot logits that predict y_pred
    assert accuracy(logits, y_true) == 4 / 6
    for bad in (lambda: compute_confusion_matrix(y_true, y_pred, 2),     # class 2 does not exist
                lambda: compute_confusion_matrix(y_true, y_pred[:3], 3),  # lengths differ
                lambda: accuracy(logits[:, 0], y_true)):                  # not (N, C) outputs
        try:
            bad()
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("a wrong input was accepted")
    print("confusion matrix and accuracy: OK")


test_unit_confusion_matrix()

# %% [markdown]
"""
### Evaluating a model

`evaluate_model` runs a model over a whole loader and reports the loss,
accuracy, per-class accuracy and the confusion matrix. Two details make it
correct rather than approximately correct:

- **Mode and graph.** It switches the model to `eval()` (chapter 13's dropout
  and chapter 08's BatchNorm behave differently there) and runs under
  `no_grad()`, so no graph is recorded: evaluation needs no backward pass, and
  the graph would hold every intermediate array in memory until the batch
  ends. Afterwards it puts the model back in the mode it found it in.
- **Weighting.** A loss with `reduction="mean"` averages over *its batch*.
  The last batch of an epoch is often smaller, so averaging the batch losses
  would over-weight its samples. We multiply each batch's loss by its size
  and divide by the total: the per-sample mean over the whole set.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_evaluate_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export training.metrics
def evaluate_model(model, loader, loss_fn, num_classes: int | None = None) -> dict:
    """Loss, accuracy, per-class accuracy and confusion matrix of a classifier over a loader.

    Runs in eval mode (dropout off, normalisation on running statistics) without recording a
    graph, then puts the model back in the mode it was in. `loss_fn` must average over the batch
    (reduction="mean"); batches are weighted by their size, so the numbers are per sample.
    Returns a dict: loss, accuracy, per_class_accuracy (NaN for a class with no samples),
    confusion_matrix, num_samples.
    """
    # Remember model.training, call model.eval(), and give the mode back in a `finally`, even after an error.
    # Under no_grad(), for each (inputs, targets): outputs = model(as_tensor(inputs)), (N, C); add
    # loss_fn(outputs, targets).item() * n, with n = batch_size_of(inputs, targets); keep the targets and the
    # predictions outputs.data.argmax(axis=-1), flattened. No samples at all: ValueError.
    # Then one confusion matrix over everything (num_classes, or outputs.shape[-1] when None); per-class
    # accuracy = diagonal / row sums, NaN for an empty row (np.where under np.errstate).
    ### BEGIN SOLUTION
    was_training = model.training
    model.eval()
    total_loss, count, trues, preds = 0.0, 0, [], []
    try:
        with no_grad():
            for inputs, targets in loader:
                outputs = model(as_tensor(inputs))                 # (N, C) logits
                n = batch_size_of(inputs, targets)
                total_loss += float(loss_fn(outputs, targets).item()) * n
                count += n
                trues.append(as_numpy(targets).reshape(-1))
                preds.append(outputs.data.argmax(axis=-1).reshape(-1))
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate_model: the loader yielded no samples")
    classes = num_classes if num_classes is not None else outputs.shape[-1]
    cm = compute_confusion_matrix(np.concatenate(trues), np.concatenate(preds), classes)
    support = cm.sum(axis=1)                                          # samples of each true class
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / support, np.nan)
    return {"loss": total_loss / count, "accuracy": float(np.trace(cm) / count),
            "per_class_accuracy": per_class, "confusion_matrix": cm, "num_samples": count}
    ### END SOLUTION

# %% [markdown]
"""
### Unit test: evaluate_model

A "model" whose logits are its inputs gives predictions we choose: six
samples in two batches of unequal size (4 and 2), with class 0 right twice
out of three, class 1 right both times, class 2 wrong, and a class 3 that
never appears. The test checks the per-class numbers (and NaN, not a
division-by-zero warning, for the absent class), that the loss equals the
per-sample mean over all six (not the mean of the two batch means), and that
the model ran in eval mode without recording a graph.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_evaluate_model", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
class GivenLogits(Module):
    """A model with no parameters whose outputs are its inputs, to test evaluation with known predictions."""

    def forward(self, x):
        self.seen = (self.training, x.requires_grad)
        return x * 1.0


def test_unit_evaluate_model():
    predicted = [0, 0, 1, 1, 1, 0]
    targets = np.array([0, 0, 0, 1, 1, 2])
    X = np.eye(4, dtype=np.float32)[predicted] * 3.0          # (6, 4): logits that pick `predicted`
    batches = [(Tensor(X[:4]), targets[:4]), (Tensor(X[4:]), targets[4:])]
    model, loss_fn = GivenLogits(), CrossEntropyLoss()
    result = evaluate_model(model, batches, loss_fn)
    assert result["num_samples"] == 6 and result["accuracy"] == 4 / 6
    assert np.allclose(result["per_class_accuracy"][:3], [2 / 3, 1.0, 0.0])
    assert np.isnan(result["per_class_accuracy"][3]), "a class with no samples has no accuracy"
    per_sample = float(loss_fn(Tensor(X), targets).item())
    assert abs(result["loss"] - per_sample) < 1e-6, (result["loss"], per_sample)
    assert model.seen == (False, False), "evaluation must run in eval mode without a graph"
    assert model.training, "evaluate_model must give the model back in the mode it found it"
    print("evaluate_model: OK")


test_unit_evaluate_model()

# %% [markdown]
"""
### Checkpoints

Saving flattens everything into two kinds of content: arrays, which go into
the `.npz` under names that say where they came from, and a JSON document
that holds the structure. The model's `state_dict()` (chapter 04) is already
a flat mapping from dotted names to arrays, so its entries become
`model/<name>`. An optimizer's `state_dict()` is a nested structure (in
PyTorch's layout, `{"state": {0: {"momentum_buffer": array}, ...},
"param_groups": [{"lr": 0.1, "params": [0, 1, ...]}]}`), and so is the
caller's metadata (`epoch=3, history={...}`). `_to_document` walks such a
structure, moves every array it meets into the `.npz` (as
`optimizer/state/0/momentum_buffer`) and leaves a marker
`{"__array__": "optimizer/state/0/momentum_buffer"}` in its place. JSON
cannot say "tuple" or "a dict whose keys are integers", so those get markers
too: loading must give back *exactly* the structure that was saved, or an
optimizer's `load_state_dict` will not recognise it.

Loading (`_read`, then `load_with_check`) checks, in this order, before changing
anything: the file is a zip; it holds a `checkpoint.json` entry; the format
and version are ours; every field of the document has the type it should
(a shape is a list of sizes, a dtype a numeric one, the metadata a mapping);
the arrays in the file are exactly those the document lists, each with the
shape and dtype the document says; the model's names and shapes match the
file's. A file may come from anyone, so the arrays' sizes are checked
*before* any array exists: `np.load` allocates whatever an `.npy` header
declares and only then reads the data, so a 1 KB entry whose header says
`(200000, 200000)` would ask for 320 GB. `check_npy_entry` reads each header
on its own and requires the entry to hold exactly that many bytes; encrypted
entries and compression methods other than the two `np.savez` writes are
refused; and a file whose arrays would inflate to more than 16 times its own
size plus 64 MiB is refused as a possible decompression bomb (`np.savez`
stores arrays uncompressed, so a real checkpoint inflates by a factor of 1).
Reading each entry then verifies its CRC-32. The optimizer's settings must
have the types of the optimizer's own (`lr: "abc"` would load, then fail at
the first `step()`). Only then does it load the optimizer and the model. The
optimizer is the one piece whose compatibility we cannot fully check from
outside (its state layout is its own business), so we keep a copy of its
state and put it back if its `load_state_dict` refuses the file's. These
cells export to `tinytorch.training.checkpoint`.

`write_atomically` gives the new file the mode `open()` would (an existing
file's own mode, else `0o666` minus the umask) and first removes the
temporaries a killed save of the same file left behind (chapter 11's
`tinytorch.data.files`).
"""

# %% nbgrader={"grade": false, "grade_id": "impl_save_checkpoint", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export training.checkpoint
import copy
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.data.files import new_file_mode, remove_stale_temporaries, temporary_prefix

FORMAT = "tinytorch-checkpoint"
FORMAT_VERSION = 1
DOCUMENT = "checkpoint.json"     # the npz entry that holds the JSON document, as UTF-8 bytes
_MARKERS = ("__array__", "__tuple__", "__items__")


class CheckpointError(Exception):
    """A checkpoint that cannot be read, or that does not fit the model or optimizer; nothing was changed."""


def _to_document(value, name: str, arrays: dict):
    """A JSON-ready copy of `value`; every array in it moves into `arrays` under a key made from its path."""
    if isinstance(value, (Tensor, np.ndarray)):
        array = value.data if isinstance(value, Tensor) else value
        if array.dtype.hasobject:
            raise TypeError(f"save_checkpoint: {name} is an object array; only numeric arrays can be saved without pickle")
        key, n = name, 1
        while key in arrays:                                   # two paths that spell the same name
            key, n = f"{name}~{n}", n + 1
        arrays[key] = array
        return {"__array__": key, "tensor": True} if isinstance(value, Tensor) else {"__array__": key}
    if isinstance(value, np.generic):
        return value.item()                                    # np.float32(0.9) -> 0.9
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_to_document(v, f"{name}/{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_to_document(v, f"{name}/{i}", arrays) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not any(k in _MARKERS for k in value):
            return {k: _to_document(v, f"{name}/{k}", arrays) for k, v in value.items()}
        return {"__items__": [[_to_document(k, f"{name}/key{i}", arrays), _to_document(v, f"{name}/{k}", arrays)]
                              for i, (k, v) in enumerate(value.items())]}   # keys that are not strings (e.g. ints)
    raise TypeError(f"save_checkpoint: cannot store a {type(value).__name__} at {name}; "
                    "use numbers, strings, None, lists, tuples, dicts and arrays")


def _from_document(doc, arrays: dict):
    """Undo _to_document: the same nesting, types and arrays."""
    if isinstance(doc, list):
        return [_from_document(v, arrays) for v in doc]
    if isinstance(doc, dict):
        if "__array__" in doc:
            array = arrays[doc["__array__"]]
            return Tensor(array) if doc.get("tensor") else array
        if "__tuple__" in doc:
            return tuple(_from_document(v, arrays) for v in doc["__tuple__"])
        if "__items__" in doc:
            return {_from_document(k, arrays): _from_document(v, arrays) for k, v in doc["__items__"]}
        return {k: _from_document(v, arrays) for k, v in doc.items()}
    return doc


def write_atomically(path: Path, write) -> None:
    """Call write(file) on a temporary file in path's folder, then rename it over `path` in one step.

    Chapter 16 saves deployable models through this too: whatever writes the bytes, a reader
    (or a crash half-way) finds the old file or the new one, never a mix.
    """
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist; create it first")
    remove_stale_temporaries(folder, path.name)                # what a killed save of this file left behind
    mode = new_file_mode(path)                                 # an existing file's mode, else 0o666 minus the umask
    fd, temporary = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())                            # the bytes are on disk before the rename
        os.chmod(temporary, mode)
        os.replace(temporary, path)                            # atomic: readers see the old file or the new one
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(path, model, optimizer=None, **metadata) -> Path:
    """Write model state, optimizer state and metadata to one .npz file, atomically and without pickle.

    Metadata values may be numbers, strings, None, lists, tuples, dicts and arrays (epoch, history,
    seed, RNG states...). `load_checkpoint` gives them back.
    """
    # 1. arrays: every model.state_dict() entry as np.asarray under "model/<name>"; keep the list of names.
    # 2. document: "format" FORMAT, "format_version" FORMAT_VERSION, "tinytorch_version" tinytorch.__version__,
    #    "model" the names, "optimizer" _to_document(optimizer.state_dict(), "optimizer", arrays) (None without
    #    one), "metadata" _to_document(metadata, "metadata", arrays); _to_document moves arrays into `arrays`.
    # 3. document["arrays"] = {key: {"shape": list(a.shape), "dtype": a.dtype.str}} for every array (_read checks it).
    # 4. entries = {DOCUMENT: the JSON text's UTF-8 bytes as a uint8 array, **arrays}, written with
    #    write_atomically(path, lambda f: np.savez(f, allow_pickle=False, **entries)); return the Path.
    ### BEGIN SOLUTION
    import tinytorch

    path = Path(path)
    arrays, model_names = {}, []
    for name, value in model.state_dict().items():
        arrays[f"model/{name}"] = np.asarray(value)
        model_names.append(name)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tinytorch_version": tinytorch.__version__,
        "model": model_names,
        "optimizer": None if optimizer is None else _to_document(optimizer.state_dict(), "optimizer", arrays),
        "metadata": _to_document(metadata, "metadata", arrays),
    }
    document["arrays"] = {key: {"shape": list(a.shape), "dtype": a.dtype.str} for key, a in arrays.items()}
    text = json.dumps(document)
    entries = {DOCUMENT: np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **arrays}
    write_atomically(path, lambda file: np.savez(file, allow_pickle=False, **entries))
    return path
    ### END SOLUTION


MAX_DOCUMENT_BYTES = 64 << 20      # the JSON document: far more than any optimizer state and history need
INFLATE_ALLOWANCE = 64 << 20       # how far a file's arrays may inflate beyond 16 x its size on disk


def check_npy_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype]:
    """The (shape, dtype) an .npy entry of a zip declares, checked against the entry's size; ValueError if unsafe.

    np.load allocates the array its header declares before it reads a byte of data, so a 1 KB entry
    declaring (200000, 200000) would ask for 320 GB: the header is read here, on its own, first, and
    the entry must hold exactly header + data. Encrypted entries and compression methods other than
    stored and deflate (which np.savez writes) are refused too. Chapter 16 checks its model files with this.
    """
    if info.flag_bits & 0x1:
        raise ValueError(f"entry {info.filename} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"entry {info.filename} uses zip compression method {info.compress_type}, not stored or deflate")
    with archive.open(info) as entry:
        version = np.lib.format.read_magic(entry)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(entry)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(entry)
        else:
            raise ValueError(f"entry {info.filename} has .npy format {version}; expected 1.0 or 2.0")
        offset = entry.tell()
    if dtype.hasobject:
        raise ValueError(f"entry {info.filename} holds Python objects, which cannot be read without pickle")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != offset + nbytes:
        raise ValueError(f"entry {info.filename} declares {tuple(shape)} {dtype.str} ({nbytes} bytes) "
                         f"but holds {info.file_size - offset}")
    return tuple(shape), dtype


def _entry_header(path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, np.dtype]:
    try:
        return check_npy_entry(archive, info)
    except ValueError as err:
        raise CheckpointError(f"{path} is damaged or unsafe: {err}; use another copy") from None


def _check_document(path, document, present: dict) -> dict:
    """Every field's type, before the document is used; returns the listed arrays."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tinytorch checkpoint (format "
                              f"{document.get('format') if isinstance(document, dict) else type(document).__name__!r})")
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {document.get('format_version')!r}; "
                              f"this tinytorch reads version {FORMAT_VERSION} (save it again with a matching tinytorch)")
    listed, names = document.get("arrays"), document.get("model")
    if not isinstance(listed, dict) or not isinstance(names, list) or not all(isinstance(n, str) for n in names) \
            or len(set(names)) != len(names) or any(f"model/{name}" not in listed for name in names):
        raise CheckpointError(f"{path} is damaged: its document does not list the model's arrays")
    for key, entry in listed.items():
        ok = (isinstance(entry, dict) and isinstance(entry.get("shape"), list) and isinstance(entry.get("dtype"), str)
              and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in entry["shape"]))
        try:
            ok = ok and np.dtype(entry["dtype"]).kind in "biufc" and np.dtype(entry["dtype"]).str == entry["dtype"]
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{path} is damaged: its document describes array {key!r} as {entry!r}, "
                                  "not a shape (list of sizes) and a numeric dtype")
    if not isinstance(document.get("metadata"), dict):
        raise CheckpointError(f"{path} is damaged: its metadata is not a mapping")
    if set(present) != set(listed):
        raise CheckpointError(f"{path} is damaged: its arrays do not match its document "
                              f"(missing {sorted(set(listed) - set(present))}, extra {sorted(set(present) - set(listed))})")
    return listed


def _read(path) -> tuple[dict, dict]:
    """The JSON document and every array of a checkpoint, each checked against the document.

    Order matters: the zip's directory and each entry's .npy header are checked (encryption,
    compression method, declared shape against the entry's size) and the total the arrays
    would inflate to is capped before a single array is allocated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":                   # every .npz is a zip archive
            raise CheckpointError(f"{path} is not a checkpoint: it is not an .npz (zip) file")
    try:
        with zipfile.ZipFile(path) as archive:
            entries = {info.filename[:-4] if info.filename.endswith(".npy") else info.filename: info
                       for info in archive.infolist()}
            if DOCUMENT not in entries:
                raise CheckpointError(f"{path} is not a tinytorch checkpoint: it has no {DOCUMENT} entry")
            if entries[DOCUMENT].file_size > MAX_DOCUMENT_BYTES:
                raise CheckpointError(f"{path}: its {DOCUMENT} entry is {entries[DOCUMENT].file_size} bytes, "
                                      f"more than the {MAX_DOCUMENT_BYTES >> 20} MiB a checkpoint document may have")
            shape, dtype = _entry_header(path, archive, entries[DOCUMENT])
            if len(shape) != 1 or dtype != np.uint8:
                raise CheckpointError(f"{path} is damaged: its {DOCUMENT} entry is not a byte string")
            with archive.open(entries[DOCUMENT]) as entry:
                document = json.loads(np.lib.format.read_array(entry, allow_pickle=False).tobytes().decode("utf-8"))
            present = {key: info for key, info in entries.items() if key != DOCUMENT}
            listed = _check_document(path, document, present)
            total = 0
            for key, info in present.items():
                shape, dtype = _entry_header(path, archive, info)
                if list(shape) != listed[key]["shape"] or dtype.str != listed[key]["dtype"]:
                    raise CheckpointError(f"{path} is damaged: {key} has shape {shape} and dtype {dtype.str}, "
                                          f"its document says {tuple(listed[key]['shape'])} and {listed[key]['dtype']}")
                total += info.file_size
            limit = 16 * path.stat().st_size + INFLATE_ALLOWANCE
            if total > limit:
                raise CheckpointError(f"{path} would inflate to {total} bytes from {path.stat().st_size} on disk "
                                      f"(more than {limit}); refusing a possible decompression bomb")
            arrays = {}
            for key, info in present.items():
                with archive.open(info) as entry:                  # reading an entry checks its CRC-32
                    arrays[key] = np.lib.format.read_array(entry, allow_pickle=False)
    except (CheckpointError, FileNotFoundError):
        raise
    except Exception as err:                                   # a damaged zip fails in many ways
        raise CheckpointError(f"{path} is damaged or not a checkpoint ({type(err).__name__}: {err}); "
                              "use another copy, e.g. an earlier epoch's") from None
    return document, arrays


def checkpoint_info(path) -> dict:
    """The checkpoint's JSON document: versions, model entry names, every array's shape and dtype, metadata."""
    document, _ = _read(path)
    return document


def _restore(optimizer, snapshot) -> None:
    try:
        optimizer.load_state_dict(snapshot)
    except Exception:                                          # the snapshot came from this optimizer: should not happen
        pass


def same_kind(saved, current) -> bool:
    """Whether a saved hyperparameter has the type of the optimizer's own value (a number for a number...)."""
    def number(x):
        return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)) \
            and math.isfinite(x)
    if isinstance(current, (bool, np.bool_)):
        return isinstance(saved, (bool, np.bool_))
    if number(current):
        return number(saved)
    if current is None:
        return saved is None or number(saved)
    if isinstance(current, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(current) \
            and all(same_kind(a, b) for a, b in zip(saved, current))
    return type(saved) is type(current)


def _check_optimizer_state(path, saved, current: dict) -> None:
    """Refuse optimizer state whose structure or hyperparameter types differ from the optimizer's own.

    `lr: "abc"` would load, then fail at the first step(); checked here, it fails at load time, in one line.
    """
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not isinstance(saved.get("state"), dict) \
            or not all(isinstance(g, dict) for g in groups) or len(groups) != len(current["param_groups"]):
        raise CheckpointError(f"{path}: its optimizer state is not a state_dict of this optimizer "
                              f"({len(current['param_groups'])} parameter group(s)); nothing was loaded")
    for i, (group, own) in enumerate(zip(groups, current["param_groups"])):
        if set(group) != set(own):
            raise CheckpointError(f"{path}: optimizer parameter group {i} has settings {sorted(group)}, this "
                                  f"optimizer {sorted(own)}; nothing was loaded")
        params = group["params"]
        if not isinstance(params, list) or not all(isinstance(j, int) and not isinstance(j, bool) for j in params):
            raise CheckpointError(f"{path}: optimizer parameter group {i} lists {params!r}, not parameter indices")
        for key, value in group.items():
            if key != "params" and not same_kind(value, own[key]):
                raise CheckpointError(f"{path}: optimizer setting {key!r} is {value!r}, but this optimizer's is "
                                      f"{own[key]!r} (a {type(own[key]).__name__}); nothing was loaded")
    for index, entries in saved["state"].items():
        if not isinstance(entries, dict) or not all(
                (isinstance(v, np.ndarray) and v.dtype.kind in "biufc") or same_kind(v, 0.0) for v in entries.values()):
            raise CheckpointError(f"{path}: optimizer state of parameter {index!r} holds something other than "
                                  "arrays and finite numbers; nothing was loaded")


def load_with_check(path, model, optimizer=None, check=None) -> dict:
    """load_checkpoint, with `check(metadata)` run before anything changes (the Trainer uses it)."""
    document, arrays = _read(path)
    state = {name: arrays[f"model/{name}"] for name in document["model"]}
    own = {name: value.shape for name, value in model.state_dict().items()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: {state[k].shape} in the file, {own[k]} in the model" for k in own if k in state and state[k].shape != own[k]]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: missing {missing}, unexpected {unexpected}"
                              + (f", wrong shapes {wrong}" if wrong else "") + "; nothing was loaded")
    if optimizer is not None and document.get("optimizer") is None:
        raise CheckpointError(f"{path} holds no optimizer state; call load_checkpoint(path, model) without the optimizer")
    try:
        metadata = _from_document(document["metadata"], arrays)
        optimizer_state = None if optimizer is None else _from_document(document["optimizer"], arrays)
    except KeyError as err:
        raise CheckpointError(f"{path} is damaged: its document refers to a missing entry {err}") from None
    except (TypeError, ValueError, AttributeError) as err:      # a marker holding the wrong kind of value
        raise CheckpointError(f"{path} is damaged: its document is malformed ({type(err).__name__}: {err})") from None
    if optimizer is not None:
        _check_optimizer_state(path, optimizer_state, optimizer.state_dict())
    if check is not None:
        check(metadata)
    snapshot = None
    if optimizer is not None:
        snapshot = copy.deepcopy(optimizer.state_dict())
        try:
            optimizer.load_state_dict(optimizer_state)
        except Exception as err:
            _restore(optimizer, snapshot)
            raise CheckpointError(f"{path}: its optimizer state does not fit this optimizer ({err}); nothing was loaded") from None
    try:
        model.load_state_dict(state)
    except Exception as err:
        if snapshot is not None:
            _restore(optimizer, snapshot)
        raise CheckpointError(f"{path}: cannot load the model state ({err}); nothing was loaded") from None
    return metadata


def load_checkpoint(path, model, optimizer=None) -> dict:
    """Load a checkpoint into `model` (and `optimizer`); returns the metadata it was saved with.

    Everything is read and checked first: a damaged file, a wrong format version, or names and shapes
    that do not fit raise CheckpointError and leave the model and optimizer exactly as they were.
    """
    return load_with_check(path, model, optimizer)

# %% [markdown]
"""
### Unit test: checkpoints

The checkpoint test trains a small model for a few steps with momentum (so
the optimizer has state worth saving), saves it with metadata that exercises
every kind of value (an int, a nested dict, a tuple, a dict with integer
keys, an array, the generator's 128-bit state), and loads it into a freshly
built model and optimizer. It checks that every array comes back bit for bit
and the metadata comes back with the same types. Then the failure paths,
each of which must raise `CheckpointError` and leave the target model
*exactly* as it was: a truncated file, a file with four bytes flipped inside
a weight, and a checkpoint from a model with a different hidden size. It
also checks that no temporary file is left behind.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_checkpoint", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def small_mlp(hidden=16):
    return Sequential(Linear(4, hidden), ReLU(), Linear(hidden, 3))


def state_of(model, optimizer=None) -> dict:
    state = dict(model.state_dict())
    if optimizer is not None:
        for i, entry in optimizer.state_dict()["state"].items():
            for key, value in entry.items():
                state[f"optimizer/{i}/{key}"] = np.asarray(value.data if isinstance(value, Tensor) else value)
    return state


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_unit_checkpoint():
    manual_seed(0)
    model = small_mlp()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    X = Tensor(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    loss_fn = CrossEntropyLoss()
    for _ in range(3):
        loss = loss_fn(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    metadata = dict(epoch=3, history={"loss": [1.1, 0.9]}, pair=(1, 2.5), by_index={0: "a", 1: None},
                    table=np.arange(6).reshape(2, 3), rng=init.generator().bit_generator.state)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.npz"
        save_checkpoint(path, model, optimizer, **metadata)
        assert [p.name for p in Path(folder).iterdir()] == ["run.npz"], "a temporary file was left behind"

        manual_seed(1)
        restored = small_mlp()
        restored_opt = SGD(restored.parameters(), lr=0.5, momentum=0.9)
        got = load_checkpoint(path, restored, restored_opt)
        assert same_state(state_of(restored, restored_opt), state_of(model, optimizer))
        assert restored_opt.state_dict()["param_groups"][0]["lr"] == 0.1
        assert got["pair"] == (1, 2.5) and got["by_index"] == {0: "a", 1: None} and got["rng"] == metadata["rng"]
        assert got["history"] == metadata["history"] and np.array_equal(got["table"], metadata["table"])

        good = path.read_bytes()
        weight_at = good.find(b"model/0.weight.npy") + len("model/0.weight.npy") + 128 + 16  # inside its values
        damaged = {"truncated": good[: len(good) // 2],
                   "flipped bytes": good[:weight_at] + bytes(b ^ 0xFF for b in good[weight_at:weight_at + 4])
                   + good[weight_at + 4:]}
        for what, content in damaged.items():
            path.write_bytes(content)
            target = small_mlp()
            before = state_of(target)
            try:
                load_checkpoint(path, target)
            except CheckpointError as err:
                print(f"{what}: CheckpointError: {err}")
            else:
                raise AssertionError(f"a {what} checkpoint loaded without an error")
            assert same_state(state_of(target), before), f"a failed load ({what}) changed the model"

        path.write_bytes(good)
        wider = small_mlp(hidden=32)
        before = state_of(wider)
        try:
            load_checkpoint(path, wider)
        except CheckpointError as err:
            print(f"wrong shapes: CheckpointError: {err}")
        else:
            raise AssertionError("a checkpoint of a 16-unit model loaded into a 32-unit one")
        assert same_state(state_of(wider), before), "a failed load (wrong shapes) changed the model"
    print("checkpoint round trip and failure paths: OK")


test_unit_checkpoint()

# %% [markdown]
"""
Read the three error lines: each names the file, says what is wrong in
terms of the file (the zip's directory is gone, an entry's checksum does not
match, `0.weight` has the wrong shape), and says what to do. That is the
message you want at 3 a.m. when a restarted job refuses to start.
"""

# %% [markdown]
"""
### A problem to train on

To test the Trainer, and for every experiment below, we need a problem that
is small enough to train in a second and hard enough that a model can fail
at it. `make_shapes` draws 8×8 grayscale images, each holding one of five
3×3 glyphs (a plus, a cross, a ring, a horizontal and a vertical bar) at a
random position, plus Gaussian noise. The position varies, so a model must
learn what a glyph looks like wherever it is; and three pairs of classes
share pixels (a plus contains both bars), which will show in the confusion
matrix.
"""

# %%
CLASS_NAMES = ["plus", "cross", "ring", "h-bar", "v-bar"]
GLYPHS = np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                   [[1, 0, 1], [0, 1, 0], [1, 0, 1]],
                   [[1, 1, 1], [1, 0, 1], [1, 1, 1]],
                   [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
                   [[0, 1, 0], [0, 1, 0], [0, 1, 0]]], dtype=np.float32)


def make_shapes(n: int, noise: float = 0.2, seed: int = 0, size: int = 8):
    """n flattened size×size images, each one glyph at a random position plus N(0, noise²) pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(GLYPHS), n)
    images = rng.normal(0.0, noise, (n, size, size)).astype(np.float32)
    rows, cols = rng.integers(0, size - 2, n), rng.integers(0, size - 2, n)
    for i in range(n):
        images[i, rows[i]:rows[i] + 3, cols[i]:cols[i] + 3] += GLYPHS[labels[i]]
    return images.reshape(n, size * size), labels.astype(np.int64)   # (n, 64), (n,)


def loaders(n_train=2000, n_val=500, batch_size=32, noise=0.2, seed=0):
    X, y = make_shapes(n_train, noise, seed=seed + 1)
    Xv, yv = make_shapes(n_val, noise, seed=seed + 2)
    train = DataLoader(TensorDataset(Tensor(X), Tensor(y)), batch_size=batch_size, shuffle=True, seed=seed + 3)
    val = DataLoader(TensorDataset(Tensor(Xv), Tensor(yv)), batch_size=256)
    return train, val


def shapes_mlp(hidden=64):
    return Sequential(Linear(64, hidden), ReLU(), Linear(hidden, hidden), ReLU(), Linear(hidden, len(GLYPHS)))


examples, example_labels = make_shapes(10, seed=42)
fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for ax, image, label in zip(axes, examples, example_labels):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(CLASS_NAMES[label], fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
"""
### The Trainer

The Trainer is the five-line loop with what real runs need around it. Read
`fit` first: it is a loop over epochs, and each epoch is

1. one training pass (`_run(train=True)`): for each batch, forward, loss,
   `zero_grad`, `backward`, `step`, then the loss and metrics, weighted by
   the batch size. Each part is timed with `time.perf_counter` and the times
   are kept in `trainer.timings`, which the systems analysis uses;
2. one validation pass (`_run(train=False)`: eval mode, `no_grad`);
3. a `History` record, a scheduler step, and `_watch`, which tracks the best
   validation loss, writes `best.npz` when it improves (`save_best`) and
   decides whether early stopping ends the run (and puts the best weights
   back);
4. with a `checkpoint_dir`, `last.npz`, which holds everything `load`
   needs to continue.

**`epochs` is a total.** `fit(..., epochs=10)` trains until ten epochs are
done, counting those loaded from a checkpoint. So the same command, rerun
after a crash with `resume_from=".../last.npz"`, finishes the same run, as
PyTorch Lightning's `max_epochs` does.

**Resuming exactly.** `save` stores, beside the weights and the optimizer,
the scheduler's state, the history and the early-stopping counters, the best
weights so far (only when early stopping needs them), and the state of every
random generator the run draws from: tinytorch's own (`init.generator()`,
used by dropout in chapter 13) and the loader's. A NumPy `Generator`'s state
is a small dict of integers (`bit_generator.state`: for PCG64 a 128-bit state
and a 128-bit increment), which JSON stores exactly. How do we find a loader's
generator without knowing its class? A loader with its own `state_dict()`
saves that; otherwise we save every `np.random.Generator` among its attributes
(and their attributes), and restore each *in place*, so that any other object
holding the same generator sees the restored state too. A loader that reseeds
itself each epoch can define `set_epoch(epoch)`, which `fit` calls, as
PyTorch's samplers do.

**Progress.** In a terminal, a `rich` progress bar shows the running loss,
accuracy and throughput while the epoch runs; it is removed when the epoch
ends and replaced by one summary line. Anywhere else (a notebook, this book, a
log file, a pipe) a live bar would print hundreds of partial lines or nothing
useful, so only the summary line is printed. `rich` is imported only when a
bar is shown: `tinytorch` itself needs nothing but NumPy.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_Trainer", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor
from tinytorch.nn import init
from tinytorch.training.checkpoint import CheckpointError, load_with_check, same_kind, save_checkpoint
from tinytorch.training.metrics import as_tensor, batch_size_of, as_numpy, accuracy, evaluate_model

METRICS = {"accuracy": accuracy}


class History(dict):
    """Per-epoch records, as a plain dict of lists: history["val_loss"][k] belongs to epoch k + 1.

    Keys: epoch, train_loss, train_<metric>, and with a validation loader val_loss, val_<metric>;
    lr when the optimizer exposes its learning rate. Values are Python numbers, so
    json.dumps(history) works.
    """

    def append(self, record: dict) -> None:
        for key, value in record.items():
            self.setdefault(key, []).append(value)

    @property
    def epochs(self) -> int:
        return len(self.get("epoch", []))

    def best(self, key: str = "val_loss", mode: str = "min") -> tuple[int, float]:
        """(epoch, value) of the best entry of `key`: the lowest for mode "min", the highest for "max"."""
        if not self.get(key):
            raise KeyError(f"history has no {key!r} values; it has {sorted(self)}")
        values = np.asarray(self[key], dtype=np.float64)
        index = int(np.nanargmin(values) if mode == "min" else np.nanargmax(values))
        return self["epoch"][index], self[key][index]


def _resolve_metrics(metrics) -> dict:
    if isinstance(metrics, str):
        metrics = (metrics,)
    resolved = {}
    for metric in metrics:
        if isinstance(metric, str):
            if metric not in METRICS:
                raise ValueError(f"unknown metric {metric!r}; use one of {sorted(METRICS)} "
                                 "or pass a function metric(outputs, targets) -> float")
            resolved[metric] = METRICS[metric]
        elif callable(metric):
            resolved[metric.__name__] = metric
        else:
            raise TypeError(f"a metric is a name or a function, not {type(metric).__name__}")
    return resolved


def _learning_rate(optimizer):
    """The first parameter group's learning rate (PyTorch's param_groups, or an `lr` attribute), or None."""
    groups = getattr(optimizer, "param_groups", None)
    if groups and isinstance(groups[0], dict) and "lr" in groups[0]:
        return float(groups[0]["lr"])
    lr = getattr(optimizer, "lr", None)
    return float(lr) if isinstance(lr, (int, float)) else None


def _generators(obj, prefix: str = "", depth: int = 2) -> list:
    """(attribute path, Generator) for each NumPy Generator held by obj or by its attributes' objects."""
    found = []
    for name, value in getattr(obj, "__dict__", {}).items():
        if isinstance(value, np.random.Generator):
            found.append((prefix + name, value))
        elif depth > 1 and hasattr(value, "__dict__") and not isinstance(value, (type, Tensor, np.ndarray)):
            found.extend(_generators(value, f"{prefix}{name}.", depth - 1))
    return found


def _loader_state(loader) -> dict:
    """What makes a loader's next epoch repeatable: its state_dict() if it has one, else its generators' states."""
    if callable(getattr(loader, "state_dict", None)):
        return {"state_dict": loader.state_dict()}
    return {"generators": {path: g.bit_generator.state for path, g in _generators(loader)}}


def _restore_loader(name: str, loader, state: dict) -> None:
    if "state_dict" in state:
        loader.load_state_dict(state["state_dict"])
        return
    own = dict(_generators(loader))
    missing = sorted(set(state["generators"]) - set(own))
    if missing:
        raise ValueError(f"cannot resume: the {name} loader has no generator {missing[0]!r} that the checkpoint "
                         "saved; resume with the same kind of loader")
    for path, generator_state in state["generators"].items():
        own[path].bit_generator.state = generator_state            # in place: every holder sees it


def _generator_state_ok(value) -> bool:
    try:
        np.random.PCG64().state = value                            # a throwaway generator: does it accept it?
        return True
    except (TypeError, ValueError, KeyError, AttributeError):
        return False


def _trainer_state_problem(state: dict, scheduler) -> str | None:
    """What is wrong with a saved trainer state, checked before load() changes anything (None if nothing)."""
    def whole(x):
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    expected = {"epoch": whole, "history": lambda x: isinstance(x, dict) and all(isinstance(v, list) for v in x.values()),
                "best_val_loss": lambda x: x is None or number(x), "best_epoch": lambda x: x is None or whole(x),
                "epochs_without_improvement": whole, "stopped_early": lambda x: isinstance(x, bool),
                "rng": _generator_state_ok, "loaders": lambda x: isinstance(x, dict),
                "scheduler": lambda x: x is None or isinstance(x, dict),
                "best_state": lambda x: x is None or isinstance(x, dict)}
    for key, ok in expected.items():
        if key not in state or not ok(state[key]):
            return f"{key} is {state.get(key, 'missing')!r}"[:200]
    for name, loader in state["loaders"].items():
        generators = loader.get("generators") if isinstance(loader, dict) else None
        if not isinstance(loader, dict) or ("state_dict" not in loader and not (
                isinstance(generators, dict) and all(_generator_state_ok(g) for g in generators.values()))):
            return f"the {name} loader's state is not one save() writes"
    if scheduler is not None and state["scheduler"] is not None:
        own = scheduler.state_dict()
        if set(own) != set(state["scheduler"]) or not all(same_kind(state["scheduler"][k], own[k]) for k in own):
            return f"the scheduler state {state['scheduler']!r} does not fit {type(scheduler).__name__}"[:200]
    return None


def _isatty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """A live rich progress bar in a terminal; elsewhere (notebooks, logs, pipes) one line per epoch."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.task = enabled, None, None
        if enabled and _isatty():
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            except ImportError:                                    # tinytorch itself needs only NumPy
                return
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.fields[stats]}"), transient=True)

    def start(self, description: str, total) -> None:
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task(description, total=total, stats="")

    def update(self, stats: str) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=1, stats=stats)

    def finish(self, line: str) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.bar.stop()
            self.task = None
        if self.enabled:
            print(line, flush=True)


class Trainer:
    """The training loop, with what real runs need around it.

    fit() runs epochs of batches (forward, loss, backward, optimizer step), evaluates on a validation
    loader, records a History, shows progress, writes checkpoints (last.npz every epoch, best.npz on
    a new best validation loss), stops early, and resumes from a checkpoint exactly.

    The loaders can be any iterable of (inputs, targets) batches with len(): chapter 11's DataLoader
    or a plain list of batches. The optimizer needs zero_grad(), step(), state_dict() and
    load_state_dict(); a scheduler, step() (called once per epoch), state_dict() and load_state_dict().
    """

    def __init__(self, model, optimizer, loss_fn, scheduler=None, metrics=("accuracy",), checkpoint_dir=None,
                 save_best: bool = False, early_stopping_patience: int | None = None, seed: int | None = None,
                 progress: bool = True):
        if save_best and checkpoint_dir is None:
            raise ValueError("save_best=True needs checkpoint_dir: pass the folder to write best.npz into")
        if early_stopping_patience is not None and (not isinstance(early_stopping_patience, int)
                                                    or early_stopping_patience < 1):
            raise ValueError(f"early_stopping_patience must be a whole number of epochs >= 1 or None, "
                             f"not {early_stopping_patience!r}")
        self.model, self.optimizer, self.loss_fn, self.scheduler = model, optimizer, loss_fn, scheduler
        self.metrics = _resolve_metrics(metrics)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.save_best, self.early_stopping_patience = save_best, early_stopping_patience
        self.seed, self.progress = seed, progress
        if seed is not None:
            init.manual_seed(seed)                 # dropout masks and shuffling draw from here
        self.history = History()
        self.epoch = 0                             # epochs completed
        self.timings: list[dict] = []              # seconds per epoch spent in each part of the loop
        self.best_val_loss, self.best_epoch = math.inf, None
        self.epochs_without_improvement, self.stopped_early = 0, False
        self._best_state = None                    # weights of the best epoch, kept for early stopping
        self._loaders: dict = {}
        self._pending_loaders: dict = {}           # loader states read by load(), applied by fit()

    # ---- one pass over a loader ---------------------------------------------------------------
    def _run(self, loader, train: bool, progress: "_Progress | None" = None) -> tuple[dict, dict]:
        """Mean loss and metrics over one pass (per sample), and the seconds spent in each part."""
        times = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0, "metrics": 0.0}
        totals = dict.fromkeys(["loss", *self.metrics], 0.0)
        count = 0
        self.model.train(train)
        with nullcontext() if train else no_grad():
            batches = iter(loader)
            while True:
                t0 = time.perf_counter()
                try:
                    inputs, targets = next(batches)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                # The step, timed in parts: outputs = self.model(as_tensor(inputs)), loss = self.loss_fn(outputs,
                # targets), then t2 = time.perf_counter(). Only when `train`: self.optimizer.zero_grad(),
                # loss.backward(), t3 = time.perf_counter(), self.optimizer.step(), t4 = time.perf_counter();
                # in a validation pass nothing is updated and t3 = t4 = t2.
                # Pitfall: zero_grad() before backward(), since gradients accumulate; and keep `outputs` and
                # `loss`, which the code after this region reads (loss.item() and the metrics).
                ### BEGIN SOLUTION
                outputs = self.model(as_tensor(inputs))
                loss = self.loss_fn(outputs, targets)
                t2 = time.perf_counter()
                t3 = t4 = t2
                if train:
                    self.optimizer.zero_grad()
                    loss.backward()
                    t3 = time.perf_counter()
                    self.optimizer.step()
                    t4 = time.perf_counter()
                ### END SOLUTION
                value = float(loss.item())
                if not math.isfinite(value):
                    raise FloatingPointError(f"the loss became {value} in epoch {self.epoch + 1}; "
                                             "lower the learning rate or check the inputs for inf/nan")
                n = batch_size_of(inputs, targets)
                totals["loss"] += value * n
                for name, metric in self.metrics.items():
                    totals[name] += metric(outputs.data, as_numpy(targets)) * n
                count += n
                t5 = time.perf_counter()
                for part, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                    times[part] += seconds
                if progress is not None:
                    busy = sum(times.values())
                    progress.update(" ".join(f"{k} {v / count:.4f}" for k, v in totals.items())
                                    + f" {count / busy:,.0f} samples/s")
        if count == 0:
            raise ValueError("the loader yielded no batches; check its length and drop_last")
        times["samples"] = count
        return {name: total / count for name, total in totals.items()}, times

    # ---- the loop -------------------------------------------------------------------------------
    def fit(self, train_loader, val_loader=None, epochs: int = 1, resume_from=None) -> History:
        """Train until `epochs` epochs are done in total (epochs loaded from a checkpoint count)."""
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be a whole number >= 0, not {epochs!r}")
        if val_loader is None and (self.save_best or self.early_stopping_patience is not None):
            raise ValueError("save_best and early stopping watch the validation loss: pass val_loader to fit()")
        if resume_from is not None:
            self.load(resume_from)
        self._loaders = {"train": train_loader, "val": val_loader}
        for name, state in self._pending_loaders.items():
            if self._loaders.get(name) is not None:
                _restore_loader(name, self._loaders[name], state)
        self._pending_loaders = {}
        was_training = self.model.training
        progress = _Progress(self.progress)
        while self.epoch < epochs and not self.stopped_early:
            start = time.perf_counter()
            for loader in (train_loader, val_loader):
                if callable(getattr(loader, "set_epoch", None)):
                    loader.set_epoch(self.epoch)                    # loaders that reseed per epoch
            progress.start(f"epoch {self.epoch + 1}/{epochs}", len(train_loader))
            train, times = self._run(train_loader, train=True, progress=progress)
            record = {"epoch": self.epoch + 1, **{f"train_{k}": v for k, v in train.items()}}
            if val_loader is not None:
                t = time.perf_counter()
                val, _ = self._run(val_loader, train=False)
                times["validation"] = time.perf_counter() - t
                record.update({f"val_{k}": v for k, v in val.items()})
            lr = _learning_rate(self.optimizer)
            if lr is not None:
                record["lr"] = lr                                   # the rate this epoch used
            if self.scheduler is not None:
                self.scheduler.step()
            self.history.append(record)
            self.epoch += 1
            if self._watch(record):
                self.stopped_early = True
                self.model.load_state_dict(self._best_state)        # end on the best weights seen
            if self.checkpoint_dir is not None:
                t = time.perf_counter()
                self.save(self.checkpoint_dir / "last.npz")
                times["checkpoint"] = time.perf_counter() - t
            times["total"] = time.perf_counter() - start
            train_seconds = sum(times[k] for k in ("data", "forward", "backward", "optimizer", "metrics"))
            times["samples_per_s"] = times["samples"] / train_seconds
            self.timings.append(times)
            note = f"  stopped early: best val_loss at epoch {self.best_epoch}" if self.stopped_early else ""
            progress.finish(f"epoch {record['epoch']}/{epochs}  "
                            + "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "lr"))
                            + f"  {times['samples_per_s']:,.0f} samples/s  {times['total']:.2f} s{note}")
        self.model.train(was_training)
        return self.history

    def _watch(self, record: dict) -> bool:
        """Track the best validation loss (saving best.npz); True when early stopping should stop now.

        Args: record, this epoch's History entry; it has "val_loss" only when fit() was given a val_loader.
        """
        # No "val_loss": nothing to watch, return False.
        # A new best (strictly below self.best_val_loss): record it and its epoch (self.best_epoch), reset
        # self.epochs_without_improvement, keep self._best_state = self.model.state_dict() (a copy) when early
        # stopping is on, write self.checkpoint_dir / "best.npz" with self.save() when self.save_best; False.
        # Otherwise one more epoch without improvement: True once it reaches early_stopping_patience (never when None).
        ### BEGIN SOLUTION
        if "val_loss" not in record:
            return False
        if record["val_loss"] < self.best_val_loss:
            self.best_val_loss, self.best_epoch = record["val_loss"], record["epoch"]
            self.epochs_without_improvement = 0
            if self.early_stopping_patience is not None:
                self._best_state = self.model.state_dict()          # copies
            if self.save_best:
                self.save(self.checkpoint_dir / "best.npz")
            return False
        self.epochs_without_improvement += 1
        patience = self.early_stopping_patience
        return patience is not None and self.epochs_without_improvement >= patience
        ### END SOLUTION

    def evaluate(self, loader) -> dict:
        """evaluate_model with this trainer's model and loss."""
        return evaluate_model(self.model, loader, self.loss_fn)

    # ---- saving and resuming -------------------------------------------------------------------
    def save(self, path) -> Path:
        """A checkpoint with everything a resumed run needs: weights, optimizer, scheduler, history,
        counters, the best weights so far, and the state of every random generator involved."""
        # save_checkpoint(path, self.model, self.optimizer, trainer=state) stores weights and optimizer state;
        # `state` is the rest, the keys load() reads back: epoch, history (as plain lists), seed, best_val_loss,
        # best_epoch, epochs_without_improvement, stopped_early, "rng" (init.generator().bit_generator.state),
        # "loaders" ({name: _loader_state(loader)} for the loaders in self._loaders that are not None),
        # "scheduler" (its state_dict(), or None) and "best_state" (self._best_state).
        # Create path's folder first (mkdir(parents=True, exist_ok=True)). Pitfall: leave out a generator's
        # state and the resumed run draws different batches: a different run, which test_unit_resume catches.
        ### BEGIN SOLUTION
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epoch": self.epoch,
            "history": {key: list(values) for key, values in self.history.items()},
            "seed": self.seed,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
            "stopped_early": self.stopped_early,
            "rng": init.generator().bit_generator.state,            # plain ints: PCG64's 128-bit state
            "loaders": {name: _loader_state(loader) for name, loader in self._loaders.items() if loader is not None},
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "best_state": self._best_state,
        }
        return save_checkpoint(path, self.model, self.optimizer, trainer=state)
        ### END SOLUTION

    def load(self, path) -> dict:
        """Restore a checkpoint written by save() (by fit's checkpoint_dir); returns its metadata."""
        def check(metadata):
            state = metadata.get("trainer")
            if not isinstance(state, dict) or "epoch" not in state:
                raise CheckpointError(f"{path} holds no trainer state (it was not written by Trainer.save); "
                                      "load its weights with load_checkpoint(path, model)")
            problem = _trainer_state_problem(state, self.scheduler)
            if problem:
                raise CheckpointError(f"{path} holds a malformed trainer state ({problem}); nothing was loaded")
            if (state["scheduler"] is None) != (self.scheduler is None):
                saved = "no scheduler" if state["scheduler"] is None else "a scheduler"
                raise CheckpointError(f"{path} was saved with {saved}; build the Trainer the same way to resume")

        metadata = load_with_check(path, self.model, self.optimizer, check=check)
        state = metadata["trainer"]
        self.epoch, self.history = state["epoch"], History(state["history"])
        self.best_val_loss, self.best_epoch = state["best_val_loss"], state["best_epoch"]
        self.epochs_without_improvement, self.stopped_early = state["epochs_without_improvement"], state["stopped_early"]
        self._best_state = state["best_state"]
        init.generator().bit_generator.state = state["rng"]          # in place, as _restore_loader does
        self._pending_loaders = state["loaders"]
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        return metadata

# %% [markdown]
"""
### Unit test: the Trainer learns, records, and stops early

Three checks. First, a short `fit` on the shapes must learn (validation
accuracy well above the 20% of guessing, training loss falling), and its
`History` must have one entry per epoch for every key and survive a JSON
round trip unchanged.

Second, early stopping, on a problem whose whole trajectory we know in
closed form: one parameter `w`, starting at 0, trained by plain SGD
(learning rate 0.25) on a mean squared error towards 2, so after epoch `k`
it is exactly `w = 2 - 2·0.5ᵏ` (1, 1.5, 1.75, 1.875, ...; exact in float32).
The validation target is 1.5, so the validation losses are 0.25, 0, 0.0625,
0.140625, ...: the best epoch is 2. With patience 2, the run must stop after
epoch 4 and end with `w = 1.5`, the weights of epoch 2.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_trainer", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
class Scalar(Module):
    """Predicts the same number w for every sample."""

    def __init__(self):
        super().__init__()
        self.w = Parameter(np.zeros(1, dtype=np.float32))

    def forward(self, x):
        return x * 0.0 + self.w                          # (N, 1)


def squared_error(outputs, targets):
    diff = outputs - Tensor(np.asarray(targets, dtype=np.float32))
    return (diff * diff).mean()


def test_unit_trainer():
    manual_seed(0)
    model = shapes_mlp()
    train, val = loaders(n_train=600, n_val=200)
    trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9), CrossEntropyLoss(),
                      seed=1, progress=False)
    history = trainer.fit(train, val, epochs=4)
    assert history.epochs == 4 and all(len(v) == 4 for v in history.values()), history
    assert history["val_accuracy"][-1] > 0.4, f"validation accuracy {history['val_accuracy'][-1]:.2f} after 4 epochs"
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert json.loads(json.dumps(history)) == history, "the history must be plain JSON"

    x = np.zeros((4, 1), np.float32)
    scalar = Scalar()
    stopper = Trainer(scalar, SGD(scalar.parameters(), lr=0.25), squared_error, metrics=(),
                      early_stopping_patience=2, progress=False)
    history = stopper.fit([(x, np.full((4, 1), 2.0))], [(x, np.full((4, 1), 1.5))], epochs=20)
    assert history["epoch"] == [1, 2, 3, 4], f"stopped after epoch {history['epoch'][-1]}, expected 4"
    assert history["val_loss"] == [0.25, 0.0, 0.0625, 0.140625], history["val_loss"]
    ### BEGIN HIDDEN TESTS
    assert stopper.best_epoch == 2 and scalar.w.data.tolist() == [1.5], "the best weights were not restored"
    ### END HIDDEN TESTS
    print("Trainer fit, history and early stopping: OK")


test_unit_trainer()

# %% [markdown]
"""
### Unit test: resuming is exact

The property the Trainer exists for. Run A trains for 5 epochs without
stopping. Run B, built the same way (same seeds), trains for 2 epochs with a
`checkpoint_dir`, and is then thrown away. Run C is built from scratch, as a
restarted job would be, after the global generator has been disturbed (a
restarted process starts from a fresh random state), and calls
`fit(..., epochs=5, resume_from=".../last.npz")`. C must end with *exactly*
A's weights, bit for bit, and exactly A's history. A tolerance would hide the
bugs this test is for: a forgotten generator state changes the batch order,
and from then on every number differs in the last bits first.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_resume", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def shapes_run(seed=0, **options):
    """Everything a run builds from its seeds: a restarted job calls this again."""
    manual_seed(seed)
    model = shapes_mlp()
    train, val = loaders(n_train=400, n_val=200, seed=seed)
    trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9), CrossEntropyLoss(),
                      seed=seed + 1, progress=False, **options)
    return trainer, train, val


def test_unit_resume():
    uninterrupted, train, val = shapes_run()
    uninterrupted.fit(train, val, epochs=5)
    with tempfile.TemporaryDirectory() as folder:
        first, train, val = shapes_run(checkpoint_dir=folder)
        first.fit(train, val, epochs=2)
        manual_seed(12345)                                   # a new process: a different random state
        resumed, train, val = shapes_run()
        resumed.fit(train, val, epochs=5, resume_from=Path(folder) / "last.npz")
    a, c = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert all(np.array_equal(a[k], c[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert resumed.history == uninterrupted.history, "resumed history differs from the uninterrupted run"
    print("resume after epoch 2 of 5: weights and history identical, bit for bit")


test_unit_resume()

# %% [markdown]
"""
### Plots

Two plots answer "how did the run go?": the curves of loss and each metric,
training beside validation, with the best validation epoch marked; and the
confusion matrix as a heat map with its counts written in. Both functions
import matplotlib inside (tinytorch needs only NumPy), return the figure (a
notebook displays a returned figure) and write a PNG when given a path. They
close the figure before returning it, so that a notebook shows it once, not
once as the returned value and again when the cell ends. These cells export
to `tinytorch.training.plots`.
"""

# %%
#| export training.plots
import numpy as np


def plot_training_history(history, path=None):
    """Loss and each metric per epoch, training beside validation; returns the figure, saves a PNG if path is given."""
    import matplotlib.pyplot as plt

    if not history.get("train_loss"):
        raise ValueError("plot_training_history: the history has no epochs yet; train first")
    names = [key[len("train_"):] for key in history if key.startswith("train_")]
    epochs = history.get("epoch") or list(range(1, len(history["train_loss"]) + 1))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for split, style in (("train", "o-"), ("val", "s--")):
            if history.get(f"{split}_{name}"):
                ax.plot(epochs, history[f"{split}_{name}"], style, markersize=3, label=split)
        if name == "loss" and history.get("val_loss"):
            best = int(np.nanargmin(history["val_loss"]))
            ax.axvline(epochs[best], color="gray", linestyle=":", label=f"best val (epoch {epochs[best]})")
        ax.set(xlabel="epoch", ylabel=name, title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    plt.close(fig)          # returned, not left open: Jupyter shows a returned figure once
    return fig


def plot_confusion_matrix(cm, class_names=None, path=None):
    """The confusion matrix as an annotated heat map (rows: true class, columns: predicted)."""
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix needs a square matrix, not shape {cm.shape}")
    n = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if len(names) != n:
        raise ValueError(f"plot_confusion_matrix: {len(names)} class names for {n} classes")
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * n, 0.6 + 0.7 * n))
    image = ax.imshow(cm, cmap="Blues")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", fontsize=9,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names,
           xlabel="predicted class", ylabel="true class", title="confusion matrix")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig

# %% [markdown]
"""
### Unit test: plots

The plots are checked for what can be checked automatically: one panel per
quantity (loss and accuracy here), and a real PNG file (its 8-byte signature)
at the path given. Whether they are *good* plots you judge below.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_plots", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_plots():
    history = History()
    for epoch, (loss, acc) in enumerate([(1.0, 0.5), (0.6, 0.7), (0.5, 0.8)], start=1):
        history.append({"epoch": epoch, "train_loss": loss, "train_accuracy": acc,
                        "val_loss": loss + 0.1, "val_accuracy": acc - 0.05})
    with tempfile.TemporaryDirectory() as folder:
        fig = plot_training_history(history, path=Path(folder) / "history.png")
        assert len(fig.axes) == 2, f"expected a loss and an accuracy panel, got {len(fig.axes)}"
        plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["a", "b"], path=Path(folder) / "cm.png")
        for name in ("history.png", "cm.png"):
            assert (Path(folder) / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"
    print("plots: OK")


test_unit_plots()

# %% [markdown]
"""
## Systems analysis

Everything below is measured while this page runs, on the machine that runs
it; your numbers will differ from those quoted in the text, which come from
the 2-core machine the chapter was written on, shared with other work. Small
timings are noisy there: if a row looks out of line with its neighbours, run
the cell again.

### Where an epoch's time goes

The Trainer keeps, in `trainer.timings`, the seconds each epoch spent in each
part of the loop. Epoch sums are what you want for a run, but on a shared
machine a single stall of a few milliseconds lands in one of them and
distorts the picture. To see the steady state, we time the same steps as
`_run`, one step at a time, and keep the fastest time of each part over 40
steps, the least disturbed (on a busy machine even a median can land on a
stretch where the matrix products' BLAS threads wait for a core): loading
the batch, forward (model and loss), backward (`zero_grad` and `backward`),
the optimizer step, and the metrics. The model is the shapes MLP
(64 → 64 → 64 → 5, about 9,000 parameters); the batch sizes take turns step
by step, so that a burst of load hits them all alike. We divide by the batch
size: microseconds per training sample.
"""

# %%
part_names = ["data", "forward", "backward", "optimizer", "metrics"]
batch_sizes = [8, 32, 128, 512]


def step_timer(batch_size):
    """A generator that runs one training step per next() and yields the seconds of each part."""
    manual_seed(0)
    model = shapes_mlp()
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = CrossEntropyLoss()
    train, _ = loaders(batch_size=batch_size)
    while True:
        batches = iter(train)
        for _ in range(len(train)):
            t0 = time.perf_counter()
            inputs, targets = next(batches)
            t1 = time.perf_counter()
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
            t2 = time.perf_counter()
            optimizer.zero_grad()
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            t4 = time.perf_counter()
            accuracy(outputs, targets), float(loss.item())
            t5 = time.perf_counter()
            yield dict(zip(part_names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)))


timers = {b: step_timer(b) for b in batch_sizes}
samples = {b: [] for b in batch_sizes}
for step in range(45):
    for b, timer in timers.items():
        parts = next(timer)
        if step >= 5:                                       # the first steps are a warm-up
            samples[b].append(parts)
per_sample = {b: {p: min(s[p] for s in samples[b]) / b * 1e6 for p in part_names} for b in batch_sizes}

X_val = Tensor(make_shapes(256, seed=7)[0])
model = shapes_mlp()
val_times = []
for _ in range(20):
    start = time.perf_counter()
    with no_grad():
        model(X_val)
    val_times.append(time.perf_counter() - start)
val_per_sample = min(val_times) / 256 * 1e6                 # one call repeated: the fastest is the least disturbed

flops = sum(2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, Linear))
print(f"forward FLOPs per sample: {flops:,}; a training step does about 3x that per sample")
print(f"{'batch':>6}" + "".join(f"{p:>10}" for p in part_names)
      + f"{'total':>8}{'µs/step':>9}{'GFLOP/s':>9}{'backward/forward':>18}")
for b, row in per_sample.items():
    total = sum(row.values())
    print(f"{b:>6}" + "".join(f"{row[p]:>10.2f}" for p in part_names)
          + f"{total:>8.2f}{total * b:>9.0f}{3 * flops / total / 1e3:>9.2f}{row['backward'] / row['forward']:>18.1f}")
print(f"(columns data..total in µs per sample) | evaluation forward under no_grad, batch 256: "
      f"{val_per_sample:.2f} µs per sample")
total = {b: sum(row.values()) for b, row in per_sample.items()}
backward_ratio = [row["backward"] / row["forward"] for row in per_sample.values()]
print(f"from batch 8 to batch 128 the time per step grows {total[128] * 128 / (total[8] * 8):.1f}x for 16x the samples; "
      f"a sample costs {total[8] / total[512]:.0f}x more at batch 8 than at 512; backward / forward between "
      f"{min(backward_ratio):.1f} and {max(backward_ratio):.1f}; the optimizer costs "
      f"{per_sample[8]['optimizer'] / per_sample[512]['optimizer']:.0f}x more per sample at batch 8 than at 512")
checks = {"the time per step from batch 8 to 128 grows less than 4x": total[128] * 128 < 4 * total[8] * 8,
          "a sample costs at least 5x more at batch 8 than at 512": total[8] > 5 * total[512],
          "backward is well under twice the forward (below 1.7x)": max(backward_ratio) < 1.7,
          "the optimizer per sample falls at least 10x from batch 8 to 512":
              per_sample[8]["optimizer"] > 10 * per_sample[512]["optimizer"],
          "loading data is under a quarter of every step": all(row["data"] < 0.25 * total[b] for b, row in per_sample.items()),
          "evaluation costs less per sample than any training step": val_per_sample < min(total.values())}
assert all(checks.values()), f"the text says: {[c for c, ok in checks.items() if not ok]}; measured {per_sample}"

fig, ax = plt.subplots(figsize=(7, 3.5))
bottom = np.zeros(len(batch_sizes))
for part in part_names:
    values = np.array([per_sample[b][part] for b in batch_sizes])
    ax.bar([str(b) for b in batch_sizes], values, bottom=bottom, label=part)
    bottom += values
ax.set(xlabel="batch size", ylabel="µs per training sample", title="Where a training step's time goes")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
"""
Read the table row by row. The model's forward pass is about 17,000 FLOPs
per sample, a few microseconds of arithmetic even at modest speed, yet at
batch 8 a sample costs many times what it costs at batch 512 (the line under
the table says how many; the cell checks at least 5). The `µs/step` column
shows why: from batch 8 to batch 128 the time *per step* grows far less than
the 16 times more samples it processes (the cell checks under 4 times), so
the time per sample falls nearly in proportion to the batch size. What a small step pays
for is not arithmetic but the fixed price of every operation: a Python call,
a `Function` node, a Tensor object, a NumPy dispatch, dozens of them per
step. Only at the largest batch does the arithmetic begin to dominate and the
achieved GFLOP/s climb towards what BLAS can do on these cores (chapter 04
measured that ceiling for a single Linear).

Three more things to notice:

- **Backward is not twice the forward here.** FLOP counting says a backward
  pass costs about twice the forward; here it takes about as long as the
  forward (the last column, and the range printed under the table; the cell
  checks it stays below 1.7). Two reasons: the first layer
  needs no gradient for its input (images are not parameters), so its
  backward skips one of its two matrix products; and at these sizes the fixed
  per-operation costs, which the forward pass pays while it builds the graph,
  weigh as much as the arithmetic. The 2× shows up once the matrices are
  large.
- **The optimizer costs the same per step whatever the batch.** It touches
  each of the 9,000 parameters a few times, so per sample it falls as `1/B`:
  64 times more samples per step from batch 8 to 512, and the line under the
  table shows the optimizer's cost per sample falling by a similar factor
  (the cell checks at least 10). Larger batches amortise it; that is one
  reason large-scale training uses them.
- **Loading data is cheap here** (under a quarter of every step, checked)
  because the shapes sit in memory as one array and a batch is one
  fancy-indexing copy. With images decoded from disk
  and augmented on the fly (chapters 11 and 13) it is often the largest part,
  which is why PyTorch's `DataLoader` prepares batches in worker processes
  while the model trains.

The evaluation pass, forward only and without a graph, costs less per sample
than a training step at any of these batch sizes (checked): validating on 500 samples after every epoch of
2,000 adds little. On large validation sets, production loops validate every
few thousand steps instead of every epoch.
"""

# %% [markdown]
"""
### What a checkpoint costs: bytes and seconds

A checkpoint's size should be the bytes of the arrays in it plus a small
overhead. We save MLPs of growing width (with SGD momentum, so the optimizer
adds one buffer per parameter) and compare the file size with the parameter
bytes, time `save_checkpoint` and `load_checkpoint` (median of five), and
look inside one file with `zipfile`, which shows what each entry costs.
"""

# %%
import io
import os
import zipfile

rows = []
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "size.npz"
    for width in [16, 128, 512, 1024]:
        manual_seed(0)
        model = Sequential(Linear(64, width), ReLU(), Linear(width, width), ReLU(), Linear(width, 5))
        optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
        train, _ = loaders(n_train=64, batch_size=32)
        Trainer(model, optimizer, CrossEntropyLoss(), progress=False).fit(train, epochs=1)   # momentum buffers exist now
        param_bytes = sum(p.nbytes for p in model.parameters())
        saves, loads = [], []
        for _ in range(5):
            start = time.perf_counter()
            save_checkpoint(path, model, optimizer, epoch=1)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            load_checkpoint(path, model, optimizer)
            loads.append(time.perf_counter() - start)
        rows.append((width, param_bytes, path.stat().st_size, np.median(saves), np.median(loads)))
    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, info.file_size) for info in archive.infolist()]
    with np.load(path) as npz:
        data_bytes = sum(npz[key].nbytes for key in npz.files if key != "checkpoint.json")
    manual_seed(0)
    tiny = Sequential(Linear(64, 16), ReLU(), Linear(16, 16), ReLU(), Linear(16, 5))
    in_memory, to_disk, written, synced = [], [], [], []
    for _ in range(5):
        start = time.perf_counter()
        np.savez(io.BytesIO(), **{k.replace(".", "_"): v for k, v in tiny.state_dict().items()})
        in_memory.append(time.perf_counter() - start)
        start = time.perf_counter()
        save_checkpoint(path, tiny)
        to_disk.append(time.perf_counter() - start)
        blob = path.read_bytes()
        for times, sync in ((written, False), (synced, True)):   # the same bytes, to a new file, without and with fsync
            fresh = Path(folder) / f"plain-{len(times)}.bin"
            start = time.perf_counter()
            with open(fresh, "wb") as file:
                file.write(blob)
                if sync:
                    file.flush()
                    os.fsync(file.fileno())
            times.append(time.perf_counter() - start)

print(f"{'width':>6} {'parameters':>11} {'param MB':>9} {'file MB':>8} {'file/params':>12} {'save ms':>8} {'load ms':>8} {'save MB/s':>10}")
for width, param_bytes, size, save_s, load_s in rows:
    print(f"{width:>6} {param_bytes // 4:>11,} {param_bytes / 1e6:>9.3f} {size / 1e6:>8.3f} {size / param_bytes:>12.2f} "
          f"{save_s * 1e3:>8.2f} {load_s * 1e3:>8.2f} {size / save_s / 1e6:>10.0f}")
size = rows[-1][2]
print(f"\ninside the width-{rows[-1][0]} file: {len(entries)} entries; array data {data_bytes:,} B, "
      f"file {size:,} B, so {size - data_bytes:,} B of headers and JSON "
      f"({(size - data_bytes) / len(entries):.0f} B per entry)")
for name, nbytes in entries[:3] + entries[-2:]:
    print(f"  {name:<40} {nbytes:>10,} B")
print(f"\nsmallest model: np.savez into memory {np.median(in_memory) * 1e3:.2f} ms, "
      f"save_checkpoint to disk {np.median(to_disk) * 1e3:.2f} ms")
print(f"its {len(blob):,} bytes written to a new file: {np.median(written) * 1e3:.2f} ms without fsync, "
      f"{np.median(synced) * 1e3:.2f} ms with fsync")
ratio = {width: size / param_bytes for width, param_bytes, size, _, _ in rows}
overhead = (size - data_bytes) / len(entries)
checks = {"with momentum the file is twice the parameter bytes": all(1.95 < ratio[w] < 2.05 for w in (512, 1024)),
          "the overhead is a visible share for the smallest model": ratio[16] > 2.5,
          "the overhead is a few hundred bytes per entry": 100 < overhead < 1000,
          "serialising into memory is faster than saving to disk": np.median(in_memory) < np.median(to_disk),
          "the save rate rises with the file size": rows[-1][2] / rows[-1][3] > rows[0][2] / rows[0][3],
          "loading is faster than saving": sum(r[4] for r in rows) < sum(r[3] for r in rows)}
assert all(checks.values()), f"the text says: {[c for c, ok in checks.items() if not ok]}; measured {rows}"

# %% [markdown]
"""
The checkpoint is the arrays and almost nothing else. With SGD momentum the
file is twice the parameter bytes (one momentum buffer per parameter), as the
table in the background predicts; Adam would make it three times. The
overhead is a few hundred bytes per entry: the `.npy` header (128 bytes,
holding the dtype, shape and memory order as text, padded so the values start
aligned) plus the zip's records for the entry, each of which repeats the
entry's name, plus the JSON document. For the smallest model that overhead
is a visible share of the file; from a hundred thousand parameters on it is
lost in the rounding.

Time tells a different story. Even the smallest checkpoint takes longer to
save than to serialise into memory (the last lines; the cell checks it): the
rest is the file system, creating a temporary file, writing, renaming, and
`os.fsync`, which waits until the disk confirms that the bytes are stored.
The last line separates the write from the wait: on a disk-backed file
system the `fsync` is usually the larger part; on a RAM-backed one (tmpfs) it
returns at once. That wait is the price of durability, and it is why a
checkpoint every few steps would be expensive even for a tiny model. For
large files the cost per byte takes over, and the save rate rises towards
what the disk sustains. Loading is faster than saving (over the four widths
together; both are checked): it needs no `fsync`, and a file written a
moment ago is still in the operating system's page cache.

Keep one number in mind for the integration run below: the share of an
epoch spent writing `last.npz`.
"""

# %% [markdown]
"""
### What a resumed run needs: leaving one piece out

The unit test showed that a complete checkpoint resumes exactly. Here we
show what each piece of state is *for*, by leaving it out. Four runs of 6
epochs on the shapes, each interrupted after epoch 3 and continued in a fresh
trainer:

- **everything**: `fit(resume_from=...)`, as the Trainer does it;
- **no loader generator**: weights, optimizer and counters restored, but the
  loader's shuffling generator starts from its seed again (as if the loader's
  state had not been saved), so epochs 4 to 6 see the batches of epochs 1 to 3;
- **no optimizer state**: weights restored, but a fresh optimizer, so momentum
  restarts from zero;
- **weights only**: the fresh optimizer *and* the fresh loader generator.

For each we report the largest difference from the uninterrupted run's
weights and the final validation loss.
"""

# %%
def resume_variant(folder: Path, restore_optimizer: bool, restore_loader: bool):
    """Continue the run saved in folder/last.npz to 6 epochs, restoring only some of its state."""
    trainer, train, val = shapes_run()
    if restore_optimizer and restore_loader:
        trainer.fit(train, val, epochs=6, resume_from=folder / "last.npz")
        return trainer
    metadata = load_checkpoint(folder / "last.npz", trainer.model, trainer.optimizer if restore_optimizer else None)
    state = metadata["trainer"]
    trainer.epoch, trainer.history = state["epoch"], History(state["history"])
    init.generator().bit_generator.state = state["rng"]
    if restore_loader:
        trainer._pending_loaders = state["loaders"]
    trainer.fit(train, val, epochs=6)
    return trainer


reference, train, val = shapes_run()
reference.fit(train, val, epochs=6)
reference_state = reference.model.state_dict()
with tempfile.TemporaryDirectory() as folder:
    interrupted, train, val = shapes_run(checkpoint_dir=folder)
    interrupted.fit(train, val, epochs=3)
    print(f"{'restored':<22} {'max |w - w_uninterrupted|':>26} {'final val_loss':>15}")
    print(f"{'(uninterrupted run)':<22} {0:>26.3g} {reference.history['val_loss'][-1]:>15.6f}")
    differences = {}
    for label, optimizer_too, loader_too in [("everything", True, True), ("no loader generator", True, False),
                                             ("no optimizer state", False, True), ("weights only", False, False)]:
        variant = resume_variant(Path(folder), optimizer_too, loader_too)
        state = variant.model.state_dict()
        worst = max(float(np.abs(state[k] - reference_state[k]).max()) for k in state)
        differences[label] = worst
        print(f"{label:<22} {worst:>26.3g} {variant.history['val_loss'][-1]:>15.6f}")
    saved = checkpoint_info(Path(folder) / "last.npz")["metadata"]["trainer"]
    generator_bytes = len(json.dumps({"rng": saved["rng"], "loaders": saved["loaders"]}))
print(f"the generator states in last.npz take {generator_bytes} bytes of JSON")
assert generator_bytes < 1000, f"the text says a few hundred bytes; measured {generator_bytes}"
assert differences["everything"] == 0, "the text says the complete checkpoint reproduces the run exactly"
assert 5e-3 <= differences["no loader generator"] < differences["no optimizer state"], \
    f"the text says the loader alone changes the second decimal and the optimizer state more; measured {differences}"

# %% [markdown]
"""
Only the complete checkpoint reproduces the uninterrupted run: a difference
of exactly zero. Each of the others continues with a valid training run, just
not the same one:

- **No loader generator.** Weights and optimizer are restored, only the order
  of the batches in epochs 4 to 6 changes, and the weights already differ in
  the second decimal. Nothing warns you: the loss curve looks just as smooth.
- **No optimizer state.** Momentum restarts from zero, the first steps after
  the restart are smaller than they would have been, and the difference is
  larger still.
- **Weights only** combines both.

The final validation losses differ too, sometimes for the better; that is
exactly the problem. A crash that changes the result by an amount comparable
to the effect you are measuring makes an experiment meaningless, and a run
that diverges after a restart cannot be replayed to find out why. Saving the
random generators costs a few hundred bytes of JSON (the last line above).
"""

# %% [markdown]
"""
## Production context

**Loops.** PyTorch deliberately has no `fit`: the loop is yours, written out
in every training script. Libraries on top of it supply what this chapter's
`Trainer` does: PyTorch Lightning (`Trainer(max_epochs=..., callbacks=[ModelCheckpoint(monitor="val_loss", save_top_k=1), EarlyStopping(monitor="val_loss", patience=...)])`,
`trainer.fit(model, ckpt_path="last")` to resume), Hugging Face's `Trainer`
(`trainer.train(resume_from_checkpoint=True)`), Keras' `model.fit(callbacks=[EarlyStopping(restore_best_weights=True)])`.
Ours has their shape, with callbacks replaced by constructor options.
Production loops add gradient accumulation, mixed precision, gradient
clipping, distributed data parallelism, and logging to an experiment tracker;
each is a few lines inside `_run`.

**Checkpoint files.** `torch.save(obj, f)` pickles any Python object, with
tensors stored as raw bytes inside a zip, like ours. Pickle is why
`torch.load` could execute code from the file; PyTorch 2.6 made
`weights_only=True` the default, which unpickles only tensors and plain
containers. The **safetensors** format, the default for model weights in
Hugging Face's libraries, takes the approach of this chapter further: a JSON
header (names, dtypes, shapes, byte offsets) followed by the raw bytes, with
no code at all, and laid out so that a loader can memory-map it and read
only the tensors it needs. Our `.npz` gets the safety but not the
memory-mapping (zip entries are read whole).

**Writing safely.** Real systems write checkpoints atomically (write to a
temporary name, then rename), keep the last few rather than only the
last (a checkpoint can be written correctly from weights that were already
bad, e.g. after a loss spike), and write them in the background so that
training does not wait for the disk. Large distributed runs shard the
checkpoint: each process writes the slice of weights and optimizer state it
owns (`torch.distributed.checkpoint`), because gathering a model of hundreds
of gigabytes onto one machine to write one file is too slow.

**How often.** Checkpointing costs time (the save you measured) and a crash
costs the work done since the last checkpoint. With a save time `δ` and a
mean time between failures `M`, Young's classic approximation puts the
interval that minimises the expected loss at about `√(2·δ·M)`: a 10-second
save on a cluster that fails once a day suggests a checkpoint every 20
minutes or so. Our per-epoch checkpoints are far more frequent than that
would suggest, because for a small model the save costs little next to an epoch.

**Determinism.** PyTorch's recipe for resuming exactly is the one you
built: save `torch.get_rng_state()` (and each GPU's, and NumPy's and
Python's `random` if used), the sampler's and the data loader workers' state
(the `torchdata` `StatefulDataLoader` exists for exactly this), and set
`torch.use_deterministic_algorithms(True)`, because some GPU kernels
(atomic additions in scatter and some convolution backward passes) sum in a
different order every time. Bit-for-bit equality across different machines
or thread counts is usually not attainable: a different BLAS blocking sums
the same numbers in a different order.
"""

# %% [markdown]
"""
## Integration: a complete run

All of it together, the way a real project would use it: the shapes with a
training, a validation and a test split; the MLP from chapters 04 and 05;
SGD with momentum from chapter 10; chapter 11's loader; a Trainer that keeps
the best checkpoint, stops early, and writes `last.npz` every epoch. After
the run, we look at the curves, reload the best checkpoint into a freshly
built model (as a separate evaluation job would), and evaluate it on the
test set, which played no part in any decision.
"""

# %%
workdir = tempfile.TemporaryDirectory()
run_dir = Path(workdir.name) / "shapes-run"
manual_seed(0)
model = shapes_mlp()
train, val = loaders(n_train=2000, n_val=500, batch_size=32, noise=0.25)
X_test, y_test = make_shapes(1000, noise=0.25, seed=99)
test = [(Tensor(X_test[i:i + 250]), y_test[i:i + 250]) for i in range(0, 1000, 250)]

trainer = Trainer(model, SGD(model.parameters(), lr=0.05, momentum=0.9), CrossEntropyLoss(),
                  checkpoint_dir=run_dir, save_best=True, early_stopping_patience=5, seed=1)
start = time.perf_counter()
history = trainer.fit(train, val, epochs=40)
print(f"\n{history.epochs} epochs in {time.perf_counter() - start:.1f} s; best val_loss "
      f"{trainer.best_val_loss:.4f} at epoch {trainer.best_epoch}; files: {sorted(p.name for p in run_dir.iterdir())}")
epoch_s = np.median([t["total"] for t in trainer.timings])
save_s = np.median([t["checkpoint"] for t in trainer.timings])
print(f"median epoch {epoch_s * 1e3:.0f} ms, of which writing last.npz {save_s * 1e3:.1f} ms ({save_s / epoch_s:.0%})")
best = trainer.best_epoch - 1                                # index of the best epoch in the history
checks = {"training accuracy approaches 100%": history["train_accuracy"][-1] > 0.95,
          "early stopping waited five epochs after the best one": trainer.stopped_early and history.epochs == best + 6,
          "the validation loss rose after its minimum": history["val_loss"][-1] > history["val_loss"][best],
          "validation accuracy kept creeping up after the best loss":
              max(history["val_accuracy"][best + 1:]) > history["val_accuracy"][best],
          "writing last.npz is a small share of an epoch": save_s < 0.5 * epoch_s}
assert all(checks.values()), f"the text says: {[c for c, ok in checks.items() if not ok]}; measured {dict(history)}"
plot_training_history(history)

# %% [markdown]
"""
The curves tell the usual story of a model with more capacity than data.
The training loss falls steadily towards zero and the training accuracy
approaches 100%: the network can memorise 2,000 images. The validation loss
follows it for the first few epochs, reaches its minimum (the dotted line),
and then rises while the training loss keeps falling. Early stopping waited
five epochs for an improvement that did not come, stopped, and put the
weights of the best epoch back.

Look at the accuracy panel, though: validation accuracy kept creeping up
after the best validation loss. Loss and accuracy measure different things.
Accuracy only asks whether the largest output is right; cross-entropy also
charges for confidence, and a model that memorises becomes very confident,
including on the validation images it gets wrong, whose loss grows. Which
one early stopping should watch is a decision, not a default: the loss if
the model's probabilities will be used, the accuracy (or whatever metric the
application cares about) if only its decisions will.

Why does an MLP overfit this problem so readily? It sees 64 unrelated
numbers, not an image: a plus in the top-left corner and a plus in the
bottom-right share no inputs, so it must learn each glyph at each of the 36
positions separately, from roughly 2,000 / (5 · 36) ≈ 11 examples per class
and position. Chapter 06's convolutions share one detector across positions;
chapter 13 attacks the same gap with regularisation and augmentation.

Finally, the line under the epoch log: writing `last.npz` takes the share
of each epoch printed there (small, the cell checks under a half, but paid
every epoch), and by the measurements of the last section it is file-system
time, not serialisation. With epochs this short, checkpointing every few
epochs, or every few minutes, is the better trade; with epochs of an hour,
every epoch costs nothing.
"""

# %%
fresh = shapes_mlp()                                        # a new process would build the model again...
saved = load_checkpoint(run_dir / "best.npz", fresh)        # ...and load the weights, without an optimizer
print("best.npz was written after epoch", saved["trainer"]["epoch"])
result = evaluate_model(fresh, test, CrossEntropyLoss())
print(f"test loss {result['loss']:.4f}, test accuracy {result['accuracy']:.3f} on {result['num_samples']} images")
for name, acc in zip(CLASS_NAMES, result["per_class_accuracy"]):
    print(f"  {name:<6} {acc:.3f}")
assert same_state(fresh.state_dict(), model.state_dict()), "early stopping restored the best weights: they are best.npz's"
mistakes = result["confusion_matrix"] * (1 - np.eye(len(CLASS_NAMES), dtype=np.int64))
true_class, predicted_class = np.unravel_index(mistakes.argmax(), mistakes.shape)
print(f"most frequent mistake: {CLASS_NAMES[true_class]} taken for {CLASS_NAMES[predicted_class]} "
      f"({mistakes.max()} of {result['confusion_matrix'][true_class].sum()} test images)")
per_class = dict(zip(CLASS_NAMES, result["per_class_accuracy"]))
plus = CLASS_NAMES.index("plus")
checks = {"test accuracy is within 0.05 of the best validation accuracy":
              abs(result["accuracy"] - history["val_accuracy"][trainer.best_epoch - 1]) < 0.05,
          "the ring is the easiest class": max(per_class, key=per_class.get) == "ring",
          "the plus is among the two hardest": "plus" in sorted(per_class, key=per_class.get)[:2],
          "the plus row spreads over every other class": all(mistakes[plus, j] > 0 for j in range(len(CLASS_NAMES)) if j != plus)}
assert all(checks.values()), f"the text says: {[c for c, ok in checks.items() if not ok]}; measured {per_class}"
plot_confusion_matrix(result["confusion_matrix"], CLASS_NAMES)

# %% [markdown]
"""
The weights loaded from `best.npz` into a newly built model are exactly the
weights the trainer ended with, because early stopping restored the same
epoch's weights: the `assert` checks it bit for bit. On the untouched test
set, accuracy is close to the best validation accuracy (within 0.05,
checked), as it should be for a validation set used only to choose an epoch.

The confusion matrix shows what the single accuracy number hides: the
classes are far from equally hard. The ring, with eight lit pixels, is the
easiest; the plus, which shares pixels with both bars and with the cross, is
among the hardest, and its row spreads over every other class. The most
frequent mistake printed above is the first place to look when deciding what
the model needs (more data of those classes, a model that sees spatial
structure, or augmentation).
"""

# %%
info = checkpoint_info(run_dir / "last.npz")
print("format", info["format"], "version", info["format_version"], "| tinytorch", info["tinytorch_version"])
print("model entries:", info["model"])
print("trainer metadata keys:", sorted(info["metadata"]["trainer"]))
print("tinytorch generator state:", info["metadata"]["trainer"]["rng"])
workdir.cleanup()

# %% [markdown]
"""
The JSON document is readable without tinytorch: any tool that can open a
zip and parse JSON can list what a checkpoint holds, which is how you debug
a checkpoint that a restarted job refuses to load.
"""

# %% [markdown]
"""
## Run all the tests

The block below runs every unit test of this chapter again, in order. When the
chapter is run as a script (`python modules/12_training/training_dev.py` from the
repository root), this block is what checks it.
"""

# %%
if __name__ == "__main__":
    test_unit_confusion_matrix()
    test_unit_evaluate_model()
    test_unit_checkpoint()
    test_unit_trainer()
    test_unit_resume()
    test_unit_plots()
    print("All tests of 12_training passed.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. How often to checkpoint.** You measured the share of an epoch spent
writing `last.npz`, and how much of a small save is the wait for `fsync`.
Now scale up: a model
with 7 billion parameters trained with Adam in float32 has a checkpoint of
about 7·10⁹ · 4 bytes · 3 = 84 GB. At 2 GB/s of disk bandwidth, how long
does a save take? If the cluster fails on average every 12 hours, what
interval does Young's `√(2·δ·M)` suggest, and how much training time does
checkpointing then cost? What would you have to copy, and how much memory
would that take, to write the checkpoint in a background thread while
training continues?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_checkpoint_interval", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** δ = 84 GB / 2 GB/s = 42 s. With M = 12 h = 43,200 s, the
interval is √(2 · 42 · 43,200) = √3,628,800 ≈ 1,905 s, about 32 minutes.
Saving then costs δ / τ = 42 / 1,905 ≈ 2.2% of the time, and a failure loses
on average half an interval of work, τ / (2M) = 1,905 / 86,400 ≈ 2.2% more:
about 4.4% in all (at the optimum the two shares are equal). To save in the
background, training must not change the arrays while they are written, so
take a consistent snapshot first: a copy of the weights and both Adam moments
(everything in the 84 GB; the gradients need not be saved), another 84 GB of
host memory, made at memory speed (a few seconds at 10–20 GB/s instead of
42 s of disk), then write the copy while training continues. The step count,
scheduler and generator states are a few bytes, copied with it.

**Rubric (2 points).** 1 point for 42 s and an interval of about half an
hour, with the cost (a few percent); 1 point for "snapshot weights and
optimizer state, 84 GB of extra memory, then write in the background".
### END SOLUTION
"""

# %% [markdown]
r"""
**2. The limits of "bit for bit".** Your resume test compares weights with
`np.array_equal`. Name two changes that would make it fail although every
piece of state is restored (think of the number of BLAS threads, a
different CPU, a data loader with several worker processes). Would you
expect the first differences in the last bits or large ones, and how does
a difference in the last bit grow over the following steps?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_bit_for_bit", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Floating-point addition is not associative, so anything that
changes the order of a sum changes the last bits: a different number of BLAS
threads (each thread sums its own block of the matrix product), a different
CPU or BLAS build (AVX-512 against AVX2 kernels, fused multiply-add or not,
another blocking), another NumPy or OpenBLAS version; and a loader with
several worker processes that deliver batches in arrival order, or whose
per-worker random generators are not part of the checkpoint. The first
differences are in the last bits, relative 10⁻⁷ in float32. They grow: each
step feeds the slightly different weights into the next forward pass, a ReLU
or an argmax can switch, and training amplifies small perturbations roughly
exponentially, so after some hundreds of steps the weights differ in the
second or third decimal, as the "no loader generator" row of the resume
table did. The final metrics then differ by about the run-to-run noise
between seeds.

**Rubric (2 points).** 1 point for two valid causes with the reason
(summation order, or unsaved worker state/order); 1 point for "last bits
first, then amplified over steps until the weights visibly differ".
### END SOLUTION
"""

# %% [markdown]
r"""
**3. A format that must last.** A checkpoint written today should load in a
year. Our file records a format version and the tinytorch version.
Suppose a later chapter renames a model's `fc1` to `proj`: what does
`load_checkpoint` report, and how would you write a migration that reads
old files? Why does `load_checkpoint` check every name and shape before it
copies anything, and why can it not check the optimizer's state the same
way?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_format_that_lasts", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** It raises a `CheckpointError` before changing anything:
"… does not fit <Model>: missing ['proj.weight', 'proj.bias'], unexpected
['fc1.weight', 'fc1.bias']; nothing was loaded". A migration reads the file
without a model (`checkpoint_info` / `_read`), renames the entries
(`{"fc1.weight": "proj.weight", "fc1.bias": "proj.bias"}`), and loads the
renamed state or writes a new file; a version number in the metadata (a
model or checkpoint version) selects which migrations to apply, in order, so
files of every age load. The optimizer state is keyed by parameter position,
so it survives a rename as long as the parameter order is unchanged. The
checks come first because a half-loaded model (some layers new, some old)
runs and produces plausible garbage, which is worse than an error; loading is
all or nothing. The optimizer's state cannot be checked the same way because
its layout is the optimizer's own business: `momentum_buffer` for SGD,
`step`, `exp_avg`, `exp_avg_sq` for Adam, any keys for another algorithm.
The checkpoint code can only hand it to `load_state_dict`, which is why it
keeps a snapshot and restores it if that call refuses.

**Rubric (2 points).** 1 point for the missing/unexpected error and a
rename-mapping migration chosen by a version; 1 point for "all or nothing"
and "the optimizer's state layout is its own, so only it can check it".
### END SOLUTION
"""

# %% [markdown]
r"""
**4. What early stopping costs and watches.** The Trainer keeps the best
weights in memory while waiting out its patience. What does that cost for
a model of 1 billion float32 parameters, and where else could the best
weights live? In the run above, validation loss and validation accuracy
disagreed about the best epoch: for a model that outputs a risk score used
as a probability, and for one whose top class is all that matters, which
should early stopping monitor?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_early_stopping_costs", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** 10⁹ × 4 bytes = 4 GB of extra memory for the whole run (on
an accelerator, 4 GB of its memory, unless the copy is moved to host
memory). Alternatives: keep the copy in host RAM, or not at all: `best.npz`
on disk already holds the best weights (`save_best`), and reloading it once
at the end costs one read instead of 4 GB held throughout. For a risk score
used as a probability, monitor the validation loss (cross-entropy is a proper
scoring rule: it rewards calibrated probabilities and punishes confident
mistakes, which accuracy ignores). For a model whose top class is all that
matters, monitor validation accuracy, or the metric the application uses
(F1, recall at a fixed precision). In the run above accuracy kept improving
for epochs after the loss's best epoch: the model grew overconfident on the
images it got wrong.

**Rubric (2 points).** 1 point for 4 GB and a place other than memory
(the best checkpoint on disk, or host memory); 1 point for loss for
probabilities and accuracy (or the task's metric) for decisions, with the
reason.
### END SOLUTION
"""

# %% [markdown]
"""
## Module summary

You built `tinytorch.training`, the layer between a model and a finished run:

- **Metrics** (`tinytorch.training.metrics`): `accuracy`,
  `compute_confusion_matrix` (one `bincount` over `true·C + predicted`), and
  `evaluate_model`, which evaluates in eval mode under `no_grad`, weights
  batches by their size, and reports loss, accuracy, per-class accuracy and
  the confusion matrix.
- **Checkpoints** (`tinytorch.training.checkpoint`): `save_checkpoint(path,
  model, optimizer=None, **metadata)` writes one `.npz` holding
  `model/<name>` arrays, `optimizer/...` arrays and a JSON document (format
  version, tinytorch version, every array's shape and dtype, the structure of
  the optimizer state, the metadata), with no pickle, atomically (temporary
  file, `fsync`, `os.replace`). `load_checkpoint(path, model, optimizer=None)`
  checks everything first and raises a one-line `CheckpointError` for a
  damaged file, a wrong version or names and shapes that do not fit, leaving
  the model and optimizer as they were. `checkpoint_info` shows the document.
- **The Trainer** (`tinytorch.training.trainer`): `fit(train_loader,
  val_loader=None, epochs, resume_from=None)` with per-epoch validation, a
  JSON-serialisable `History`, progress (a live bar in a terminal, one line
  per epoch elsewhere), `last.npz` and `best.npz`, early stopping that
  restores the best weights, per-part timings, and resumption that is exact
  because the checkpoint includes the scheduler, the counters, the best
  weights and every random generator's state.
- **Plots** (`tinytorch.training.plots`): `plot_training_history` and
  `plot_confusion_matrix`, returning the figure and writing a PNG on request.

What you measured: for a small model a training step's time is dominated by
fixed per-operation costs, so the time per sample falls almost in proportion
to the batch size until the arithmetic takes over; backward is nearer 1× the
forward than the 2× of FLOP counting at these sizes; a checkpoint is the
arrays plus a few hundred bytes per entry (2× the parameters with momentum),
and a small one costs mostly the `fsync`; leaving the loader's generator or
the optimizer's state out of a checkpoint gives a different run after a
restart, while the complete checkpoint gives the same weights bit for bit.

Next, chapter 13 takes the gap between the training and validation curves
you saw here and closes part of it: dropout, weight decay, data augmentation
and early stopping, compared on the same problem. Checkpoint 12 ("training")
checks that your loop learns, saves, refuses bad files and resumes exactly:
`tito checkpoint run 12`.
"""
