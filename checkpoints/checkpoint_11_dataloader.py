"""Checkpoint 11 (dataloader): Can I load, batch and augment real data safely and fast?

Every check uses the public API of tinytorch.data on small data whose right
answer is known: batches that miss or repeat a sample, a shuffle that is not a
permutation, collation that loses a field, transforms that touch the wrong
pixels, an archive that writes outside its folder or a batch file that runs
code while loading, all fail here.
"""

import io
import os
import pickle
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from _harness import main

from tinytorch import Tensor
from tinytorch.data import (
    CIFAR10Dataset,
    DataLoader,
    DatasetError,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    TensorDataset,
    default_collate,
    download_cifar10,
    write_cifar10_archive,
)


def _dataset(n=10):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(x, y)


def _labels(loader):
    return [batch[1].data.tolist() for batch in loader]


def check_batches_cover_every_sample_once():
    """A loader of 10 samples in batches of 4 yields 3 batches (4, 4, 2) holding each sample once, in order."""
    loader = DataLoader(_dataset(10), batch_size=4)
    batches = list(loader)
    sizes = [b[0].shape[0] for b in batches]
    assert len(loader) == 3 and sizes == [4, 4, 2], f"batch sizes {sizes} (len {len(loader)}); expected [4, 4, 2]"
    assert sum(_labels(loader), []) == list(range(10)), f"samples in order 0..9 expected, got {_labels(loader)}"
    assert np.array_equal(batches[1][0].data, np.arange(8, 16, dtype=np.float32).reshape(4, 2)), \
        "batch 1's inputs are not rows 4..7 of the dataset"
    dropped = DataLoader(_dataset(10), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(b) for b in _labels(dropped)] == [4, 4], "drop_last must drop the short batch"


def check_shuffle_is_a_fresh_permutation_each_epoch():
    """shuffle=True visits every sample once per epoch, in a new order each epoch, reproducibly for a seed."""
    loader = DataLoader(_dataset(50), batch_size=7, shuffle=True, seed=11)
    first, second = sum(_labels(loader), []), sum(_labels(loader), [])
    assert sorted(first) == list(range(50)), "a shuffled epoch must hold every sample exactly once"
    assert first != list(range(50)), "shuffle=True left the samples in order"
    assert first != second, "two epochs came out in the same order; shuffle must draw a new order every epoch"
    again = sum(_labels(DataLoader(_dataset(50), batch_size=7, shuffle=True, seed=11)), [])
    assert again == first, "the same seed must give the same order"


def check_default_collate_stacks_each_field():
    """default_collate turns a list of (image, label) samples into (images (N, ...), labels int64 (N,))."""
    samples = [(np.full((3, 2, 2), i, dtype=np.float32), i) for i in range(5)]
    batch = default_collate(samples)
    assert isinstance(batch, (tuple, list)) and len(batch) == 2, f"expected (images, labels), got {type(batch).__name__}"
    images, labels = batch
    assert isinstance(images, Tensor) and images.shape == (5, 3, 2, 2), f"images: {getattr(images, 'shape', images)}"
    assert np.array_equal(images.data[:, 0, 0, 0], np.arange(5)), "images were not stacked in sample order"
    assert isinstance(labels, Tensor) and labels.dtype == np.int64 and labels.data.tolist() == [0, 1, 2, 3, 4], \
        "integer labels must become an int64 Tensor in sample order"
    loader = DataLoader(samples, batch_size=2)   # a plain list is a dataset: samples one by one, then collate
    assert [b[1].data.tolist() for b in loader] == [[0, 1], [2, 3], [4]], "a loader over a list must collate its samples"


def check_normalize_works_per_channel():
    """Normalize subtracts each channel's mean and divides by its std, for one image and for a batch."""
    image = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 4.0), np.full((2, 2), 9.0)]).astype(np.float32)
    out = Normalize([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])(image)
    expected = [0.0, 1.0, 2.0]
    got = [float(out.data[c, 0, 0]) for c in range(3)]
    assert np.allclose(got, expected), f"channel values {got}, expected {expected} ((x - mean[c]) / std[c])"
    batch = Normalize([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])(np.stack([image, image]))
    assert batch.shape == (2, 3, 2, 2) and np.allclose(batch.data[1, :, 1, 1], expected), "a batch must normalize per channel too"


def check_flip_and_crop_augment_correctly():
    """RandomHorizontalFlip mirrors the width axis (p=1) or nothing (p=0); RandomCrop cuts a window of the padded image."""
    image = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    flipped = RandomHorizontalFlip(p=1.0)(image)
    assert np.array_equal(flipped.data, image[:, :, ::-1]), "p=1 must mirror every image left-right (the last axis)"
    kept = RandomHorizontalFlip(p=0.0)(image)
    assert np.array_equal(kept.data, image), "p=0 must leave the image unchanged"
    batch = np.stack([image] * 64)
    flips = RandomHorizontalFlip(p=0.5, generator=np.random.default_rng(3))(batch).data
    mirrored = sum(np.array_equal(f, image[:, :, ::-1]) for f in flips)
    assert 10 < mirrored < 54, f"p=0.5 flipped {mirrored} of 64 images; each image needs its own coin"
    crop = RandomCrop(4, padding=2, generator=np.random.default_rng(0))
    padded = np.pad(image, ((0, 0), (2, 2), (2, 2)))
    for _ in range(10):
        out = crop(image).data
        assert out.shape == (2, 4, 4), f"RandomCrop(4, padding=2) gave shape {out.shape}, expected (2, 4, 4)"
        windows = [padded[:, i:i + 4, j:j + 4] for i in range(padded.shape[1] - 3) for j in range(padded.shape[2] - 3)]
        assert any(np.array_equal(out, w) for w in windows), "the crop is not a 4x4 window of the zero-padded image"


def check_cifar10_downloads_verifies_and_loads():
    """A CIFAR-10 archive is downloaded, checked against its checksum, and read as uint8 (N, 3, 32, 32) images with labels."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        checksum = write_cifar10_archive(archive, n_train=60, n_test=20, seed=1)
        root = Path(tmp) / "data"
        try:
            download_cifar10(root, url=archive.as_uri(), checksum="sha256:" + "0" * 64, progress=False)
        except DatasetError:
            pass
        else:
            raise AssertionError("download_cifar10 accepted an archive whose checksum does not match")
        assert not root.exists() or not any(root.iterdir()), "a refused download left files behind"
        download_cifar10(root, url=archive.as_uri(), checksum=checksum, progress=False)
        train, test = CIFAR10Dataset(root, train=True), CIFAR10Dataset(root, train=False)
        assert (len(train), len(test)) == (60, 20), f"{len(train)} train and {len(test)} test images, expected 60 and 20"
        images, labels = train.get_batch(np.arange(8))
        assert images.shape == (8, 3, 32, 32) and images.dtype == np.uint8, f"images {images.shape} {images.dtype}"
        assert labels.dtype == np.int64 and labels.data.min() >= 0 and labels.data.max() <= 9, "labels must be int64 in 0..9"
        batches = list(DataLoader(train, batch_size=25))
        assert [b[0].shape[0] for b in batches] == [25, 25, 10], "a loader over CIFAR-10 must batch all 60 images"


def _rewritten(archive: Path, out: Path, change) -> None:
    """Copy a tar.gz, letting `change(info, data)` return the (info, data) pairs to write instead of each member."""
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isfile() else None
            for new_info, new_data in change(info, data):
                dst.addfile(new_info, io.BytesIO(new_data) if new_data is not None else None)


class _RunsCode:
    def __reduce__(self):
        return (os.getpid, ())


def _sha256(path: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def check_unsafe_archives_and_pickles_are_refused():
    """An archive member that climbs out with '..' is refused and writes nothing; a batch file that would call a function is refused."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        good = tmp / "good.tar.gz"
        write_cifar10_archive(good, n_train=10, n_test=5, seed=2)

        def escape(info, data):
            yield info, data
            if info.name.endswith("batches.meta"):
                evil = tarfile.TarInfo("../escaped.txt")
                evil.size = 4
                yield evil, b"oops"

        climbing = tmp / "climbing.tar.gz"
        _rewritten(good, climbing, escape)
        root = tmp / "climb" / "data"
        try:
            download_cifar10(root, url=climbing.as_uri(), checksum=_sha256(climbing), progress=False)
        except DatasetError:
            pass
        else:
            raise AssertionError("an archive member named '../escaped.txt' was extracted")
        assert not (tmp / "climb" / "escaped.txt").exists(), "the '..' member was written outside the data folder"

        def poison(info, data):
            if info.name.endswith("data_batch_1"):
                data = pickle.dumps({b"data": _RunsCode(), b"labels": []}, protocol=2)
                info = tarfile.TarInfo(info.name)
                info.size = len(data)
            yield info, data

        poisoned = tmp / "poisoned.tar.gz"
        _rewritten(good, poisoned, poison)
        root = tmp / "poison" / "data"
        download_cifar10(root, url=poisoned.as_uri(), checksum=_sha256(poisoned), progress=False)
        try:
            CIFAR10Dataset(root, train=True)
        except DatasetError as err:
            assert "os" in str(err) or "posix" in str(err) or "refus" in str(err), f"the refusal should name what was refused: {err}"
        else:
            raise AssertionError("a batch file that calls os.getpid while unpickling was loaded")


def check_a_batch_is_fetched_in_one_call():
    """A dataset with get_batch(indices) is read once per batch, not once per sample."""
    calls = {"item": 0, "batch": 0}

    class Counting(TensorDataset):
        def __getitem__(self, index):
            calls["item"] += 1
            return super().__getitem__(index)

        def get_batch(self, indices):
            calls["batch"] += 1
            return super().get_batch(indices)

    x = np.arange(200, dtype=np.float32).reshape(100, 2)
    loader = DataLoader(Counting(x, np.arange(100)), batch_size=32, shuffle=True, seed=0)
    seen = sorted(sum((b[1].data.tolist() for b in loader), []))
    assert seen == list(range(100)), "the batched path lost or repeated samples"
    assert calls == {"item": 0, "batch": 4}, f"expected 4 get_batch calls and no __getitem__ calls, got {calls}"


if __name__ == "__main__":
    main(globals())
