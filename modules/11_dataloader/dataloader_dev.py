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
# DataLoader

A model learns only from the numbers it is fed. Everything so far took its
inputs as ready-made tensors; a real training run reads tens of thousands of
images from disk, shuffles them, cuts them into batches, perturbs each image a
little so the model cannot memorise it, and hands every batch over fast enough
that the arithmetic never waits. In production, a slow input pipeline is one of
the most common reasons an expensive accelerator sits idle: the model is ready
for the next batch and the loader is not.

This chapter builds the input side of TinyTorch:

- `Dataset` and `TensorDataset`: "what is sample *i*, and how many are there?";
- `DataLoader`: shuffled, reproducible batches, with a fast path that gathers a
  whole batch with **one** NumPy indexing operation instead of a Python loop;
- `tinytorch.data.transforms`: `Compose`, `ToTensor`, `ConvertImageDtype`,
  `Normalize`, `RandomCrop` and `RandomHorizontalFlip`, each vectorised over a
  batch `(N, C, H, W)`;
- `tinytorch.data.cifar10`: `download_cifar10`, which fetches the CIFAR-10
  archive, verifies its checksum and extracts it *safely*, and
  `CIFAR10Dataset`, which loads it into compact `uint8` arrays.

The download part is about systems hygiene more than about arithmetic: a file
from the network can be truncated, corrupted or hostile, and a framework that
unpacks it carelessly can overwrite files anywhere on the machine. We will
attack our own downloader with broken and malicious archives and watch it
refuse each one without leaving a byte behind.

Everything here runs offline on data the chapter generates: a tiny archive in
the official CIFAR-10 layout, "downloaded" through a `file://` URL.
"""

# %% nbgrader={"grade": false, "grade_id": "default_exp", "locked": true, "schema_version": 3, "solution": false, "task": false}
#| default_exp data.loader

# %% [markdown]
r"""
## Background: batches, epochs and what they cost

**Why batches.** Training minimises the average loss over $N$ samples,
$L(\theta) = \frac{1}{N}\sum_i \ell_i(\theta)$. Computing its gradient
exactly touches every sample for one step. Stochastic gradient descent uses a
random *minibatch* $B$ of $b$ samples instead:

$$g_B = \frac{1}{b}\sum_{i \in B} \nabla \ell_i(\theta), \qquad
\mathbb{E}[g_B] = \nabla L(\theta), \qquad \operatorname{Var}[g_B] \propto \frac{1}{b}.$$

The estimate is unbiased *only if the batch is a uniform random sample*. That is
why the loader shuffles: datasets are often stored sorted (by class, by date, by
source). An image dataset distributed as one folder per class
(`train/airplane/0001.jpg`, a common layout) lists all airplanes, then all
automobiles, and so on; read in that order, every batch would contain one class
and each step would push the model towards "everything is an airplane".

**Epochs.** One pass over all $N$ samples in batches of $b$ is an *epoch* of
$\lceil N/b \rceil$ steps; the last batch has $N \bmod b$ samples unless we
drop it (`drop_last=True`, useful when a layer needs a full batch or a compiled
graph needs fixed shapes: then there are $\lfloor N/b \rfloor$ steps). A new
random order each epoch (a permutation, $O(N)$ to draw) keeps successive epochs
from repeating the same batches.

**What a batch costs.** A CIFAR-10 image is $3 \times 32 \times 32 = 3072$
bytes as `uint8`. A batch of $b$ images is $3072\,b$ bytes to copy out of the
dataset: a memory copy, cheap. What is *not* cheap is doing it the obvious way,
one sample at a time in Python: every `dataset[i]` costs a function call, a
tuple, a small array and a Tensor, together a microsecond or a few per
sample, and then the samples have to be stacked into one array (a second
copy). A NumPy
"fancy index" `data[indices]` does the same gather in one C loop. We will
measure the difference.

**Memory.** The 50,000 training images are $50000 \times 3072 = 153.6$ MB as
`uint8`, and four times that (614 MB) as `float32`. So the dataset stays `uint8`
and each *batch* is converted to floats just before the model sees it: the
pipeline's working set is a few batches, not the dataset.

**Augmentation.** Random crops (pad by 4 pixels, cut a random 32×32 window)
and random horizontal flips make every epoch show the model slightly different
images, a cheap way to fight overfitting (chapter 13 returns to it). Each
is $O(bCHW)$: a padded copy plus a gather for the crop, one copy for the flip.
"""

# %% [markdown]
"""
## Datasets: what sample *i* is

A dataset answers two questions: how many samples (`len(ds)`) and what is
sample *i* (`ds[i]`). `Dataset` makes both abstract, so forgetting one fails
when the dataset is created, not in the middle of an epoch.

A dataset whose samples live in NumPy arrays can answer a third question much
faster: *what are samples `indices`?* `get_batch(indices)` returns a ready batch
with one gather per array. It is optional; the loader uses it when it exists.
"""

# %%
#| export
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.nn import init


class Dataset(ABC):
    """A collection of samples: `len(ds)` of them, sample i is `ds[i]`.

    A dataset backed by arrays may also define `get_batch(indices)` returning a
    whole batch gathered with one index operation per array; DataLoader uses it
    instead of calling `__getitem__` once per sample.
    """

    @abstractmethod
    def __getitem__(self, index: int):
        """Sample `index` (for labelled data, a tuple such as (image, label))."""

    @abstractmethod
    def __len__(self) -> int:
        """The number of samples."""


class TensorDataset(Dataset):
    """Samples are rows: sample i is (t[i] for t in tensors), as in torch.utils.data.TensorDataset."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor or array")
        self.tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
        sizes = [t.shape[0] if t.ndim else None for t in self.tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: every tensor needs the same first dimension "
                             f"(the number of samples); got shapes {[t.shape for t in self.tensors]}")

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        # np.asarray keeps a NumPy scalar's dtype (a float64 label stays float64)
        return tuple(Tensor(np.asarray(t.data[index])) for t in self.tensors)

    def get_batch(self, indices: np.ndarray) -> tuple[Tensor, ...]:
        """Rows `indices` of every tensor: one fancy index (one copy) per tensor."""
        return tuple(Tensor(t.data[indices]) for t in self.tensors)


# %% [markdown]
"""
The test below checks that `TensorDataset` returns rows with their dtypes
intact (labels stay `int64`, features stay `float32`), that `get_batch` returns
the same rows as indexing one by one, and that tensors with different numbers
of samples are refused with a message, because a silent mismatch would pair
the wrong labels with the wrong features.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_tensor_dataset", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_tensor_dataset():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 1, 0])
    ds = TensorDataset(x, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    assert xi.shape == (2,) and xi.dtype == np.float32 and xi.tolist() == [8.0, 9.0]
    assert yi.shape == () and yi.dtype == np.int64 and yi.item() == 1
    xb, yb = ds.get_batch(np.array([4, 0, 2]))
    assert xb.shape == (3, 2) and yb.tolist() == [1, 0, 0]
    assert np.array_equal(xb.data, np.stack([ds[i][0].data for i in (4, 0, 2)]))
    try:
        TensorDataset(x, y[:5])
    except ValueError as err:
        print("mismatch refused:", err)
    else:
        raise AssertionError("TensorDataset accepted 6 features with 5 labels")
    try:
        Dataset()
    except TypeError as err:
        print("abstract:", err)
    else:
        raise AssertionError("Dataset() should be abstract")


test_unit_tensor_dataset()

# %% [markdown]
"""
## Collating: from a list of samples to one batch

When a dataset has no `get_batch`, the loader asks for each sample in turn and
*collates* the list: tensors and arrays are stacked along a new first axis,
Python ints become an `int64` tensor, floats a `float32` tensor (TinyTorch's
default float; PyTorch's `default_collate` gives `float64` here), and tuples,
lists and dicts are collated field by field. A sample type it cannot batch, or
samples of different shapes, get a one-line error that points at the way out:
a `collate_fn` of your own.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_default_collate", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def default_collate(samples: Sequence) -> Any:
    """Stack a list of samples into one batch, field by field (torch's default_collate).

    Args: samples, a non-empty list of samples of one structure (e.g. [(image, label), ...]).
    Returns: the same structure with every leaf batched: B samples of shape S become one Tensor (B, *S).
    """
    # Look at samples[0] to decide, and recurse for containers:
    #   Tensor / ndarray / NumPy scalar -> Tensor(np.stack(arrays)) (a Tensor's array is .data);
    #   bool or int -> int64 Tensor; float -> float32 Tensor; str / bytes -> a plain list;
    #   dict -> {key: default_collate([s[key] for s in samples])}; tuple / list -> a tuple, one batch per field
    #   (zip(*samples) gives the fields); anything else -> TypeError that suggests collate_fn=.
    # Pitfall: np.stack needs equal shapes; check first and raise a ValueError naming the shapes, and say
    # "pass collate_fn= to DataLoader", rather than letting NumPy's message reach the user.
    ### BEGIN SOLUTION
    first = samples[0]
    if isinstance(first, (Tensor, np.ndarray, np.generic)):
        arrays = [s.data if isinstance(s, Tensor) else np.asarray(s) for s in samples]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"default_collate: samples have different shapes {sorted(shapes)}; "
                             "make them equal in a transform or pass collate_fn= to DataLoader")
        return Tensor(np.stack(arrays))
    if isinstance(first, (bool, int)):
        return Tensor(np.array(samples, dtype=np.int64))
    if isinstance(first, float):
        return Tensor(np.array(samples, dtype=np.float32))
    if isinstance(first, (str, bytes)):
        return list(samples)
    if isinstance(first, dict):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        if len({len(s) for s in samples}) > 1:
            raise ValueError("default_collate: samples have different numbers of fields; "
                             "return the same structure from every __getitem__")
        return tuple(default_collate(list(field)) for field in zip(*samples))
    raise TypeError(f"default_collate cannot batch samples of type {type(first).__name__}; "
                    "pass collate_fn= to DataLoader")
    ### END SOLUTION


# %% [markdown]
"""
This test checks the three shapes a sample usually takes (a tuple of a tensor
and a label, a dict, a bare array) and the error for mismatched shapes, the
most common collate failure in practice (images of different sizes).
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_default_collate", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_default_collate():
    samples = [(Tensor(np.full((2, 3), i, dtype=np.float32)), i) for i in range(4)]
    images, labels = default_collate(samples)
    assert images.shape == (4, 2, 3) and images.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2, 3]
    batch = default_collate([{"x": np.ones(3), "w": 0.5}, {"x": np.zeros(3), "w": 1.5}])
    assert batch["x"].shape == (2, 3) and batch["w"].dtype == np.float32
    assert default_collate([np.arange(3), np.arange(3)]).shape == (2, 3)
    try:
        default_collate([np.zeros((3, 32, 32)), np.zeros((3, 28, 28))])
    except ValueError as err:
        print(err)
    else:
        raise AssertionError("images of different shapes were stacked")


test_unit_default_collate()

# %% [markdown]
"""
## The DataLoader

The loader turns a dataset into an iterable of batches. Each `iter(loader)` is
one epoch:

1. draw the order: `0..N-1`, or a fresh random permutation when `shuffle=True`;
2. cut it into slices of `batch_size` indices (keeping or dropping the short
   last one);
3. fetch each slice: `dataset.get_batch(indices)` when the dataset has it and no
   `collate_fn` was given (one gather per array), otherwise
   `collate_fn([dataset[i] for i in indices])`.

**Reproducible shuffling.** Where does the randomness come from? Three choices,
in order: a `generator` you pass (a `numpy.random.Generator`), a `seed` (the
loader makes its own generator from it), or TinyTorch's global generator, which
`tinytorch.manual_seed` resets. The loader keeps drawing from the same
generator, so epoch 2's order differs from epoch 1's, and two loaders built with
the same seed produce the same sequence of epochs. (PyTorch takes only
`generator=`; `seed=` is a TinyTorch convenience.)

Edge cases follow PyTorch: `batch_size` must be a positive integer (a
`ValueError` otherwise), and an empty dataset gives a loader of length 0 that
yields nothing. We allow that with `shuffle=True` too, where PyTorch's
`RandomSampler` refuses an empty dataset: an empty permutation is still a
permutation.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_DataLoader", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class DataLoader:
    """Iterate over a dataset in batches: each `iter()` is one epoch.

    Args:
        dataset: anything with `__len__` and `__getitem__` (and, optionally,
            `get_batch(indices)` to build a whole batch at once).
        batch_size: samples per batch (a positive integer).
        shuffle: draw a new random order every epoch.
        drop_last: drop the last batch when it is smaller than batch_size.
        seed / generator: where the shuffling randomness comes from (at most one);
            by default TinyTorch's global generator (see tinytorch.manual_seed).
        collate_fn: turns a list of samples into a batch (default_collate);
            giving one makes the loader fetch samples one by one.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, generator: np.random.Generator | None = None,
                 collate_fn: Callable | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if seed is not None and generator is not None:
            raise ValueError("pass seed= or generator=, not both (a seed makes the loader its own generator)")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.generator = np.random.default_rng(seed) if seed is not None else generator
        self.collate_fn = collate_fn

    def __len__(self) -> int:
        """Batches per epoch: ceil(N / batch_size), or floor with drop_last."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _fetch(self, indices: np.ndarray):
        """One batch: dataset.get_batch(indices) when it exists and no collate_fn was given, else collated samples."""
        get_batch = getattr(self.dataset, "get_batch", None)
        if self.collate_fn is None and get_batch is not None:
            return get_batch(indices)                      # one gather per array
        collate = self.collate_fn or default_collate
        return collate([self.dataset[int(i)] for i in indices])

    def __iter__(self) -> Iterator:
        """One epoch: yield len(self) batches, each self._fetch(indices) of up to batch_size indices."""
        # 1. The order of the N = len(self.dataset) samples: np.arange(N), or with shuffle a fresh permutation
        #    drawn from self.generator, or from TinyTorch's global one (init.generator()) when that is None.
        # 2. Cut it into consecutive slices of batch_size; the last one is shorter, and len(self) already
        #    says whether it is kept (drop_last), so loop over range(len(self)) and yield each fetched batch.
        # Pitfall: draw the permutation once per call to iter(), not once in __init__: each epoch needs a new
        # order, and drawing it from the same generator is what makes a seeded run repeat its epochs exactly.
        ### BEGIN SOLUTION
        n = len(self.dataset)
        if self.shuffle:
            rng = self.generator if self.generator is not None else init.generator()
            order = rng.permutation(n)
        else:
            order = np.arange(n)
        for b in range(len(self)):
            yield self._fetch(order[b * self.batch_size:(b + 1) * self.batch_size])
        ### END SOLUTION

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")


# %% [markdown]
"""
The next test pins down batch arithmetic, the place off-by-one bugs live: with
10 samples and batches of 4 the sizes must be 4, 4, 2 and `len(loader)` must be
3; with `drop_last` they must be 4, 4 and `len` 2. `len` has to agree with what
iteration yields, because training loops and learning-rate schedules use it to
count steps. It also checks the two edge cases PyTorch defines (empty dataset,
`batch_size < 1`) and that the per-sample path (a `collate_fn`) and the fast
path (`get_batch`) give the same batches.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_dataloader_batches", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_dataloader_batches():
    ds = TensorDataset(np.arange(10, dtype=np.float32), np.arange(10) % 3)
    loader = DataLoader(ds, batch_size=4)
    sizes = [len(x) for x, _ in loader]
    assert sizes == [4, 4, 2] and len(loader) == 3, sizes
    assert [x.tolist() for x, _ in loader][2] == [8.0, 9.0]
    dropped = DataLoader(ds, batch_size=4, drop_last=True)
    assert [len(x) for x, _ in dropped] == [4, 4] and len(dropped) == 2
    slow = DataLoader(ds, batch_size=4, collate_fn=default_collate)   # per-sample path
    for (xf, yf), (xs, ys) in zip(loader, slow):
        assert np.array_equal(xf.data, xs.data) and np.array_equal(yf.data, ys.data)
    empty = DataLoader(TensorDataset(np.zeros((0, 3))), batch_size=4, shuffle=True)
    assert len(empty) == 0 and list(empty) == []
    for bad in (0, -1, 2.5):
        try:
            DataLoader(ds, batch_size=bad)
        except ValueError as err:
            message = str(err)
        else:
            raise AssertionError(f"batch_size={bad!r} was accepted")
    print(message)


test_unit_dataloader_batches()

# %% [markdown]
"""
Shuffling has three properties worth a test each: every epoch is a permutation
(each sample exactly once; a bug that samples *with* replacement would silently
repeat some and skip others), two epochs of one loader differ, and the same
seed reproduces the same sequence of epochs, which is what makes a training run
repeatable.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_dataloader_shuffle", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_dataloader_shuffle():
    ds = TensorDataset(np.arange(100))

    def epoch(loader):
        return np.concatenate([x.data for (x,) in loader]).tolist()

    a = DataLoader(ds, batch_size=16, shuffle=True, seed=7)
    first, second = epoch(a), epoch(a)
    assert sorted(first) == list(range(100)) and sorted(second) == list(range(100))
    assert first != second, "two epochs came out in the same order"
    b = DataLoader(ds, batch_size=16, shuffle=True, seed=7)
    assert epoch(b) == first and epoch(b) == second, "the same seed gave a different order"
    assert epoch(DataLoader(ds, batch_size=16)) == list(range(100))
    import tinytorch
    tinytorch.manual_seed(3)
    c = epoch(DataLoader(ds, batch_size=16, shuffle=True))
    tinytorch.manual_seed(3)
    assert epoch(DataLoader(ds, batch_size=16, shuffle=True)) == c, "manual_seed does not reproduce the order"


test_unit_dataloader_shuffle()

# %% [markdown]
r"""
## Transforms: preparing images, a batch at a time

A transform is a callable from images to images. Torchvision's classic
transforms work on one image at a time and the loader calls them once per
sample. Ours also accept a whole batch `(N, C, H, W)` and process it with NumPy
array operations, with *independent randomness per image*: in a batch of 256,
each image gets its own crop position and its own coin flip, as if the
transform had been called once per image. (Torchvision's tensor transforms,
given a batch, draw one crop and one coin for the whole batch: a different,
less varied augmentation.)

Transforms take NumPy arrays or Tensors and return Tensors. They are data
preparation, not part of the model, so they work on raw arrays and record no
gradient.

- `ToTensor()`: images as image files decode them, `uint8` in height × width ×
  channels layout (`(H, W, C)` or `(N, H, W, C)`), become `float32` in
  channels-first layout with values in $[0, 1]$. Moving the channel axis is a
  transpose, and the conversion writes a fresh contiguous array.
- `ConvertImageDtype(dtype=np.float32)`: the same scaling for images that are
  already channels-first (CIFAR-10 is stored that way).
- `Normalize(mean, std)`: $(x_c - \mu_c) / \sigma_c$ per channel, so every
  input channel has roughly zero mean and unit variance.
- `RandomHorizontalFlip(p=0.5)`, `RandomCrop(size, padding)`: augmentation.
- `Compose([...])`: applies them in order.

Random transforms draw from a `generator` you pass or from TinyTorch's global
generator at call time, so `tinytorch.manual_seed` makes augmentation
repeatable too.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_Normalize", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data.transforms
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinytorch.core.tensor import Tensor
from tinytorch.nn import init


def _array(x) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _images(x, who: str) -> np.ndarray:
    """x as an array of one image (C, H, W) or a batch (N, C, H, W)."""
    a = _array(x)
    if a.ndim not in (3, 4):
        raise ValueError(f"{who} expects an image (C, H, W) or a batch (N, C, H, W), got shape {a.shape}")
    return a


def _scale_to_float(a: np.ndarray, dtype) -> np.ndarray:
    """uint8 0..255 -> floats 0..1 (other floats: only cast), as a new C-contiguous array."""
    if a.dtype == np.uint8:
        out = np.ascontiguousarray(a, dtype=dtype)
        out /= 255
        return out
    if np.issubdtype(a.dtype, np.floating):
        return np.array(a, dtype=dtype, order="C")
    raise TypeError(f"expected uint8 or floating-point images, got {a.dtype}")


class Compose:
    """Apply transforms in order: Compose([RandomCrop(32, 4), Normalize(m, s)])."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self) -> str:
        return "Compose(" + ", ".join(repr(t) for t in self.transforms) + ")"


class ToTensor:
    """uint8 images (H, W, C) or batches (N, H, W, C) -> float32 (C, H, W) / (N, C, H, W) in [0, 1]."""

    def __call__(self, pic) -> Tensor:
        a = _array(pic)
        if a.ndim == 2:                                   # (H, W) greyscale -> (H, W, 1)
            a = a[:, :, None]
        if a.ndim not in (3, 4):
            raise ValueError(f"ToTensor expects (H, W, C) or (N, H, W, C) images, got shape {a.shape}")
        chw = np.moveaxis(a, -1, -3)                      # (..., H, W, C) -> (..., C, H, W), a view
        return Tensor(_scale_to_float(chw, np.float32 if a.dtype == np.uint8 else a.dtype))

    def __repr__(self) -> str:
        return "ToTensor()"


class ConvertImageDtype:
    """Channels-first uint8 images -> floats in [0, 1] (float images are only cast)."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"ConvertImageDtype converts to a floating-point dtype, not {self.dtype}")

    def __call__(self, x) -> Tensor:
        return Tensor(_scale_to_float(_images(x, "ConvertImageDtype"), self.dtype))

    def __repr__(self) -> str:
        return f"ConvertImageDtype({self.dtype})"


class Normalize:
    """(x - mean[c]) / std[c] for every channel c of float images (C, H, W) or (N, C, H, W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: {self.mean.size} means but {self.std.size} stds")
        if np.any(self.std == 0):
            raise ValueError("Normalize: a std of 0 would divide by zero")

    def __call__(self, x) -> Tensor:
        """(x - mean[c]) / std[c] per channel; x is float (C, H, W) or (N, C, H, W), a Tensor or an array."""
        # a = _images(x, "Normalize") gives the array and checks ndim; the channel axis is a.shape[-3].
        # Refuse integer images with a TypeError that says to put ToTensor() or ConvertImageDtype() first, and a
        # mean/std of the wrong length (1 value, or one per channel) with a ValueError.
        # Shape mean and std as (C, 1, 1) in a's dtype so they broadcast over H, W (and N) and float32 stays float32.
        # Pitfall: never modify the input; make one new array (a - mean) and divide it in place.
        ### BEGIN SOLUTION
        a = _images(x, "Normalize")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"Normalize expects float images, got {a.dtype}; "
                            "put ToTensor() or ConvertImageDtype() before it")
        channels = a.shape[-3]
        if self.mean.size not in (1, channels):
            raise ValueError(f"Normalize has {self.mean.size} means for images with {channels} channels")
        mean = self.mean.astype(a.dtype).reshape(-1, 1, 1)  # (C, 1, 1): broadcasts over H, W (and N)
        std = self.std.astype(a.dtype).reshape(-1, 1, 1)
        out = a - mean                                     # one new array ...
        out /= std                                         # ... divided in place
        return Tensor(out)
        ### END SOLUTION

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


# %% [markdown]
"""
The test checks the values, not only the shapes: a pixel of 255 must become
1.0 and land at the right place after the channel axis moves (a transpose bug
that mixes up H, W and C keeps the shape of a square image but scrambles it),
and normalising constant channels must give exactly the expected numbers. It
also checks that `Normalize` refuses `uint8` input rather than computing
`(200 - 0.5) / 0.25` in integers.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_to_tensor_and_normalize", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_to_tensor_and_normalize():
    hwc = np.zeros((4, 5, 3), dtype=np.uint8)
    hwc[1, 2, 0] = 255                                    # red pixel at row 1, column 2
    hwc[3, 4, 2] = 51                                     # some blue at row 3, column 4
    chw = ToTensor()(hwc)
    assert chw.shape == (3, 4, 5) and chw.dtype == np.float32 and chw.is_contiguous()
    assert chw.data[0, 1, 2] == 1.0 and chw.data[2, 3, 4] == np.float32(0.2) and chw.data.sum() == np.float32(1.2)
    assert ToTensor()(np.stack([hwc, hwc])).shape == (2, 3, 4, 5)
    assert np.array_equal(ConvertImageDtype()(np.moveaxis(hwc, -1, 0)).data, chw.data)
    constant = np.stack([np.full((4, 4), v, np.float32) for v in (0.2, 0.5, 0.8)])   # (3, 4, 4)
    out = Normalize([0.2, 0.4, 0.6], [0.1, 0.2, 0.4])(constant).data
    assert out.dtype == np.float32 and np.allclose(out[:, 0, 0], [0.0, 0.5, 0.5])
    batch = Normalize([0.5], [0.5])(np.stack([constant, constant]))   # one mean for every channel
    assert batch.shape == (2, 3, 4, 4) and np.allclose(batch.data[1, 2], 0.6)
    try:
        Normalize([0.5, 0.5, 0.5], [0.2, 0.2, 0.2])(hwc.transpose(2, 0, 1))
    except TypeError as err:
        print(err)
    else:
        raise AssertionError("Normalize accepted uint8 images")


test_unit_to_tensor_and_normalize()

# %% [markdown]
"""
### Random horizontal flip, vectorised

For a batch, draw one uniform number per image; the images whose number is
below `p` are replaced by their mirror image, `x[..., ::-1]` (reversing the
width axis is a view with a negative stride; assigning it into the output copies
it). One random draw and one indexed assignment for the whole batch, instead of
a Python `if` per image.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_RandomHorizontalFlip", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data.transforms
class RandomHorizontalFlip:
    """Mirror each image left-right with probability p (an independent coin per image of a batch)."""

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p
        self.generator = generator

    def __call__(self, x) -> Tensor:
        """Each image of x ((C, H, W) or a batch (N, C, H, W)) mirrored left-right with probability p."""
        # Work on a batch: add a leading axis to a single image, and take it off again at the end.
        # Draw one uniform number per image from self.generator (or init.generator() when None): those < p flip.
        # Copy the batch, then assign the mirrored images (width axis reversed: [..., ::-1]) into the copy in one
        # indexed assignment; no Python loop over images.
        # Pitfall: never flip the caller's array in place; the dataset would be changed for every later epoch.
        ### BEGIN SOLUTION
        a = _images(x, "RandomHorizontalFlip")
        batch = a if a.ndim == 4 else a[None]              # (N, C, H, W)
        rng = self.generator if self.generator is not None else init.generator()
        flip = np.flatnonzero(rng.random(len(batch)) < self.p)   # images whose coin came up
        out = batch.copy()
        out[flip] = batch[flip, :, :, ::-1]                # mirror the width axis of those
        return Tensor(out if a.ndim == 4 else out[0])
        ### END SOLUTION

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


# %% [markdown]
"""
To test a random transform without tying the test to the order of its random
draws, we check a property that any correct implementation has, image by
image: every flipped output is either the input or its exact mirror, about
half of a batch is mirrored with `p=0.5`, `p=0` and `p=1` are the identity
and "always", a single image stays a single image, and the input is left as
it was.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_random_flip", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_random_flip():
    rng = np.random.default_rng(0)
    batch = rng.integers(1, 256, size=(64, 3, 8, 8)).astype(np.uint8)
    original = batch.copy()
    flipped = RandomHorizontalFlip(p=0.5, generator=np.random.default_rng(1))(batch).data
    mirrored = [np.array_equal(f, x[..., ::-1]) for f, x in zip(flipped, batch)]
    same = [np.array_equal(f, x) for f, x in zip(flipped, batch)]
    assert all(m or s for m, s in zip(mirrored, same)), "a flipped image is neither the input nor its mirror"
    assert 10 < sum(mirrored) < 54, f"{sum(mirrored)} of 64 flipped with p=0.5"
    assert np.array_equal(batch, original), "the flip changed its input"
    assert np.array_equal(RandomHorizontalFlip(p=0.0)(batch).data, batch)
    assert np.array_equal(RandomHorizontalFlip(p=1.0)(batch).data, batch[..., ::-1])
    assert RandomHorizontalFlip(p=1.0)(batch[0]).shape == (3, 8, 8)
    print(f"RandomHorizontalFlip: {sum(mirrored)} of 64 images mirrored with p=0.5")


test_unit_random_flip()

# %% [markdown]
r"""
### Random crop, vectorised

`RandomCrop(size, padding)` pads each image with `padding` zeros on every side
and cuts a random `size` window out of it. For one image that is a slice,
`padded[:, top:top+h, left:left+w]`. For a batch, every image has its own `top`
and `left`, so a single slice cannot do it. Two ideas from chapter 02 (views and
strides) solve it without a loop:

1. `sliding_window_view(padded, (h, w), axis=(2, 3))` is a *view* of shape
   `(N, C, H', W', h, w)`: element `[n, c, t, l]` is the `h × w` window whose
   corner is at `(t, l)`. It is made by adding two axes whose strides repeat the
   row and column strides; no byte is copied, however many windows there are.
2. Indexing that view with `[arange(N), :, tops, lefts]` picks, for every image
   `n`, its own window `(tops[n], lefts[n])`. The three index arrays broadcast to
   `(N,)`; because a slice separates them, NumPy puts that axis first and keeps
   the rest, giving `(N, C, h, w)`. This is the only copy: each output pixel is
   written once.

$$\text{out}[n, c, i, j] = \text{padded}[n,\; c,\; \text{top}_n + i,\; \text{left}_n + j].$$

The padding itself is one allocation of the padded batch filled with `fill`
and one slice assignment of the images into its middle.
"""

# %% nbgrader={"grade": false, "grade_id": "impl_RandomCrop", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data.transforms
class RandomCrop:
    """Pad by `padding` (with `fill`) and cut a random size×size window; a fresh position per image."""

    def __init__(self, size: int | tuple[int, int], padding: int = 0, fill: float = 0,
                 generator: np.random.Generator | None = None):
        self.size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be a positive int or (height, width), got {size!r}")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding, self.fill, self.generator = int(padding), fill, generator

    def __call__(self, x) -> Tensor:
        """A random (h, w) = self.size window of each image, after padding by self.padding with self.fill."""
        # 1. As a batch (N, C, H, W); with padding, copy it into the middle of a new (N, C, H+2p, W+2p) array
        #    filled with self.fill (same dtype). A crop larger than the padded image is a ValueError.
        # 2. One top in [0, H' - h] and one left in [0, W' - w] per image (rng.integers, size=N), from
        #    self.generator or init.generator().
        # 3. sliding_window_view(padded, (h, w), axis=(2, 3)) is a view (N, C, H'-h+1, W'-w+1, h, w);
        #    index it with [np.arange(N), :, tops, lefts] to get (N, C, h, w), image n's own window.
        # Pitfall: one random position for the whole batch passes a shape test but is a weaker augmentation.
        ### BEGIN SOLUTION
        a = _images(x, "RandomCrop")
        batch = a if a.ndim == 4 else a[None]              # (N, C, H, W)
        n, c, height, width = batch.shape
        p = self.padding
        if p:
            padded = np.full((n, c, height + 2 * p, width + 2 * p), self.fill, dtype=batch.dtype)
            padded[:, :, p:p + height, p:p + width] = batch
            batch, height, width = padded, height + 2 * p, width + 2 * p
        h, w = self.size
        if h > height or w > width:
            raise ValueError(f"RandomCrop: a {h}x{w} crop does not fit in a {height}x{width} (padded) image")
        rng = self.generator if self.generator is not None else init.generator()
        tops = rng.integers(0, height - h + 1, size=n)     # (N,)
        lefts = rng.integers(0, width - w + 1, size=n)     # (N,)
        windows = sliding_window_view(batch, (h, w), axis=(2, 3))   # (N, C, H-h+1, W-w+1, h, w), a view
        out = windows[np.arange(n), :, tops, lefts]        # (N, C, h, w): image n's window, copied once
        return Tensor(out if a.ndim == 4 else out[0])
        ### END SOLUTION

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


# %% [markdown]
"""
The crop test uses the same idea: every cropped output must equal *some*
window of the padded input, found by trying every position with a plain
per-image slice. It also checks that different images really get different
positions (a bug that reuses one position for the whole batch would pass the
first check), that a fixed generator seed reproduces the result, and that a
crop larger than the image is refused.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_random_crop", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _crop_positions(image: np.ndarray, out: np.ndarray, padding: int) -> list[tuple[int, int]]:
    """Every (top, left) at which `out` is a window of `image` padded with zeros: a per-image reference."""
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
    h, w = out.shape[-2:]
    return [(t, l) for t in range(padded.shape[1] - h + 1) for l in range(padded.shape[2] - w + 1)
            if np.array_equal(padded[:, t:t + h, l:l + w], out)]


def test_unit_random_crop():
    rng = np.random.default_rng(0)
    batch = rng.integers(1, 256, size=(64, 3, 8, 8)).astype(np.uint8)   # no zeros: padding stays visible
    crop = RandomCrop(8, padding=2, generator=np.random.default_rng(2))
    out = crop(batch).data
    assert out.shape == (64, 3, 8, 8) and out.dtype == np.uint8
    positions = [_crop_positions(x, o, 2) for x, o in zip(batch, out)]
    assert all(positions), "a crop is not a window of the padded image"
    assert len({p[0] for p in positions}) > 5, "every image got the same crop position"
    ### BEGIN HIDDEN TESTS
    again = RandomCrop(8, padding=2, generator=np.random.default_rng(2))(batch).data
    assert np.array_equal(out, again), "the same generator seed gave different crops"
    ### END HIDDEN TESTS
    single = RandomCrop((5, 6))(batch[0]).data                 # no padding, a rectangle
    assert single.shape == (3, 5, 6) and _crop_positions(batch[0], single, 0)
    try:
        RandomCrop(12)(batch)
    except ValueError as err:
        print(err)
    else:
        raise AssertionError("a crop larger than the image was accepted")


test_unit_random_crop()

# %% [markdown]
"""
`Compose` is a loop, so its test is short: a standard CIFAR-10 training
pipeline applied to a batch gives a normalised `float32` batch of the right
shape, and the pipeline applied to one image gives one image.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_compose", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_compose():
    pipeline = Compose([ConvertImageDtype(), RandomCrop(32, padding=4), RandomHorizontalFlip(),
                        Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])
    batch = np.full((5, 3, 32, 32), 128, dtype=np.uint8)
    out = pipeline(batch)
    assert out.shape == (5, 3, 32, 32) and out.dtype == np.float32
    inside = out.data[:, :, 4:28, 4:28]                   # never reached by the 4-pixel zero padding
    assert np.allclose(inside, (128 / 255 - 0.5) / 0.25, atol=1e-6)
    assert out.data.min() == np.float32(-2.0), "zero padding should normalise to (0 - 0.5) / 0.25"
    assert pipeline(batch[0]).shape == (3, 32, 32)
    print(pipeline)


test_unit_compose()

# %% [markdown]
"""
## CIFAR-10: downloading a dataset safely

CIFAR-10's "python version" is one file,
`https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz` (about 170 MB, md5
`c58f30108f718f92721af3b95e74349a`). Inside is a folder `cifar-10-batches-py`
with five training batches of 10,000 images (`data_batch_1` … `data_batch_5`),
one test batch (`test_batch`) and `batches.meta` with the class names. Each
batch is a Python pickle of a dict: `data` is a `uint8` array `(10000, 3072)`
whose rows are 1024 red, then 1024 green, then 1024 blue values (so
`reshape(-1, 3, 32, 32)` gives channels-first images without moving a byte),
and `labels` is a list of 10,000 class numbers.

Getting it onto disk correctly is a small systems problem with several ways to
go wrong:

| what can happen | what we do |
| --- | --- |
| the connection drops; the file is truncated | compare the bytes received with `Content-Length`, then verify a checksum |
| a mirror serves different or corrupt bytes | verify `md5:` or `sha256:` before touching the content; mismatch → error |
| the archive names a member `../../.bashrc` or `/etc/cron.d/x` | check every member *before* writing it: no absolute paths, no `..` |
| a member is a symlink to `/` and the next member writes "through" it | accept only regular files and directories |
| a device file or FIFO | refused, same rule |
| the process dies halfway | download to a temporary file and extract into a temporary folder *inside* `root`; one `rename` puts the finished folder in place, so the real path never holds half a dataset |
| the same data is requested again | a marker file records the verified checksum (and each extracted file's sha256); a matching copy is reused without downloading |

**Mirrors.** Machines without internet access (CI runners, clusters, this
course's build) use a mirror: pass `url=` and `checksum=`, or set
`TINYTORCH_CIFAR10_URL` and `TINYTORCH_CIFAR10_CHECKSUM` (for example
`sha256:<64 hex digits>`). A mirror that rebuilds the archive has different
bytes and therefore a different checksum, so a mirror URL must come with its
checksum: as an argument, the environment variable, or a file `<archive>.sha256`
(or `.md5`) next to it. A URL with no checksum anywhere is refused: unverified
bytes never reach the unpickler.

**Pickle.** `pickle.load` can run arbitrary code chosen by whoever wrote the
file, so it is acceptable only for this official format read from a
checksum-verified archive. We add two more guards: the dataset re-hashes each
batch file against the sha256 recorded at extraction before unpickling it, and
the unpickler is restricted to the handful of classes a CIFAR-10 batch contains
(NumPy arrays, dtypes and byte strings); anything else is refused.

**md5 vs sha256.** MD5 is broken for *deliberate* collisions: an attacker can
make two different files with the same MD5. It still catches accidental
corruption, which is why the official site's md5 is good enough for the
official URL; for a mirror we recommend sha256. Hashing reads every byte once:
its cost is linear in the file size (we measure it below).
"""

# %% [markdown]
"""
### Files that survive a crash, and the ones a crash leaves behind

Everything this course writes to disk (a download here, a checkpoint in
chapter 12, a packaged model in chapter 16) is written to a temporary file in
the target's folder and renamed over the target in one step. Two details
decide whether that is safe in practice:

- **Permissions.** `tempfile.mkstemp` creates its file readable by its owner
  only (0600), so the rename must give it the mode the user expects: an
  existing target's own mode (a private 0600 file stays private), or for a new
  file `0o666` minus the process's umask, exactly what `open(path, "w")` would
  have given it. `new_file_mode` computes that.
- **Leftovers.** `kill -9` (or a `SIGTERM` with no handler, or a power cut)
  ends a writer before its clean-up runs, and its temporary stays behind. Each
  temporary is named `.<target>.<pid>.<random>...`, so the next writer of the
  same target can tell its own kind of leftovers apart: one whose process no
  longer exists is stale and `remove_stale_temporaries` deletes it; one whose
  process is alive belongs to a writer at work and is left alone.
"""

# %%
#| export data.files
import os
import shutil
from pathlib import Path


def current_umask() -> int:
    """The process's umask (read from /proc where it exists, so no other thread sees it change)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: str | Path) -> int:
    """The mode a file written at `path` should get: the existing file's, else 0o666 minus the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def temporary_prefix(name: str) -> str:
    """The prefix of this process's temporaries for a target called `name`: '.<name>.<pid>.'."""
    return f".{name}.{os.getpid()}."


def _process_gone(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":              # ours, or no cheap liveness check: keep it
        return False
    try:
        os.kill(pid, 0)                                    # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:                                        # PermissionError: it exists, it is someone else's
        return False
    return False


def remove_stale_temporaries(folder: str | Path, name: str) -> list[Path]:
    """Delete the temporaries a killed writer of `name` left in `folder`; return what was deleted.

    A temporary is '.<name>.<pid>.<rest>' (see temporary_prefix); it is stale when process <pid> no
    longer exists. A '.<name>.<rest>.tmp' without a pid (written before pids were recorded) is stale too.
    Links are removed as links, never followed; nothing outside `folder` is touched.
    """
    folder = Path(folder)
    prefix = f".{name}."
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        token, dot, rest = entry.name[len(prefix):].partition(".")
        if not token or not dot:
            continue
        if token.isdigit():
            if not _process_gone(int(token)):
                continue
        elif rest != "tmp":
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            pass                                           # not ours to remove after all (permissions): leave it
    return removed


# %%
#| export data.cifar10
import codecs
import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.data.files import new_file_mode, remove_stale_temporaries, temporary_prefix
from tinytorch.data.loader import Dataset

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_CHECKSUM = "md5:c58f30108f718f92721af3b95e74349a"   # published with the official archive
URL_ENV = "TINYTORCH_CIFAR10_URL"
CHECKSUM_ENV = "TINYTORCH_CIFAR10_CHECKSUM"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
MARKER = ".tinytorch-verified.json"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_DIGEST_LENGTH = {"md5": 32, "sha256": 64}


class DatasetError(RuntimeError):
    """A dataset that cannot be downloaded, verified or read; nothing half-written was left behind."""


def parse_checksum(text: str) -> tuple[str, str]:
    """'sha256:<hex>' or 'md5:<hex>' -> (algorithm, lowercase hex digest)."""
    algorithm, sep, digest = str(text).strip().partition(":")
    algorithm, digest = algorithm.lower(), digest.lower()
    if (not sep or algorithm not in _DIGEST_LENGTH or len(digest) != _DIGEST_LENGTH[algorithm]
            or any(ch not in "0123456789abcdef" for ch in digest)):
        raise ValueError(f"checksum {text!r} is not 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'")
    return algorithm, digest


def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    """The checksum of a file as '<algorithm>:<hex>', read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


# %% [markdown]
"""
### A CIFAR-10 archive we can make ourselves

Tests and this chapter cannot download 170 MB, and should not depend on a
network at all. `write_cifar10_archive` writes a small archive in exactly the
official layout: the same folder, file names, pickled dicts (protocol 2, byte
string keys, as the original Python 2 pickles load) and a `uint8` data array
of shape `(n, 3072)`. Its images are not noise: each class has its own colour,
plus noise, so a small model can learn them and chapter 12 can train on them.
The output is deterministic (fixed timestamps in the tar, no file name or time in the gzip header),
so the same arguments always give the same bytes and the same checksum, which
the function returns.
"""


# %%
#| export data.cifar10
_PALETTE = ((200, 60, 60), (60, 200, 60), (60, 60, 200), (200, 200, 60), (200, 60, 200),
            (60, 200, 200), (230, 140, 40), (120, 120, 120), (40, 40, 40), (240, 240, 240))


def _fake_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[int]]:
    labels = rng.integers(0, len(CLASSES), size=n)
    noise = rng.normal(0.0, 48.0, size=(n, 3, 32, 32))
    images = np.clip(np.array(_PALETTE)[labels][:, :, None, None] + noise, 0, 255).astype(np.uint8)
    return images.reshape(n, 3072), labels.tolist()       # rows: 1024 red, 1024 green, 1024 blue


def write_cifar10_archive(path: str | Path, n_train: int = 500, n_test: int = 100, seed: int = 0) -> str:
    """Write a small CIFAR-10 archive in the official layout; return its checksum 'sha256:<hex>'.

    The training images are split over data_batch_1..5 as evenly as possible; the
    bytes depend only on the arguments.
    """
    if n_train < 0 or n_test < 0:
        raise ValueError(f"write_cifar10_archive: image counts must be >= 0, got {n_train} and {n_test}")
    rng = np.random.default_rng(seed)
    train_x, train_y = _fake_images(rng, n_train)
    test_x, test_y = _fake_images(rng, n_test)
    files = {}
    for b, part in enumerate(np.array_split(np.arange(n_train), len(TRAIN_FILES))):
        files[TRAIN_FILES[b]] = {b"batch_label": f"training batch {b + 1} of 5".encode(),
                                 b"labels": [train_y[i] for i in part], b"data": train_x[part],
                                 b"filenames": [f"fake_{i:05d}.png".encode() for i in part]}
    files[TEST_FILES[0]] = {b"batch_label": b"testing batch 1 of 1", b"labels": test_y, b"data": test_x,
                            b"filenames": [f"fake_test_{i:05d}.png".encode() for i in range(n_test)]}
    files[META_FILE] = {b"num_cases_per_batch": 10000, b"label_names": [c.encode() for c in CLASSES],
                        b"num_vis": 3072}
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.GNU_FORMAT) as tar:
        folder = tarfile.TarInfo(FOLDER)
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, 1262304000
        tar.addfile(folder)
        for name, content in files.items():
            blob = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size, info.mode, info.mtime = len(blob), 0o644, 1262304000
            tar.addfile(info, io.BytesIO(blob))
    path = Path(path)
    # filename="" and mtime=0: the gzip header names no file and no time, so the bytes depend on the arguments only
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz:
        gz.write(tar_bytes.getvalue())
    return file_checksum(path, "sha256")


# %% [markdown]
"""
### Streaming the download

`_download` copies the URL to a file in 1 MiB chunks and hashes each chunk as it
arrives, so the archive is read once and never held in memory. `urllib`
understands `https://` and `file://` alike, which is how the tests and this
chapter "download" from a local file. When the server announced a
`Content-Length`, a short read is reported as a truncated download. The progress
bar is optional and goes to stderr (standard output stays clean for whatever
the program prints).
"""


# %%
#| export data.cifar10
@contextlib.contextmanager
def _progress_bar(total: int | None, enabled: bool, description: str):
    """Yield `advance(n_bytes)`; a rich progress bar on stderr when enabled and rich is installed."""
    if not enabled:
        yield lambda n: None
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
    except ImportError:                                   # no rich: one line before, one after
        print(f"{description} ...", file=sys.stderr)
        yield lambda n: None
        print(f"{description}: done", file=sys.stderr)
        return
    console = Console(file=sys.stderr, force_jupyter=False)   # plain text in notebooks too
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _download(url: str, dest: Path, algorithm: str, progress: bool, mirror_env: str = URL_ENV) -> str:
    """Stream `url` into `dest`, hashing as it goes; return the hex digest."""
    h = hashlib.new(algorithm)
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _progress_bar(total, progress, f"Downloading {url.rsplit('/', 1)[-1]}") as advance:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DatasetError(f"cannot download {url}: {reason}; check the URL, or set {mirror_env} to a mirror") from None
    if total is not None and received != total:
        raise DatasetError(f"download of {url} stopped after {received} of {total} bytes; run it again")
    return h.hexdigest()


def _checksum_beside(url: str) -> str | None:
    """A mirror's published checksum: the first word of <url>.sha256 or <url>.md5, if either exists."""
    for algorithm in ("sha256", "md5"):
        try:
            with urllib.request.urlopen(f"{url}.{algorithm}", timeout=30) as response:
                words = response.read(4096).decode("ascii", "replace").split()
        except (urllib.error.URLError, OSError, ValueError):
            continue
        if words:
            return f"{algorithm}:{words[0]}"
    return None


# %% [markdown]
"""
### Extracting safely

`tarfile.extractall` trusts the archive: a member called `../../x` is written
outside the target folder, an absolute name is written where it says, a symlink
member can point anywhere and a later member is written through it. This is a
real and old vulnerability (CVE-2007-4559); Python 3.12 added extraction
filters (PEP 706) and makes the safe `"data"` filter the default only in 3.14.
We do not rely on either: `_safe_extract` checks every member against a short
list of rules *before* writing it, and writes regular files itself, with
default permissions, into a fresh temporary folder. The first unsafe member
stops the extraction with an error naming it, and the caller deletes the
temporary folder. One more subtlety: `tarfile` treats an unreadable header in
the middle of an archive as its end, silently. So after the last member we read
the compressed stream to its end, which makes `gzip` compare the CRC-32 stored
in the file with the one of everything it decompressed: damage anywhere in the
archive becomes an error, even if the checksum we were given was computed for
the damaged file.
"""


# %% nbgrader={"grade": false, "grade_id": "impl_unsafe", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export data.cifar10
def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why extracting this member could write outside the target folder, or None if it is safe.

    Args: member, a tar header (member.name, member.issym(), member.islnk(), member.isfile(), member.isdir()).
    Returns: a short reason ("an absolute path", "a link ...") for the error message, or None.
    """
    # Refuse, in this order: an absolute name (starts with / or a backslash, or has a Windows drive: PureWindowsPath(name).anchor);
    # a name with a ".." part (split it with PurePosixPath after turning backslashes into slashes);
    # a symlink or hard link (its target could point anywhere); anything that is not a regular file or a directory.
    # Pitfall: checking name.startswith("..") is not enough: "a/../../b" climbs out too.
    ### BEGIN SOLUTION
    name = member.name
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
        return "an absolute path"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "a path that climbs out with '..'"
    if member.issym() or member.islnk():
        return f"a link (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return "a device, FIFO or other special file"
    return None
    ### END SOLUTION


def _safe_extract(archive: Path, into: Path, source: str) -> None:
    """Extract regular files and folders of a tar.gz into `into`, refusing any unsafe member."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:                             # members are read one at a time
                problem = _unsafe(member)
                if problem:
                    raise DatasetError(f"{source} contains {member.name!r}, {problem}; refusing to extract "
                                       "(nothing was kept)")
                target = into.joinpath(*PurePosixPath(member.name).parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            # tar stops at the first unreadable header; reading the gzip stream to its end
            # makes gzip check its CRC over every byte, so damage anywhere is noticed.
            while tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DatasetError(f"{source} is not a readable tar.gz archive ({err}); nothing was kept") from None


# %% [markdown]
"""
The rules are tested on tar headers alone, no archive needed: the members of
a real CIFAR-10 archive (a folder, regular files) pass, and each way out is
refused, including a `..` hidden in the middle of a path and a Windows drive
letter. Whole archives, good and hostile, follow once `download_cifar10` is
built.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_unsafe_members", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_unsafe_members():
    def header(name, kind=tarfile.REGTYPE, link=""):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        return info

    safe = [header(FOLDER, tarfile.DIRTYPE), header(f"{FOLDER}/data_batch_1"), header(f"{FOLDER}/batches.meta")]
    assert [_unsafe(m) for m in safe] == [None, None, None], "the members of a real CIFAR-10 archive were refused"
    unsafe = [header("/etc/cron.d/x"), header("\\server\\share\\x"), header("C:/Windows/x"),
              header("../escaped"), header(f"{FOLDER}/../../escaped"), header("a\\..\\..\\b"),
              header(f"{FOLDER}/link", tarfile.SYMTYPE, "/etc"), header(f"{FOLDER}/hard", tarfile.LNKTYPE, "/etc/passwd"),
              header(f"{FOLDER}/fifo", tarfile.FIFOTYPE), header(f"{FOLDER}/dev", tarfile.CHRTYPE)]
    for member in unsafe:
        reason = _unsafe(member)
        assert isinstance(reason, str) and reason, f"{member.name!r} (type {member.type!r}) was accepted"
        print(f"{member.name:>28}: {reason}")


test_unit_unsafe_members()


# %% [markdown]
"""
### download_cifar10: putting it together

The function decides the URL and checksum (argument, then environment variable,
then the official pair or a checksum file next to a mirror), reuses a verified
copy when the marker says it matches, and otherwise runs the whole sequence
inside `root`:

```
root/.cifar-10-download.<pid>.XXXX.tar.gz   streamed + hashed  -> checksum compared
root/.cifar-10-extract.<pid>.XXXX/          safe extraction    -> 7 files present? marker written
root/cifar-10-batches-py/             one rename, only when all of the above succeeded
```

A `finally` clause removes the temporary file and folder whatever happened
(an exception, a checksum mismatch, even Ctrl-C), so after a failure `root` is
exactly as it was; what a `kill -9` leaves behind (no `finally` runs then) is
removed by the next download into the same `root`. Temporaries live inside `root`, not in `/tmp`, so the final
`rename` never crosses file systems (a rename across file systems is a copy,
and a copy can be interrupted halfway).
"""


# %%
#| export data.cifar10
def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _verified_copy(folder: Path, checksum: str) -> bool:
    """True when `folder` holds every file of the archive whose verified checksum is `checksum`."""
    record = _read_marker(folder)
    if not record or record.get("archive") != checksum:
        return False
    files = record.get("files", {})
    return all(name in files and (folder / name).is_file() and (folder / name).stat().st_size == files[name]["size"]
               for name in TRAIN_FILES + TEST_FILES + (META_FILE,))


def _write_marker(folder: Path, checksum: str, url: str) -> None:
    files = {name: {"sha256": file_checksum(folder / name).split(":", 1)[1], "size": (folder / name).stat().st_size}
             for name in TRAIN_FILES + TEST_FILES + (META_FILE,)}
    record = {"archive": checksum, "url": url, "files": files}
    (folder / MARKER).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def download_cifar10(root: str | Path, url: str | None = None, checksum: str | None = None,
                     progress: bool = True) -> Path:
    """Download, verify and safely extract CIFAR-10 into root/cifar-10-batches-py; return that folder.

    Args:
        root: folder to hold the data (created if missing).
        url: where to download from; default $TINYTORCH_CIFAR10_URL, else the official URL.
        checksum: 'md5:<hex>' or 'sha256:<hex>' the archive must have; default
            $TINYTORCH_CIFAR10_CHECKSUM, else the official md5 for the official URL, else a
            <archive>.sha256 / <archive>.md5 file next to a mirror's archive.
        progress: show a progress bar on stderr.

    A copy verified against the same checksum is reused without downloading. On any
    failure a DatasetError is raised and root is left exactly as it was.
    """
    root = Path(root).expanduser()
    url = url or os.environ.get(URL_ENV) or CIFAR10_URL
    expected = checksum or os.environ.get(CHECKSUM_ENV)
    if not expected:
        expected = CIFAR10_CHECKSUM if url == CIFAR10_URL else _checksum_beside(url)
    if not expected:
        raise DatasetError(f"no checksum for {url}: pass checksum='sha256:<hex>', set {CHECKSUM_ENV}, "
                           f"or publish {url.rsplit('/', 1)[-1]}.sha256 next to the archive")
    algorithm, digest = parse_checksum(expected)
    expected = f"{algorithm}:{digest}"
    final = root / FOLDER
    if _verified_copy(final, expected):
        return final
    if final.exists() and _read_marker(final) is None:
        raise DatasetError(f"{final} exists but was not verified by download_cifar10; "
                           "move or delete it and run again")

    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    for kind in ("cifar-10-download", "cifar-10-extract"):   # what a killed download left behind
        remove_stale_temporaries(root, kind)
    for legacy in [*root.glob(".cifar-10-download-*.tar.gz"), *root.glob(".cifar-10-extract-*")]:
        if legacy.is_dir() and not legacy.is_symlink():     # named before temporaries carried a pid
            shutil.rmtree(legacy, ignore_errors=True)
        else:
            legacy.unlink(missing_ok=True)
    archive = workdir = None
    done = False
    try:
        fd, name = tempfile.mkstemp(prefix=temporary_prefix("cifar-10-download"), suffix=".tar.gz", dir=root)
        os.close(fd)
        archive = Path(name)
        got = _download(url, archive, algorithm, progress)
        if got != digest:
            raise DatasetError(f"checksum mismatch for {url}: expected {expected}, got {algorithm}:{got}; "
                               "the download is corrupt or the checksum is wrong (nothing was kept)")
        workdir = Path(tempfile.mkdtemp(prefix=temporary_prefix("cifar-10-extract"), dir=root))
        _safe_extract(archive, workdir, url)
        extracted = workdir / FOLDER
        for name in TRAIN_FILES + TEST_FILES + (META_FILE,):
            if not (extracted / name).is_file():
                raise DatasetError(f"{url} is not a CIFAR-10 archive: it has no {FOLDER}/{name} (nothing was kept)")
        _write_marker(extracted, expected, url)
        if final.exists():                                 # a copy verified for another checksum: replace it
            final.rename(workdir / "previous")
        extracted.rename(final)
        done = True
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        if not done and created_root:
            with contextlib.suppress(OSError):
                root.rmdir()                               # only if we made it and it is empty
    return final


def download_file(url: str, dest: str | Path, checksum: str, progress: bool = True,
                  mirror_env: str = URL_ENV) -> Path:
    """Download one file to `dest`, verified against `checksum` ('sha256:<hex>' or 'md5:<hex>'), atomically.

    A file already at `dest` with that checksum is reused; one with another checksum is the user's
    and is refused, not overwritten. The bytes go to a temporary beside `dest` and are renamed over
    it only once verified, with the mode a new file gets under the umask. What an earlier, killed
    download of `dest` left behind is removed first. Raises DatasetError, leaving `dest` as it was.
    """
    algorithm, digest = parse_checksum(checksum)
    dest = Path(dest).expanduser()
    if dest.is_file() and file_checksum(dest, algorithm) == f"{algorithm}:{digest}":
        remove_stale_temporaries(dest.parent, dest.name)
        return dest
    if dest.exists() or dest.is_symlink():
        raise DatasetError(f"{dest} exists and is not the file with {algorithm}:{digest}; "
                           "move or delete it, then download again")
    if not dest.parent.is_dir():
        raise DatasetError(f"cannot download to {dest}: folder {dest.parent} does not exist; create it first")
    remove_stale_temporaries(dest.parent, dest.name)
    fd, name = tempfile.mkstemp(prefix=temporary_prefix(dest.name), suffix=".tmp", dir=dest.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        got = _download(url, temporary, algorithm, progress, mirror_env)
        if got != digest:
            raise DatasetError(f"checksum mismatch for {url}: expected {algorithm}:{digest}, got {algorithm}:{got}; "
                               "the download is corrupt or the checksum is wrong (nothing was kept)")
        os.chmod(temporary, new_file_mode(dest))
        os.replace(temporary, dest)
    finally:
        temporary.unlink(missing_ok=True)
    return dest


# %% [markdown]
"""
### One helper for every file we fetch: tiny-shakespeare

Chapter 17 trains a small GPT on tiny-shakespeare, a 1.1 MB text file (all
of Shakespeare's plays, concatenated by Andrej Karpathy for char-rnn). It
gets the same treatment as CIFAR-10, through the general `download_file`
above: a pinned sha256 for the public URL, a mirror through
`TINYTORCH_SHAKESPEARE_URL` (with `TINYTORCH_SHAKESPEARE_CHECKSUM` if the
mirror's bytes differ), a streamed and hashed download into a temporary
file, and one rename once the checksum matches. A second call finds the
verified file and downloads nothing.
"""

# %%
#| export data.shakespeare
import os
from pathlib import Path

from tinytorch.data.cifar10 import DatasetError, download_file  # DatasetError: what download_shakespeare raises

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_CHECKSUM = "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILE = "tinyshakespeare.txt"
SHAKESPEARE_URL_ENV = "TINYTORCH_SHAKESPEARE_URL"
SHAKESPEARE_CHECKSUM_ENV = "TINYTORCH_SHAKESPEARE_CHECKSUM"


def download_shakespeare(root: str | Path, url: str | None = None, checksum: str | None = None,
                         progress: bool = True) -> Path:
    """Download tiny-shakespeare into root/tinyshakespeare.txt (verified, atomic); return its path.

    Args:
        root: folder to hold the text (created if missing).
        url: where to download from; default $TINYTORCH_SHAKESPEARE_URL, else the public URL.
        checksum: what the file must hash to; default $TINYTORCH_SHAKESPEARE_CHECKSUM, else the
            pinned sha256 of the public file (a mirror serving the same bytes needs no checksum).
        progress: show a progress bar on stderr.

    Raises:
        DatasetError: the download failed or its checksum did not match (nothing is kept), or
            root holds a file of that name that is not the verified text (it is left alone).
    """
    root = Path(root).expanduser()
    url = url or os.environ.get(SHAKESPEARE_URL_ENV) or SHAKESPEARE_URL
    checksum = checksum or os.environ.get(SHAKESPEARE_CHECKSUM_ENV) or SHAKESPEARE_CHECKSUM
    root.mkdir(parents=True, exist_ok=True)
    return download_file(url, root / SHAKESPEARE_FILE, checksum, progress=progress, mirror_env=SHAKESPEARE_URL_ENV)


# %% [markdown]
"""
The test "downloads" a small text of our own through a `file://` URL with
its sha256: the file arrives with the umask's mode and no temporary beside
it; a second call reuses it; a wrong checksum is refused and keeps nothing;
a file of the same name that is not the verified text is never overwritten;
and the leftovers of a killed download (a temporary named after a process
that no longer exists) are removed by the next download.
"""

# %% nbgrader={"grade": false, "grade_id": "test_unit_download_shakespeare", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_download_shakespeare():
    import hashlib
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50
        source = tmp / "mirror.txt"
        source.write_text(text, encoding="utf-8")
        good = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout.strip()    # a pid that has exited
        root = tmp / "data"
        root.mkdir()
        stale = root / f".{SHAKESPEARE_FILE}.{dead}.k1ll3d.tmp"
        stale.write_text("half a download")
        path = download_shakespeare(root, url=source.as_uri(), checksum=good, progress=False)
        assert path.read_text(encoding="utf-8") == text and not stale.exists()
        assert sorted(p.name for p in root.iterdir()) == [SHAKESPEARE_FILE], "no temporary is left behind"
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
        source.unlink()                                     # a verified copy is reused: no download at all
        assert download_shakespeare(root, url=source.as_uri(), checksum=good, progress=False) == path
        source.write_text(text, encoding="utf-8")
        for checksum, where in (("sha256:" + "0" * 64, tmp / "other"), (good, root)):
            where.mkdir(exist_ok=True)
            if where == root:
                path.write_text("my own notes", encoding="utf-8")   # not the verified text: the user's file
            try:
                download_shakespeare(where, url=source.as_uri(), checksum=checksum, progress=False)
                raise AssertionError("expected a DatasetError")
            except DatasetError as err:
                print(f"refused: {str(err).replace(str(tmp), '<tmp>')}")
        assert list((tmp / "other").iterdir()) == [], "a failed download keeps nothing"
        assert path.read_text(encoding="utf-8") == "my own notes", "a file that is not ours is never overwritten"
    print("✅ download_shakespeare: verified, atomic, reused, refuses bad checksums and cleans up after a kill")


test_unit_download_shakespeare()


# %% [markdown]
"""
### Real handwritten digits, small enough for seconds

The course's milestones (`tito milestone list`) retrain the field's classic
results on real data, and most of them want a set that trains in a minute on
a laptop: the UCI *optical recognition of handwritten digits* set, 1,797
images of 8×8 pixels with values 0 to 16, drawn by 43 people (scikit-learn
ships it as `sklearn.datasets.load_digits`). We fetch scikit-learn's copy,
`digits.csv.gz` (one image per row: 64 pixel values, then the label), from a
pinned release with its sha256, through the same `download_file`:
`TINYTORCH_DIGITS_URL` names a mirror and `TINYTORCH_DIGITS_CHECKSUM` its
checksum if its bytes differ. No pickle: the file is text, parsed with
`np.loadtxt` and then checked (65 columns, whole pixel values in 0..16,
labels in 0..9) before anything uses it.

`load_digits` returns what scikit-learn's does where that makes sense:
`data` (N, 64), `target` (N,), `images` (N, 8, 8) and `target_names`, or
`(data, target)` with `return_X_y=True`. `split_digits` makes a seeded,
stratified train/test split (each digit keeps its share in both parts), and
`write_digits_file` writes a small file of generated digits in the same
format, for tests that must not touch the network.
"""

# %%
#| export data.digits
import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinytorch.data.cifar10 import DatasetError, download_file, file_checksum

# scikit-learn 1.6.1's copy of the UCI set; the sha256 is that release's file.
DIGITS_URL = "https://raw.githubusercontent.com/scikit-learn/scikit-learn/1.6.1/sklearn/datasets/data/digits.csv.gz"
DIGITS_CHECKSUM = "sha256:09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DIGITS_FILE = "digits.csv.gz"
DIGITS_URL_ENV = "TINYTORCH_DIGITS_URL"
DIGITS_CHECKSUM_ENV = "TINYTORCH_DIGITS_CHECKSUM"


@dataclass
class Digits:
    """What load_digits returns, under scikit-learn's names."""

    data: np.ndarray          # (N, 64) float32, pixel values 0..16
    target: np.ndarray        # (N,) int64, the digit 0..9
    images: np.ndarray        # (N, 8, 8) the same pixels as images
    target_names: np.ndarray  # (10,) the digits 0..9

    def __len__(self) -> int:
        return len(self.target)


def download_digits(root: str | Path, url: str | None = None, checksum: str | None = None,
                    progress: bool = True) -> Path:
    """Download digits.csv.gz into root/ (verified, atomic); return its path.

    Args:
        root: folder to hold the file (created if missing).
        url: where to download from; default $TINYTORCH_DIGITS_URL, else scikit-learn 1.6.1's copy.
        checksum: what the file must hash to; default $TINYTORCH_DIGITS_CHECKSUM, else the pinned sha256.
        progress: show a progress bar on stderr.
    """
    root = Path(root).expanduser()
    url = url or os.environ.get(DIGITS_URL_ENV) or DIGITS_URL
    checksum = checksum or os.environ.get(DIGITS_CHECKSUM_ENV) or DIGITS_CHECKSUM
    root.mkdir(parents=True, exist_ok=True)
    return download_file(url, root / DIGITS_FILE, checksum, progress=progress, mirror_env=DIGITS_URL_ENV)


def read_digits(path: str | Path) -> Digits:
    """Parse and check a digits.csv.gz file; a DatasetError names what is wrong with it."""
    try:
        with gzip.open(path, "rt", encoding="ascii") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is not a gzipped CSV of digits ({err}); delete it and download again") from None
    if table.shape[0] == 0 or table.shape[1] != 65:
        raise DatasetError(f"{path} has shape {table.shape}, expected rows of 64 pixels and a label; "
                           "delete it and download again")
    pixels, labels = table[:, :64], table[:, 64]
    if np.any(pixels != np.round(pixels)) or pixels.min() < 0 or pixels.max() > 16:
        raise DatasetError(f"{path} has pixel values outside the whole numbers 0..16; delete it and download again")
    if np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path} has labels outside 0..9; delete it and download again")
    data = pixels.astype(np.float32)
    return Digits(data=data, target=labels.astype(np.int64), images=data.reshape(-1, 8, 8),
                  target_names=np.arange(10))


def load_digits(root: str | Path = "data", *, download: bool = True, return_X_y: bool = False):
    """The handwritten digits: a Digits (data, target, images, target_names), or (data, target).

    Args:
        root: folder holding (or to hold) digits.csv.gz.
        download: fetch it first if it is missing (URL and checksum from the environment).
        return_X_y: return (data, target) only, as scikit-learn does.
    """
    path = download_digits(root, progress=False) if download else Path(root).expanduser() / DIGITS_FILE
    if not path.is_file():
        raise DatasetError(f"{path} does not exist; call load_digits(download=True) or download_digits first")
    digits = read_digits(path)
    return (digits.data, digits.target) if return_X_y else digits


def split_digits(target: np.ndarray, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, stratified split: (train indices, test indices), each class split in the same proportion."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(target):
        members = rng.permutation(np.flatnonzero(target == label))
        n_test = int(round(len(members) * test_fraction))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def write_digits_file(path: str | Path, n: int = 200, seed: int = 0) -> str:
    """Write n generated 8x8 digits in digits.csv.gz's format; return its checksum 'sha256:<hex>'.

    Each class is a fixed random stroke pattern plus noise: learnable, but not the real set.
    The bytes depend only on the arguments.
    """
    rng = np.random.default_rng(seed)
    templates = rng.integers(0, 17, size=(10, 64)) * (rng.random((10, 64)) < 0.4)
    labels = np.arange(n) % 10
    pixels = np.clip(templates[labels] + rng.integers(-3, 4, size=(n, 64)), 0, 16)
    rows = "".join(",".join(str(int(v)) for v in row) + f",{label}\n" for row, label in zip(pixels, labels))
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", 6, raw, mtime=0) as gz:
        gz.write(rows.encode("ascii"))
    return file_checksum(path, "sha256")


# %% [markdown]
"""
The test writes a small digits file of its own and "downloads" it through a
`file://` URL: the arrays have scikit-learn's shapes and types, the split is
stratified, disjoint and the same for the same seed, and a file whose pixels
are out of range is refused with a message that says so.
"""

# %% nbgrader={"grade": false, "grade_id": "test_unit_load_digits", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_load_digits():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "mirror.csv.gz"
        checksum = write_digits_file(source, n=120, seed=1)
        download_digits(tmp / "data", url=source.as_uri(), checksum=checksum, progress=False)
        digits = load_digits(tmp / "data", download=False)
        assert digits.data.shape == (120, 64) and digits.images.shape == (120, 8, 8)
        assert digits.data.dtype == np.float32 and digits.target.dtype == np.int64
        assert 0 <= digits.data.min() and digits.data.max() <= 16 and set(digits.target) == set(range(10))
        X, y = load_digits(tmp / "data", download=False, return_X_y=True)
        assert np.array_equal(X, digits.data) and np.array_equal(y, digits.target)
        train, test = split_digits(digits.target, test_fraction=0.25, seed=3)
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 120
        assert all(np.sum(digits.target[test] == c) == 3 for c in range(10)), "each digit keeps its share"
        again = split_digits(digits.target, test_fraction=0.25, seed=3)
        assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
        bad = tmp / "bad.csv.gz"
        with gzip.open(bad, "wt") as f:
            f.write(",".join(["17"] * 64) + ",3\n")
        try:
            read_digits(bad)
            raise AssertionError("a pixel value of 17 was accepted")
        except DatasetError as err:
            print(f"refused: {str(err).replace(str(tmp), '<tmp>')}")
    print(f"✅ load_digits: {digits.data.shape} pixels, a stratified split of {len(train)} + {len(test)}")


test_unit_load_digits()


# %% [markdown]
"""
### CIFAR10Dataset

The dataset reads the verified folder into two arrays: `data`, `uint8`
`(N, 3, 32, 32)` (153.6 MB for the training set) and `targets`, `int64` `(N,)`,
plus the class names from `batches.meta`. `__getitem__` returns
`(image, label)` for one image; `get_batch` returns `(images, labels)` for many
with one fancy index into each array, and applies the transform once to the
whole batch.

Before unpickling a file, it checks the file's sha256 against the marker that
`download_cifar10` wrote from the verified archive, and unpickles with a
restricted unpickler. Without a marker (data that did not come through the
verified download) it refuses and says what to run.
"""


# %%
#| export data.cifar10


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches only: dicts, lists, strings, numbers and NumPy arrays.

    pickle can call any importable function while loading; this class allows exactly the
    ones a CIFAR-10 batch needs and refuses every other, so a tampered file cannot run code.
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): None,              # written by NumPy 1.x
               ("numpy._core.multiarray", "_reconstruct"): None,             # written by NumPy 2.x (None: see below)
               ("numpy", "ndarray"): np.ndarray,
               ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode}                          # bytes under protocol 2

    def find_class(self, module: str, name: str):
        """pickle asks here for every global a file names: only the allow-listed ones are returned."""
        try:
            found = self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: CIFAR-10 batches hold only "
                                         "arrays, lists and strings") from None
        # None: numpy's array-rebuilding function, wherever this NumPy version keeps it (numpy._core or numpy.core)
        return np.empty(0).__reduce__()[0] if found is None else found


def _load_batch(folder: Path, name: str, record: dict) -> dict:
    """Unpickle one verified batch file into a dict with str keys."""
    blob = (folder / name).read_bytes()
    expected = record.get("files", {}).get(name, {}).get("sha256")
    if hashlib.sha256(blob).hexdigest() != expected:
        raise DatasetError(f"{folder / name} does not match the checksum recorded when it was downloaded; "
                           f"delete {folder} and run download_cifar10 again")
    try:
        # pickle is acceptable ONLY here: the official CIFAR-10 format, bytes verified against the
        # checksum of the downloaded archive, loaded by an unpickler that allows arrays and strings only.
        content = _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as err:  # a damaged pickle can raise almost anything
        raise DatasetError(f"{folder / name} is not a CIFAR-10 batch ({err})") from None
    if not isinstance(content, dict):
        raise DatasetError(f"{folder / name} is not a CIFAR-10 batch (a {type(content).__name__}, not a dict)")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in content.items()}


class CIFAR10Dataset(Dataset):
    """CIFAR-10 images as uint8 (N, 3, 32, 32) with int64 labels; 50,000 train or 10,000 test.

    Args:
        root: the folder download_cifar10 was given (it holds cifar-10-batches-py).
        train: the five training batches (True) or the test batch (False).
        download: call download_cifar10(root) first (URL and checksum from the environment).
        transform: applied to one image in __getitem__, to a whole batch in get_batch.
    """

    def __init__(self, root: str | Path, train: bool = True, download: bool = False, transform=None):
        self.root, self.train, self.transform = Path(root).expanduser(), train, transform
        folder = download_cifar10(self.root) if download else self.root / FOLDER
        record = _read_marker(folder)
        if record is None:
            where = f"{folder} has no verification record" if folder.exists() else f"CIFAR-10 is not in {folder}"
            raise DatasetError(f"{where}: run download_cifar10({str(self.root)!r}) or pass download=True")
        images, labels = [], []
        for name in TRAIN_FILES if train else TEST_FILES:
            batch = _load_batch(folder, name, record)
            data, batch_labels = batch.get("data"), batch.get("labels")
            if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                    or data.shape[1] != 3072 or batch_labels is None or len(batch_labels) != len(data)):
                raise DatasetError(f"{folder / name} is not a CIFAR-10 batch (expected uint8 data (n, 3072) "
                                   "and one label per row)")
            images.append(data.reshape(-1, 3, 32, 32))      # rows are R, G, B planes: already (C, H, W)
            labels.append(np.asarray(batch_labels, dtype=np.int64))
        self.data = np.concatenate(images)                 # (N, 3, 32, 32) uint8
        self.targets = np.concatenate(labels)              # (N,) int64
        names = _load_batch(folder, META_FILE, record).get("label_names", [])
        self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        if len(self.classes) != 10 or self.targets.size and not 0 <= self.targets.min() <= self.targets.max() < 10:
            raise DatasetError(f"{folder} is not CIFAR-10: expected 10 classes and labels 0..9")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.data)

    def _images(self, images: np.ndarray) -> Tensor:
        out = self.transform(images) if self.transform is not None else images
        return out if isinstance(out, Tensor) else Tensor(out)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._images(self.data[index]), int(self.targets[index])

    def get_batch(self, indices: np.ndarray) -> tuple[Tensor, Tensor]:
        """Images and labels of `indices`: one gather per array, one transform call for the batch."""
        return self._images(self.data[indices]), Tensor(self.targets[indices])

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"CIFAR10Dataset({split}, {len(self)} images, root={str(self.root)!r}, transform={self.transform!r})"


# %% [markdown]
"""
### Trying it on generated data

We make an archive with 500 training and 100 test images in a temporary
folder, "download" it through a `file://` URL with its sha256, and load both
splits.
"""

# %%
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="tinytorch-ch11-"))
ARCHIVE = WORK / "mirror" / "cifar-10-python.tar.gz"
ARCHIVE.parent.mkdir()
CHECKSUM = write_cifar10_archive(ARCHIVE, n_train=500, n_test=100, seed=0)
URL = ARCHIVE.resolve().as_uri()
print(f"{ARCHIVE.name}: {ARCHIVE.stat().st_size / 1e6:.2f} MB, {CHECKSUM[:23]}...")

folder = download_cifar10(WORK / "data", url=URL, checksum=CHECKSUM, progress=False)
print(sorted(p.name for p in folder.iterdir()))
train_set = CIFAR10Dataset(WORK / "data", train=True)
test_set = CIFAR10Dataset(WORK / "data", train=False)
print(train_set)
print("data", train_set.data.shape, train_set.data.dtype, "| targets", train_set.targets.shape,
      train_set.targets.dtype, "| classes", train_set.classes[:3], "...")
image, label = train_set[0]
print("one sample:", image.shape, image.dtype, "label", label, f"({train_set.classes[label]})")

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 8, figsize=(10, 1.6))
for ax, i in zip(axes, range(8)):
    ax.imshow(train_set.data[i].transpose(1, 2, 0))       # (C, H, W) -> (H, W, C) for imshow
    ax.set_title(train_set.classes[train_set.targets[i]], fontsize=8)
    ax.axis("off")
fig.suptitle("generated CIFAR-10 stand-in: one colour per class, plus noise", fontsize=9)
plt.show()

# %% [markdown]
"""
The next test checks the happy path end to end: the folder has the seven files
and the marker, the arrays have the official shapes and dtypes, the labels and
class names survive the round trip through pickle, the per-image and batch
paths agree, and a second call reuses the verified copy: we delete the source
archive first, so a second download would fail. It also checks the error for
data that was never downloaded.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_download_cifar10", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def _listing(root: Path) -> list[str]:
    """Every path under root (hidden ones too), to compare before and after."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_unit_download_cifar10():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = tmp / "cifar-10-python.tar.gz"
        checksum = write_cifar10_archive(source, n_train=23, n_test=7, seed=1)
        folder = download_cifar10(tmp / "data", url=source.as_uri(), checksum=checksum, progress=False)
        assert folder == tmp / "data" / "cifar-10-batches-py"
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["batches.meta", "test_batch", ".tinytorch-verified.json"] + [f"data_batch_{i}" for i in range(1, 6)])
        train, test = CIFAR10Dataset(tmp / "data"), CIFAR10Dataset(tmp / "data", train=False)
        assert train.data.shape == (23, 3, 32, 32) and train.data.dtype == np.uint8
        assert test.data.shape == (7, 3, 32, 32) and test.targets.dtype == np.int64
        assert train.classes == list(CLASSES) and train.class_to_idx["cat"] == 3
        images, labels = train.get_batch(np.array([3, 0, 22]))
        assert images.shape == (3, 3, 32, 32) and labels.tolist() == [train[i][1] for i in (3, 0, 22)]
        assert np.array_equal(images.data[2], train[22][0].data)
        source.unlink()                                    # a second download would now fail ...
        before = _listing(tmp / "data")
        assert download_cifar10(tmp / "data", url=source.as_uri(), checksum=checksum, progress=False) == folder
        assert _listing(tmp / "data") == before            # ... but the verified copy is reused
        try:
            CIFAR10Dataset(tmp / "nothing-here")
        except DatasetError as err:
            print(str(err).replace(str(tmp), "<tmp>"))
        else:
            raise AssertionError("CIFAR10Dataset loaded data that was never downloaded")


test_unit_download_cifar10()

# %% [markdown]
"""
### Attacking the downloader

Now the failures. Each case below must raise a `DatasetError` with a message
that says what was wrong, and leave `root` *exactly* as it was: no temporary
file, no half-extracted folder. We build each bad archive by hand:

- **wrong checksum**: a good archive with someone else's checksum;
- **corrupt**: the good archive with bytes overwritten in the middle, and a
  checksum computed *for the corrupt file*, as if a mirror had published a
  broken archive together with its checksum, so extraction itself must notice;
- **truncated**: the first 60% of the archive, with its checksum;
- **path traversal**: a member named `cifar-10-batches-py/../../escaped.txt`;
- **absolute path**: a member named `/tmp/.../owned.txt`;
- **symlink**: a member `cifar-10-batches-py/link` pointing at `/etc`.

The traversal case puts a *valid* CIFAR-10 member first, so refusing late
(after something was already extracted) is also tested.
"""


# %% nbgrader={"grade": true, "grade_id": "test_unit_download_refuses_bad_archives", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def _tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    """Write a tar.gz of hand-made members; return its sha256 checksum."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return file_checksum(path)


def _member(name: str, data: bytes | None = b"x", kind=tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, (data if kind == tarfile.REGTYPE else None)


def bad_archives(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (archive, checksum that download_cifar10 will be given)."""
    good = tmp / "good.tar.gz"
    good_sum = write_cifar10_archive(good, n_train=10, n_test=5, seed=2)
    blob = good.read_bytes()
    cases = {"wrong checksum": (good, "sha256:" + "0" * 64)}
    corrupt = tmp / "corrupt.tar.gz"
    middle = len(blob) // 2
    corrupt.write_bytes(blob[:middle] + bytes(256) + blob[middle + 256:])
    cases["corrupt"] = (corrupt, file_checksum(corrupt))
    truncated = tmp / "truncated.tar.gz"
    truncated.write_bytes(blob[: int(len(blob) * 0.6)])
    cases["truncated"] = (truncated, file_checksum(truncated))
    batch = tarfile.open(good).extractfile(f"{FOLDER}/data_batch_1").read()
    escape = tmp / "escape.tar.gz"
    cases["path traversal"] = (escape, _tar_gz(escape, [_member(f"{FOLDER}/data_batch_1", batch),
                                                         _member(f"{FOLDER}/../../escaped.txt")]))
    absolute = tmp / "absolute.tar.gz"
    cases["absolute path"] = (absolute, _tar_gz(absolute, [_member(str(tmp.resolve() / "owned.txt"))]))
    symlink = tmp / "symlink.tar.gz"
    cases["symlink"] = (symlink, _tar_gz(symlink, [_member(f"{FOLDER}/link", kind=tarfile.SYMTYPE, link="/etc")]))
    return cases


def test_unit_download_refuses_bad_archives():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "data"
        root.mkdir()
        (root / "keep.txt").write_text("the user's own file")
        before = _listing(root)
        for name, (archive, checksum) in bad_archives(tmp).items():
            try:
                download_cifar10(root, url=archive.as_uri(), checksum=checksum, progress=False)
            except DatasetError as err:
                print(f"{name:>15}: {str(err).replace(str(tmp), '<tmp>')}")
            else:
                raise AssertionError(f"the {name} archive was accepted")
            assert _listing(root) == before, f"the {name} archive left {set(_listing(root)) - set(before)}"
        assert not (tmp / "escaped.txt").exists() and not (tmp / "owned.txt").exists()


test_unit_download_refuses_bad_archives()

# %% [markdown]
"""
One more guard: the restricted unpickler. A pickle can name any importable
function; `os.system` is the classic example. We hand our unpickler a pickle
that asks for one, and check it refuses before anything runs.
"""


# %% nbgrader={"grade": false, "grade_id": "test_unit_restricted_unpickler", "locked": true, "schema_version": 3, "solution": false, "task": false}
def test_unit_restricted_unpickler():
    evil = pickle.dumps({"data": os.getcwd})               # a pickle that references os.getcwd
    try:
        _BatchUnpickler(io.BytesIO(evil), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        print(err)
    else:
        raise AssertionError("the unpickler loaded a reference to an arbitrary function")
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    ok = _BatchUnpickler(io.BytesIO(pickle.dumps({b"data": array}, protocol=2)), encoding="bytes").load()
    assert np.array_equal(ok[b"data"], array)


test_unit_restricted_unpickler()

# %% [markdown]
"""
## Systems analysis

Everything below is measured on your machine while this page runs, so the
numbers you see are yours. Timings are the median of a few repeats
(`time.perf_counter`).

### 1. Gathering a batch: per-sample loop vs one fancy index

We build a CIFAR-sized array dataset in memory (10,000 images, 30.7 MB `uint8`)
and fetch batches of increasing size two ways: the per-sample path
(`collate([ds[i] for i in indices])`) and the fast path (`ds.get_batch(indices)`).
"""


# %%
from tinytorch.utils.timing import best_time, median_time    # chapter 01: the fastest, or the median, of several runs


rng = np.random.default_rng(0)
big = CIFAR10Dataset.__new__(CIFAR10Dataset)               # an in-memory stand-in: same arrays, no files
big.data = rng.integers(0, 256, size=(10_000, 3, 32, 32), dtype=np.uint8)
big.targets = rng.integers(0, 10, size=10_000)
big.transform, big.classes, big.train = None, list(CLASSES), True

batch_sizes = [8, 32, 128, 512]
per_sample, fast = [], []
for b in batch_sizes:
    idx = rng.permutation(len(big.data))[:b]
    per_sample.append(b / median_time(lambda: default_collate([big[int(i)] for i in idx])))
    fast.append(b / median_time(lambda: big.get_batch(idx)))
print(f"{'batch':>6} {'per-sample (img/s)':>20} {'get_batch (img/s)':>19} {'speed-up':>9}")
for b, s, f in zip(batch_sizes, per_sample, fast):
    print(f"{b:>6} {s:>20,.0f} {f:>19,.0f} {f / s:>8.1f}x")
print(f"per-sample path: {1e6 / max(per_sample):.1f} to {1e6 / min(per_sample):.1f} µs per image; fastest / slowest "
      f"batch size {max(per_sample) / min(per_sample):.1f}x; get_batch at batch 128 / at batch 8: {fast[2] / fast[0]:.1f}x")
assert 0.2 < 1e6 / max(per_sample) and 1e6 / min(per_sample) < 20, \
    "the background says the per-sample path costs a microsecond or a few per image"
assert max(per_sample) / min(per_sample) < 5, "the text says the per-sample path levels off; measured " \
    f"{[round(s) for s in per_sample]} img/s"
assert fast[2] > 2 * fast[0], f"the text says get_batch's throughput grows with the batch; measured {fast[0]:,.0f} -> {fast[2]:,.0f}"
assert all(f > 2 * s for f, s in zip(fast, per_sample)), "the text says one fancy index beats the per-sample loop"

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.loglog(batch_sizes, per_sample, "o-", label="per-sample + default_collate")
ax.loglog(batch_sizes, fast, "s-", label="get_batch (one fancy index)")
ax.set_xlabel("batch size")
ax.set_ylabel("images / second")
ax.set_title("gathering CIFAR-sized uint8 images", fontsize=10)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
"""
The per-sample path pays a fixed Python cost for every image (a method call, a
slice, a Tensor, a tuple, then `np.stack` copies everything again), so its
throughput levels off at a ceiling set by that per-image cost (the cell checks
that its fastest and slowest batch sizes are within a factor of 5). The fancy
index pays a fixed cost once per *batch* and then copies bytes at memory
speed, so its throughput grows with the batch (at least twofold from 8 to 128,
checked) until the copy itself dominates; at the largest batch, whose 1.5 MB
no longer fits the processor's faster caches, it can even fall back. It is
faster than the per-sample path at every size.

### 2. Augmentation: vectorised vs one image at a time

The same random crop (padding 4) and flip on a batch of 256 CIFAR images,
written as a per-image Python loop (the way a per-sample transform runs) and
as our batch transforms.
"""

# %%
batch = big.data[:256]


def crop_flip_loop(images, gen):
    out = np.empty_like(images)
    for i, img in enumerate(images):
        padded = np.zeros((3, 40, 40), dtype=images.dtype)
        padded[:, 4:36, 4:36] = img
        top, left = gen.integers(0, 9, size=2)
        window = padded[:, top:top + 32, left:left + 32]
        out[i] = window[..., ::-1] if gen.random() < 0.5 else window
    return out


crop_flip = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip()])
t_loop = median_time(lambda: crop_flip_loop(batch, np.random.default_rng(0)))
t_vec = median_time(lambda: crop_flip(batch))
print(f"per-image loop : {t_loop * 1e3:7.2f} ms for 256 images ({256 / t_loop:9,.0f} img/s)")
print(f"vectorised     : {t_vec * 1e3:7.2f} ms for 256 images ({256 / t_vec:9,.0f} img/s)")
print(f"speed-up       : {t_loop / t_vec:.1f}x")

# %% [markdown]
"""
### 3. End to end: loader throughput with and without augmentation

One epoch over the 10,000 images in batches of 128, three pipelines: raw
`uint8` batches, conversion plus normalisation (what evaluation needs), and the
full training pipeline with crop and flip.
"""

# %%
MEAN, STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
pipelines = {
    "uint8, no transform": None,
    "convert + normalize": Compose([ConvertImageDtype(), Normalize(MEAN, STD)]),
    "crop + flip + convert + normalize": Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
                                                  ConvertImageDtype(), Normalize(MEAN, STD)]),
}
throughput = {}
for name, transform in pipelines.items():
    big.transform = transform
    loader = DataLoader(big, batch_size=128, shuffle=True, seed=0)
    seconds = median_time(lambda: sum(len(x) for x, _ in loader), repeats=3)
    throughput[name] = len(big.data) / seconds
    print(f"{name:>34}: {throughput[name]:10,.0f} images/s  ({seconds * 1e3:6.1f} ms per epoch)")
big.transform = None

# For scale: one forward + backward pass of a small MLP (chapters 03, 04 and 09) on a batch of 128.
import tinytorch.core.autograd  # chapter 09: gives Tensor its backward()
from tinytorch.nn.activation import ReLU, log_softmax
from tinytorch.nn.layers import Linear, Sequential

mlp = Sequential(Linear(3072, 32), ReLU(), Linear(32, 10))
x_batch = Tensor(rng.standard_normal((128, 3072)).astype(np.float32))


def mlp_step():
    for p in mlp.parameters():
        p.grad = None
    log_softmax(mlp(x_batch), dim=1).sum().backward()


model_rate = 128 / best_time(mlp_step)                    # the fastest run: the least disturbed (see below)
print(f"{'small MLP, forward + backward':>34}: {model_rate:10,.0f} images/s")
balance = throughput["crop + flip + convert + normalize"] / model_rate
print(f"the training pipeline prepares images {balance:.1f}x as fast as this MLP learns from them")
assert 1 / 100 <= balance <= 100, f"the text says the two rates are within a factor of 100; measured {balance:.1f}x"

# %% [markdown]
"""
Whether the loader or the model is the bottleneck is the ratio of these
numbers, printed in the last line. For a model as small as this MLP (about
0.2 MFLOP per image forward) the two rates are comparable, within two orders
of magnitude of each other (the cell checks a factor of 100): preparing the
data is not negligible next to learning from it, and either side can come
out ahead. The MLP's rate is the noisier of the two: its matrix products
run on BLAS threads, which slow down many times over when other work competes
for the same cores, while the loader is one thread of NumPy copies; that is
why the cell keeps the MLP's fastest run rather than its median. Real image models do far more
work per image (a single 3×3 convolution with 32 output channels on a 32×32
RGB image is about 1.8 MFLOP, chapter 06), which shifts the balance towards
the model on a CPU. On a GPU the model runs orders of magnitude faster and the
NumPy loader does not: that is where real pipelines move the work to worker
processes or onto the GPU (see the production context below).

### 4. Memory: where the copies are

How many bytes does one augmented batch allocate, compared with the batch
itself? `tracemalloc` records the peak memory NumPy allocates while we build
one batch of 128.
"""

# %%
import tracemalloc

big.transform = pipelines["crop + flip + convert + normalize"]
indices = np.arange(128)
tracemalloc.start()
images, labels = big.get_batch(indices)
current, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
big.transform = None
uint8_batch = 128 * 3 * 32 * 32
print(f"uint8 batch     : {uint8_batch / 1e3:8.1f} kB (what the gather copies)")
print(f"float32 batch   : {images.nbytes / 1e3:8.1f} kB (what the model receives)")
print(f"peak allocated  : {peak / 1e3:8.1f} kB = {peak / images.nbytes:.2f} float32 batches")
assert 1 <= peak / images.nbytes <= 4, f"the text says the peak is a small multiple of one float32 batch; measured {peak / images.nbytes:.2f}"
print(f"CIFAR-10 train set: {50_000 * 3072 / 1e6:.1f} MB as uint8, {50_000 * 3072 * 4 / 1e6:.1f} MB as float32")

# %% [markdown]
"""
The pipeline makes several short-lived copies of each batch (the gather, the
padded batch, the crop, the flip, the `float32` conversion and the normalised
result) but frees them as it goes, so its peak stays a small multiple of one
`float32` batch (the cell checks between 1 and 4): megabytes, whatever the
size of the dataset. Keeping the
dataset in `uint8` and converting per batch is what keeps the resident dataset
at 153.6 MB instead of 614 MB.

### 5. Verification cost: hashing

How long does the checksum take for the real archive (about 170 MB)? We hash
32 MB with both algorithms and extrapolate linearly (hashing reads each byte
once).
"""

# %%
import hashlib

blob = rng.integers(0, 256, size=32 << 20, dtype=np.uint8).tobytes()
for algorithm in ("md5", "sha256"):
    seconds = median_time(lambda: hashlib.new(algorithm, blob).hexdigest(), repeats=3)
    rate = len(blob) / seconds
    print(f"{algorithm:>6}: {rate / 1e6:7.0f} MB/s -> {170e6 / rate:.2f} s for the 170 MB CIFAR-10 archive")
    assert 170e6 / rate < 2, f"the text says hashing the archive takes under 2 s; measured {170e6 / rate:.2f} s"
del blob

# %% [markdown]
"""
A fraction of a second (the cell checks under 2 s): small next to the
download itself, and it is paid once, because the marker lets later runs skip it. (`CIFAR10Dataset`
re-hashes the extracted batch files each time it loads them, about 180 MB,
before unpickling: the same order of cost, for the guarantee that what it
unpickles is what was verified.)

**What breaks first at scale.** ImageNet is 1.28 million images, about 140 GB
as JPEG files: it does not fit in memory as arrays, so a dataset must read and
decode files per sample (milliseconds each), and decoding, not gathering,
becomes the bottleneck. That is the point where a single Python process cannot
keep up and the loader must run in several processes, or the data must be
stored in formats built for streaming.

## Production context: torch.utils.data and torchvision

- **Same shape, more machinery.** PyTorch splits our loader into a `Sampler`
  (which indices, in which order: `RandomSampler`, `SequentialSampler`,
  `DistributedSampler` for multi-GPU training), a `BatchSampler` (groups them)
  and a *fetcher* that calls the dataset. `DataLoader(dataset, batch_size,
  shuffle, drop_last, generator=..., collate_fn=...)` has the same meaning as
  ours. Our `seed=` is a convenience PyTorch does not have.
- **Batched fetching.** PyTorch 2's fetcher calls `dataset.__getitems__(indices)`
  when the dataset defines it, which is our `get_batch` idea, with a different
  contract: `__getitems__` returns a *list of samples* that `collate_fn` then
  stacks, while our `get_batch` returns the finished batch (one copy fewer).
- **Workers.** `num_workers=k` runs the fetching in `k` processes that fill a
  queue while the model trains; `pin_memory=True` copies batches into
  page-locked memory so the GPU can fetch them asynchronously; `prefetch_factor`
  and `persistent_workers` tune the queue. Each worker gets a different random
  seed (derived from the base seed), otherwise every worker would apply the
  same "random" augmentation. TinyTorch runs in one process on purpose: every
  step is visible and measurable, and section 3 showed where the balance
  between loader and model lies on your machine.
- **Transforms.** Torchvision's classic transforms take one PIL image at a
  time inside the workers; the newer `transforms.v2` also work on batched
  tensors, but draw one random parameter for the whole batch. Libraries such as
  NVIDIA DALI decode and augment on the GPU; FFCV and WebDataset store datasets
  in formats made for fast sequential reading.
- **Downloads.** Torchvision's `CIFAR10(download=True)` checks the archive's
  md5 and then each extracted batch file's md5 against a list in its source,
  and loads the batches with `pickle.load(f, encoding="latin1")`. For
  extraction it relies on Python's `tarfile`, so how a hostile archive is
  handled depends on the extraction filter in effect (PEP 706); we wrote the
  rules out explicitly instead.
"""

# %% [markdown]
"""
## Integration: training a classifier from the loader

The pieces of this chapter with the earlier ones: a `CIFAR10Dataset` with the
training pipeline, a shuffling `DataLoader`, a model from chapter 04
(`Sequential` with `Linear` and `ReLU`), a cross-entropy loss written with
chapter 03's `log_softmax`, gradients from chapter 09's `backward()`, and a
plain gradient step written by hand (chapter 10 packages it as an optimizer).
The generated images are easy on purpose; the point is that the loop runs, the
loss falls, and the test accuracy is far above chance (10%).
"""

# %%
import tinytorch
from tinytorch.core.autograd import no_grad
from tinytorch.nn.activation import ReLU, log_softmax
from tinytorch.nn.layers import Linear, Sequential

tinytorch.manual_seed(0)
MEAN_FAKE = (train_set.data.reshape(len(train_set), 3, -1).mean(axis=(0, 2)) / 255).tolist()
STD_FAKE = (train_set.data.reshape(len(train_set), 3, -1).std(axis=(0, 2)) / 255).tolist()
train_set.transform = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
                               ConvertImageDtype(), Normalize(MEAN_FAKE, STD_FAKE)])
test_set.transform = Compose([ConvertImageDtype(), Normalize(MEAN_FAKE, STD_FAKE)])
train_loader = DataLoader(train_set, batch_size=50, shuffle=True, seed=0)
test_loader = DataLoader(test_set, batch_size=100)
model = Sequential(Linear(3072, 32), ReLU(), Linear(32, 10))


def cross_entropy(logits, labels):
    one_hot = Tensor(np.eye(10, dtype=np.float32)[labels.data])   # (B, 10), a constant
    return -(log_softmax(logits, dim=1) * one_hot).sum(dim=1).mean()


def accuracy(loader) -> float:
    correct = 0
    with no_grad():
        for images, labels in loader:
            logits = model(images.reshape(len(images), -1))
            correct += int((logits.argmax(dim=1).data == labels.data).sum())
    return correct / len(loader.dataset)


print(f"before training: test accuracy {accuracy(test_loader):.2f}")
for epoch in range(3):
    losses = []
    for images, labels in train_loader:
        loss = cross_entropy(model(images.reshape(len(images), -1)), labels)   # (B, 3072) -> (B, 10)
        for p in model.parameters():
            p.grad = None
        loss.backward()
        for p in model.parameters():
            p.data -= 0.05 * p.grad.data
        losses.append(loss.item())
    print(f"epoch {epoch + 1}: {len(train_loader)} batches, mean loss {np.mean(losses):.3f}, "
          f"test accuracy {accuracy(test_loader):.2f}")
assert np.mean(losses) < 1.0 and accuracy(test_loader) > 0.5, "the model did not learn from the loader"

# %%
shutil.rmtree(WORK)                                        # the chapter's generated archive and data

# %%
if __name__ == "__main__":
    test_unit_tensor_dataset()
    test_unit_default_collate()
    test_unit_dataloader_batches()
    test_unit_dataloader_shuffle()
    test_unit_to_tensor_and_normalize()
    test_unit_random_flip()
    test_unit_random_crop()
    test_unit_compose()
    test_unit_unsafe_members()
    test_unit_download_shakespeare()
    test_unit_load_digits()
    test_unit_download_cifar10()
    test_unit_download_refuses_bad_archives()
    test_unit_restricted_unpickler()
    print("All tests of chapter 11 passed.")

# %% [markdown]
r"""
## ML systems thinking

Answer each question in the cell below it, in a few sentences and with the
numbers worked out. Each answer is graded by hand (the points are on the cell).

**1. Memory.** `CIFAR10Dataset` keeps 153.6 MB of `uint8` in memory and the
augmentation pipeline's peak was a few `float32` batches. Suppose you stored
the dataset as normalised `float32` instead, to skip the per-batch
conversion. What happens to memory, and to throughput? (Hint: the gather
copies four times as many bytes per batch.) For which dataset sizes does
"load everything into one array" stop being an option at all, and what
would `__getitem__` have to do then?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_dataset_memory", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Memory goes from 50,000 × 3072 = 153.6 MB to 4 × 153.6 =
614.4 MB resident. Per batch of 128 the gather copies 1.57 MB instead of
393 kB, and the crop and flip also move four times the bytes, but the
conversion and normalisation passes disappear; section 3 measured those two
passes as most of an evaluation batch's cost (compare "uint8, no transform"
with "convert + normalize"), so evaluation gets faster, training with
augmentation gains less, and the mean and std are frozen into the stored
data. "Everything in one array" stops working when the dataset approaches the
machine's RAM (minus the model and the training run's own memory): ImageNet,
1.28 M images of 224 × 224 × 3 bytes, is about 190 GB as `uint8`. Then
`__getitem__` must read one sample from disk per call: a slice of a
memory-mapped file (`np.memmap`) for fixed-size records, or open and decode
one image file, usually in several worker processes.

**Rubric (2 points).** 1 point for 614.4 MB (4×) and a correct throughput
argument (4× bytes to gather, but the conversion passes saved); 1 point for
the RAM limit with a worked example and per-sample reading from disk
(memory-mapping or decoding files).
### END SOLUTION
"""

# %% [markdown]
r"""
**2. Performance.** The per-sample path's throughput barely depended on batch
size, the fast path's grew with it. Using your measured numbers, estimate
the fixed cost per sample and the fixed cost per batch. If a model step on
a GPU took 5 ms for a batch of 256, which pipelines from section 3 would
keep it busy? What would you change first: workers, a bigger batch, or moving
augmentation to the GPU?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_loader_performance", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** (Example numbers from one run; the learner uses their own.)
Per-sample path at about 600,000 images/s: about 1.7 µs per sample, whatever
the batch. Fast path: at batch 8 about 2.9 M images/s, 2.8 µs per batch; at
batch 128 about 11.7 M images/s, 10.9 µs per batch; so
$t(b) \approx c + b\,d$ with $d \approx (10.9 - 2.8)/120 \approx 0.07$ µs per
image (the 3 kB copy) and $c \approx 2.3$ µs fixed per batch. The GPU needs
256 images per 5 ms, 51,200 images/s: every pipeline of section 3 produces
that (about 3 M, 200 k and 100–150 k images/s), the full augmentation one with a
margin of 2 to 3×. But in one process loading and the model step run one
after the other: 256 / 130,000 ≈ 2 ms of loading per 5 ms step leaves the GPU
idle about 30% of the time. So the first change is workers (or a background
thread) that prepare the next batch while the GPU computes: the rate is
already sufficient, only the overlap is missing. A bigger batch scales both
sides alike; moving augmentation to the GPU matters only once the pipeline's
rate falls below the model's.

**Rubric (2 points).** 1 point for both fixed costs from measured numbers
(per-sample about 1–3 µs; per-batch a few µs from two batch sizes);
1 point for the 51,200 images/s requirement compared with the pipelines and
"workers first, because the loader runs serially with the step".
### END SOLUTION
"""

# %% [markdown]
r"""
**3. Reproducibility and architecture.** Our loader draws its permutation from
one generator, so epoch 5's order depends on epochs 1–4 having been drawn.
A run that crashes and resumes from a checkpoint at epoch 5 would therefore
see a different order than the original run. Design a scheme (PyTorch's
`DistributedSampler.set_epoch` is one) in which the order of epoch *e* depends
only on `(seed, e)`. How does it also let 8 processes agree on one
permutation and each take a different eighth of it?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_reproducible_order", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Derive a fresh generator for each epoch from the pair:
`order = np.random.default_rng([seed, epoch]).permutation(N)` (a
`SeedSequence` mixes both numbers), and have the training loop call
`loader.set_epoch(e)` before each epoch. Nothing carries over between
epochs, so a run resumed at epoch 5 only needs `seed` and the epoch number
(plus the batch index, to resume mid-epoch by skipping the batches already
seen). With 8 processes, each computes the same permutation from the same
`(seed, e)`: no communication needed. Pad it to a multiple of 8 (repeat a few
indices) so every rank gets the same number of batches, and rank $r$ takes
`order[r::8]` (or the $r$-th contiguous eighth): disjoint shares that together
cover the epoch, a new split every epoch.

**Rubric (2 points).** 1 point for a per-epoch generator seeded from
`(seed, epoch)` and why it makes resumption independent of history; 1 point
for identical permutations on every rank with disjoint strided or contiguous
shares (padding, or dropping the remainder, for equal lengths).
### END SOLUTION
"""

# %% [markdown]
r"""
**4. Production engineering.** `download_cifar10` refuses a mirror URL without
a checksum, and `CIFAR10Dataset` refuses a folder without a verification
record, even though both would "work". Which failures do these refusals
prevent? Two processes on one machine (say, two training jobs) call
`download_cifar10` with the same `root` at the same moment: walk through the
code and say what each one sees. What would you add to make it safe?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_concurrent_downloads", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
r"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Without a checksum, bytes nobody verified reach the
unpickler, which can run code chosen by whoever controls the mirror, and a
truncated, corrupt or different version of the data trains silently (results
that cannot be reproduced). A folder without a record may be half-extracted,
hand-edited or from elsewhere; refusing it keeps "what was verified" and
"what is loaded" the same bytes. Two processes A and B: both see no verified
copy, both create their own temporary file and folder (`mkstemp`/`mkdtemp`
give unique names, so they do not collide), download, verify, extract and
write a marker. A renames its folder to `cifar-10-batches-py` first. B then
finds `final` existing and moves A's folder aside into its own temporary
folder (deleted in its `finally`) before renaming its own copy in; between
those two renames the path does not exist, so A's `CIFAR10Dataset`, reading
at that moment, fails with a missing file. If both pass the `final.exists()`
check before either renames, B's `rename` onto A's non-empty folder fails
with an `OSError`, not a `DatasetError`, although a good copy is in place.
Both downloaded 170 MB. Fix: take an exclusive lock (`fcntl.flock` on a
`root/.cifar-10.lock` file) around the whole check–download–rename sequence,
and re-check `_verified_copy` after acquiring it, so the second process
reuses the first one's copy.

**Rubric (2 points).** 1 point for the failures prevented (code execution
through pickle, silently wrong or corrupt data); 1 point for a correct walk
through the race (unique temporaries, the rename/replace window or the
failed rename) and a lock with a re-check as the fix.
### END SOLUTION
"""

# %% [markdown]
"""
## Module summary

You built the input side of the framework:

- **`Dataset` / `TensorDataset`**: "how many samples, and what is sample
  *i*", plus the optional `get_batch(indices)` that gathers a whole batch with
  one fancy index per array.
- **`DataLoader`**: batches of Tensors, `len()` that agrees with iteration
  (with and without `drop_last`), reproducible shuffling from a seed, a
  generator or `tinytorch.manual_seed`, a fresh order every epoch,
  `default_collate` and custom `collate_fn`s.
- **Transforms** (`tinytorch.data.transforms`): `ToTensor`,
  `ConvertImageDtype`, `Normalize`, `RandomCrop`, `RandomHorizontalFlip`,
  `Compose`, all vectorised over `(N, C, H, W)` batches with independent
  randomness per image.
- **CIFAR-10** (`tinytorch.data.cifar10`): `download_cifar10` with mirrors
  (`url`/`checksum`, `TINYTORCH_CIFAR10_URL`/`TINYTORCH_CIFAR10_CHECKSUM`, or a
  `.sha256` file), streamed checksum verification, safe extraction that
  refuses traversal, absolute paths, links and special files, an atomic rename
  and reuse of verified copies; `CIFAR10Dataset` with a restricted unpickler
  over re-verified files; `write_cifar10_archive` for offline tests.
- **Any single file** (`download_file`) and **tiny-shakespeare**
  (`tinytorch.data.shakespeare`): `download_shakespeare` with a pinned sha256,
  a mirror setting (`TINYTORCH_SHAKESPEARE_URL`), an atomic write with the
  umask's mode, and (`tinytorch.data.files`) the clean-up of what a killed
  download or save left behind.

You measured, on your machine, how much a per-sample Python loop costs against
one vectorised gather, how much vectorising augmentation gains, how fast the
whole pipeline runs, where its memory goes, and what verification costs.

Next, chapter 12 wraps the loop at the end of this chapter into a `Trainer`
with history, checkpoints and evaluation, and trains a CNN on the real
CIFAR-10 through this loader.
"""
