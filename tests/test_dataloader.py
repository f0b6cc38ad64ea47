"""Datasets, the DataLoader and image transforms (tinytorch.data.loader, tinytorch.data.transforms)."""

from __future__ import annotations

import numpy as np
import pytest

import tinytorch
from tinytorch import Tensor
from tinytorch.data import (
    Compose,
    ConvertImageDtype,
    DataLoader,
    Dataset,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    TensorDataset,
    ToTensor,
    default_collate,
)

try:
    import torch
    import torch.utils.data as torch_data
except ImportError:  # the suite must pass without PyTorch
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed; comparison skipped")


def numbers(n: int) -> TensorDataset:
    """Sample i is (float32 i, int64 i % 3)."""
    return TensorDataset(np.arange(n, dtype=np.float32), np.arange(n) % 3)


def epoch(loader: DataLoader) -> list:
    """The first field of every sample, in the order one epoch yields them."""
    return [v for batch in loader for v in batch[0].tolist()]


class ListDataset(Dataset):
    """A dataset with no get_batch: the loader must call __getitem__ per sample."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        self.calls += 1
        return np.full(2, index, dtype=np.float32), index


# ---- datasets -----------------------------------------------------------------------------------

def test_tensor_dataset_returns_rows_with_their_dtypes():
    ds = TensorDataset(np.arange(12, dtype=np.float64).reshape(6, 2), np.arange(6))
    x, y = ds[5]
    assert x.dtype == np.float64 and x.tolist() == [10.0, 11.0]
    assert y.dtype == np.int64 and y.item() == 5
    assert len(ds) == 6


def test_tensor_dataset_keeps_a_float64_scalar_float64():
    _, y = TensorDataset(np.zeros((3, 2)), np.array([0.5, 1.5, 2.5]))[1]
    assert y.dtype == np.float64 and y.item() == 1.5


def test_tensor_dataset_accepts_tensors_and_arrays():
    ds = TensorDataset(Tensor(np.ones((4, 3), dtype=np.float32)), np.zeros(4))
    assert [t.shape for t in ds[0]] == [(3,), ()]


def test_tensor_dataset_get_batch_matches_indexing_one_by_one():
    ds = TensorDataset(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10))
    indices = np.array([7, 2, 2, 9])
    xb, yb = ds.get_batch(indices)
    assert np.array_equal(xb.data, np.stack([ds[i][0].data for i in indices]))
    assert yb.tolist() == [7, 2, 2, 9]


def test_tensor_dataset_refuses_different_numbers_of_samples():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_needs_at_least_one_tensor():
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_tensor_dataset_refuses_a_scalar():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(np.float32(3.0))


def test_dataset_is_abstract():
    with pytest.raises(TypeError):
        Dataset()

    class OnlyLen(Dataset):
        def __len__(self):
            return 0

    with pytest.raises(TypeError):
        OnlyLen()


# ---- batching -------------------------------------------------------------------------------------

def test_last_partial_batch_is_kept():
    assert [len(x) for x, _ in DataLoader(numbers(10), batch_size=4)] == [4, 4, 2]


def test_drop_last_drops_the_partial_batch():
    loader = DataLoader(numbers(10), batch_size=4, drop_last=True)
    assert [len(x) for x, _ in loader] == [4, 4]
    assert len(loader) == 2


@pytest.mark.parametrize("n", [0, 1, 5, 12, 13])
@pytest.mark.parametrize("batch_size", [1, 4, 5, 20])
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_is_the_number_of_batches_iteration_yields(n, batch_size, drop_last):
    loader = DataLoader(numbers(n), batch_size=batch_size, drop_last=drop_last, shuffle=True, seed=0)
    batches = list(loader)
    assert len(loader) == len(batches)
    expected = n // batch_size if drop_last else -(-n // batch_size)
    assert len(batches) == expected
    assert sum(len(x) for x, _ in batches) == (expected * batch_size if drop_last else n)


def test_batches_are_tensors_in_dataset_order_without_shuffle():
    batches = list(DataLoader(numbers(7), batch_size=3))
    assert all(isinstance(x, Tensor) and isinstance(y, Tensor) for x, y in batches)
    assert epoch(DataLoader(numbers(7), batch_size=3)) == list(range(7))
    assert batches[2][1].tolist() == [0]                  # 6 % 3


def test_empty_dataset_gives_an_empty_loader():
    for shuffle in (False, True):
        loader = DataLoader(numbers(0), batch_size=3, shuffle=shuffle)
        assert len(loader) == 0 and list(loader) == []


@pytest.mark.parametrize("bad", [0, -1, 2.5, "4", None, True])
def test_batch_size_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer") as err:
        DataLoader(numbers(4), batch_size=bad)
    assert "\n" not in str(err.value)


def test_numpy_integer_batch_size_is_accepted():
    assert len(DataLoader(numbers(10), batch_size=np.int64(5))) == 2


def test_seed_and_generator_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        DataLoader(numbers(4), shuffle=True, seed=1, generator=np.random.default_rng(1))


def test_a_loader_can_be_iterated_again():
    loader = DataLoader(numbers(5), batch_size=2)
    assert epoch(loader) == epoch(loader) == list(range(5))


# ---- shuffling ------------------------------------------------------------------------------------

def test_every_shuffled_epoch_is_a_permutation():
    loader = DataLoader(numbers(50), batch_size=7, shuffle=True, seed=3)
    for _ in range(3):
        assert sorted(epoch(loader)) == list(range(50))


def test_shuffled_order_changes_from_epoch_to_epoch():
    loader = DataLoader(numbers(50), batch_size=7, shuffle=True, seed=3)
    first, second = epoch(loader), epoch(loader)
    assert first != second and first != list(range(50))


def test_the_same_seed_gives_the_same_sequence_of_epochs():
    a = DataLoader(numbers(50), batch_size=7, shuffle=True, seed=11)
    b = DataLoader(numbers(50), batch_size=7, shuffle=True, seed=11)
    assert [epoch(a) for _ in range(3)] == [epoch(b) for _ in range(3)]


def test_different_seeds_give_different_orders():
    a = DataLoader(numbers(50), batch_size=7, shuffle=True, seed=1)
    b = DataLoader(numbers(50), batch_size=7, shuffle=True, seed=2)
    assert epoch(a) != epoch(b)


def test_a_passed_generator_drives_the_shuffle():
    loader = DataLoader(numbers(30), batch_size=4, shuffle=True, generator=np.random.default_rng(5))
    assert epoch(loader) == np.random.default_rng(5).permutation(30).tolist()


def test_manual_seed_reproduces_the_default_shuffle():
    tinytorch.manual_seed(42)
    first = epoch(DataLoader(numbers(30), batch_size=4, shuffle=True))
    tinytorch.manual_seed(42)
    assert epoch(DataLoader(numbers(30), batch_size=4, shuffle=True)) == first


def test_samples_keep_their_labels_when_shuffled():
    for x, y in DataLoader(numbers(40), batch_size=6, shuffle=True, seed=0):
        assert (x.data.astype(np.int64) % 3 == y.data).all()


# ---- collation --------------------------------------------------------------------------------------

def test_a_dataset_without_get_batch_is_read_sample_by_sample():
    ds = ListDataset(5)
    batches = list(DataLoader(ds, batch_size=2))
    assert ds.calls == 5
    assert batches[0][0].shape == (2, 2) and batches[0][1].dtype == np.int64
    assert batches[2][1].tolist() == [4]


def test_collate_fn_receives_the_list_of_samples():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return samples

    out = list(DataLoader(numbers(5), batch_size=2, collate_fn=collate))
    assert seen == [2, 2, 1]
    assert isinstance(out[0], list) and isinstance(out[0][0], tuple)


def test_per_sample_path_and_get_batch_give_the_same_batches():
    ds = TensorDataset(np.random.default_rng(0).standard_normal((23, 3)).astype(np.float32), np.arange(23))
    fast = DataLoader(ds, batch_size=5, shuffle=True, seed=4)
    slow = DataLoader(ds, batch_size=5, shuffle=True, seed=4, collate_fn=default_collate)
    for (xf, yf), (xs, ys) in zip(fast, slow, strict=True):
        assert np.array_equal(xf.data, xs.data) and np.array_equal(yf.data, ys.data)
        assert xf.dtype == xs.dtype and yf.dtype == ys.dtype


def test_default_collate_stacks_tensors_and_arrays():
    out = default_collate([Tensor(np.ones((2, 3), dtype=np.float32)), Tensor(np.zeros((2, 3), dtype=np.float32))])
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    assert default_collate([np.arange(3, dtype=np.int16)] * 4).dtype == np.int16
    assert default_collate([np.float64(1.5), np.float64(2.5)]).dtype == np.float64


def test_default_collate_turns_numbers_into_tensors():
    assert default_collate([1, 2, 3]).dtype == np.int64
    assert default_collate([0.5, 1.5]).dtype == np.float32
    assert default_collate([True, False]).tolist() == [1, 0]


def test_default_collate_recurses_into_tuples_and_dicts():
    batch = default_collate([({"a": 1, "b": np.zeros(2)}, "x"), ({"a": 2, "b": np.ones(2)}, "y")])
    assert isinstance(batch, tuple) and batch[1] == ["x", "y"]
    assert batch[0]["a"].tolist() == [1, 2] and batch[0]["b"].shape == (2, 2)


def test_default_collate_names_mismatched_shapes():
    with pytest.raises(ValueError, match="different shapes"):
        default_collate([np.zeros((3, 4)), np.zeros((3, 5))])


def test_default_collate_refuses_ragged_tuples():
    with pytest.raises(ValueError, match="different numbers of fields"):
        default_collate([(1, 2), (1, 2, 3)])


def test_default_collate_names_an_unknown_type():
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([object(), object()])


@requires_torch
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_match_torch_dataloader(drop_last):
    x = np.arange(26, dtype=np.float32).reshape(13, 2)
    y = np.arange(13)
    ours = DataLoader(TensorDataset(x, y), batch_size=4, drop_last=drop_last)
    theirs = torch_data.DataLoader(torch_data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                   batch_size=4, drop_last=drop_last)
    assert len(ours) == len(theirs)
    for (xa, ya), (xb, yb) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(xa.data, xb.numpy())
        np.testing.assert_array_equal(ya.data, yb.numpy())


@requires_torch
def test_default_collate_matches_torch_on_tuples_of_arrays_and_ints():
    samples = [(np.full((2, 2), i, dtype=np.float32), i) for i in range(3)]
    ours = default_collate(samples)
    theirs = torch_data.default_collate(samples)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.data, b.numpy())
        assert a.dtype == b.numpy().dtype


# ---- transforms -------------------------------------------------------------------------------------

def images(n=6, c=3, h=8, w=8, seed=0) -> np.ndarray:
    """uint8 images with no zero pixel, so zero padding is recognisable."""
    return np.random.default_rng(seed).integers(1, 256, size=(n, c, h, w)).astype(np.uint8)


def crop_positions(image: np.ndarray, out: np.ndarray, padding: int, fill: int = 0) -> list[tuple[int, int]]:
    """Every (top, left) where `out` is a window of `image` padded with `fill`: a per-image reference."""
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    h, w = out.shape[-2:]
    return [(t, l) for t in range(padded.shape[1] - h + 1) for l in range(padded.shape[2] - w + 1)
            if np.array_equal(padded[:, t:t + h, l:l + w], out)]


def test_to_tensor_moves_channels_first_and_scales_to_unit_range():
    hwc = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    out = ToTensor()(hwc)
    assert out.shape == (3, 5, 7) and out.dtype == np.float32 and out.is_contiguous()
    np.testing.assert_allclose(out.data, hwc.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert out.data.max() <= 1.0 and out.data.min() >= 0.0


def test_to_tensor_converts_a_batch_and_a_greyscale_image():
    batch = np.zeros((4, 5, 7, 3), dtype=np.uint8)
    assert ToTensor()(batch).shape == (4, 3, 5, 7)
    assert ToTensor()(np.full((5, 7), 255, dtype=np.uint8)).data.tolist() == np.ones((1, 5, 7)).tolist()


def test_to_tensor_leaves_float_values_alone():
    hwc = np.random.default_rng(0).random((4, 4, 3))
    out = ToTensor()(hwc)
    assert out.dtype == np.float64 and np.array_equal(out.data, hwc.transpose(2, 0, 1))


def test_to_tensor_refuses_other_integer_types():
    with pytest.raises(TypeError, match="uint8"):
        ToTensor()(np.zeros((4, 4, 3), dtype=np.int32))


def test_convert_image_dtype_scales_channels_first_uint8():
    x = images()
    out = ConvertImageDtype()(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out.data, x / 255.0, rtol=1e-6)
    assert ConvertImageDtype(np.float64)(x).dtype == np.float64


def test_convert_image_dtype_needs_a_float_target():
    with pytest.raises(ValueError, match="floating-point"):
        ConvertImageDtype(np.int32)


def test_normalize_applies_the_formula_per_channel():
    x = np.random.default_rng(0).random((4, 3, 5, 5)).astype(np.float32)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    out = Normalize(mean, std)(x)
    expected = (x - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Normalize(mean, std)(x[2]).data, expected[2], rtol=1e-5, atol=1e-6)


def test_normalize_refuses_uint8_and_says_what_to_add():
    with pytest.raises(TypeError, match="ConvertImageDtype"):
        Normalize([0.5], [0.5])(images())


def test_normalize_checks_channels_and_std():
    with pytest.raises(ValueError, match="2 means for images with 3 channels"):
        Normalize([0.5, 0.5], [0.5, 0.5])(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="divide by zero"):
        Normalize([0.5], [0.0])
    with pytest.raises(ValueError, match="2 means but 3 stds"):
        Normalize([0.5, 0.5], [1, 1, 1])


def test_transforms_refuse_a_wrong_number_of_dimensions():
    for transform in (RandomCrop(2), RandomHorizontalFlip(), Normalize([0.0], [1.0]), ConvertImageDtype()):
        with pytest.raises(ValueError, match=r"\(C, H, W\)"):
            transform(np.zeros((4, 4), np.float32))


def test_flip_with_p_0_is_the_identity_and_p_1_mirrors_every_image():
    x = images()
    assert np.array_equal(RandomHorizontalFlip(p=0.0)(x).data, x)
    assert np.array_equal(RandomHorizontalFlip(p=1.0)(x).data, x[..., ::-1])
    assert np.array_equal(RandomHorizontalFlip(p=1.0)(x[0]).data, x[0, :, :, ::-1])


def test_flip_mirrors_each_image_independently_about_p_of_the_time():
    x = images(n=400)
    out = RandomHorizontalFlip(p=0.3, generator=np.random.default_rng(0))(x).data
    mirrored = np.array([np.array_equal(o, i[..., ::-1]) for o, i in zip(out, x)])
    unchanged = np.array([np.array_equal(o, i) for o, i in zip(out, x)])
    assert (mirrored | unchanged).all(), "an output is neither its input nor the mirror of it"
    assert 0.2 < mirrored.mean() < 0.4


def test_flip_refuses_a_probability_outside_0_1():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        RandomHorizontalFlip(p=1.5)


def test_every_crop_is_a_window_of_the_padded_image():
    x = images(n=40)
    out = RandomCrop(8, padding=2, generator=np.random.default_rng(0))(x).data
    assert out.shape == x.shape and out.dtype == np.uint8
    for o, i in zip(out, x):
        assert crop_positions(i, o, 2), "a crop is not a window of the padded image"


def test_crop_positions_are_drawn_per_image_and_cover_every_offset():
    x = images(n=600, c=1, h=4, w=4)
    out = RandomCrop(4, padding=1, generator=np.random.default_rng(1))(x).data
    found = {crop_positions(i, o, 1)[0] for o, i in zip(out, x)}
    assert found == {(t, l) for t in range(3) for l in range(3)}


def test_crop_without_padding_cuts_a_rectangle():
    x = images(n=5, h=9, w=7)
    out = RandomCrop((4, 6))(x).data
    assert out.shape == (5, 3, 4, 6)
    assert all(crop_positions(i, o, 0) for o, i in zip(out, x))
    assert RandomCrop((4, 6))(x[0]).shape == (3, 4, 6)


def test_crop_pads_with_the_fill_value():
    x = np.full((1, 1, 2, 2), 9, dtype=np.uint8)
    out = RandomCrop(6, padding=2, fill=7)(x).data      # the only 6x6 window is the whole padded image
    assert out[0, 0, 0].tolist() == [7] * 6 and out[0, 0, 2, 2] == 9


def test_crop_larger_than_the_padded_image_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        RandomCrop(10, padding=0)(images())


def test_crop_refuses_bad_sizes_and_padding():
    with pytest.raises(ValueError, match="size"):
        RandomCrop(0)
    with pytest.raises(ValueError, match="padding"):
        RandomCrop(4, padding=-1)


def test_random_transforms_repeat_with_the_same_generator_seed_or_manual_seed():
    x = images(n=20)
    for make in (lambda g: RandomCrop(8, padding=3, generator=g), lambda g: RandomHorizontalFlip(generator=g)):
        assert np.array_equal(make(np.random.default_rng(9))(x).data, make(np.random.default_rng(9))(x).data)
    tinytorch.manual_seed(5)
    first = Compose([RandomCrop(8, padding=3), RandomHorizontalFlip()])(x).data
    tinytorch.manual_seed(5)
    assert np.array_equal(Compose([RandomCrop(8, padding=3), RandomHorizontalFlip()])(x).data, first)


def test_transforms_do_not_modify_their_input():
    x = images()
    before = x.copy()
    RandomHorizontalFlip(p=1.0)(x)
    RandomCrop(8, padding=2)(x)
    f = ConvertImageDtype()(x)
    f_before = f.data.copy()
    Normalize([0.5], [0.5])(f)
    assert np.array_equal(x, before) and np.array_equal(f.data, f_before)


def test_transforms_accept_tensors_and_return_tensors():
    x = Tensor(images())
    for transform in (RandomCrop(8, padding=1), RandomHorizontalFlip(), ConvertImageDtype()):
        assert isinstance(transform(x), Tensor)


def test_compose_applies_transforms_in_order():
    calls = []
    pipeline = Compose([lambda v: calls.append("a") or v + 1, lambda v: calls.append("b") or v * 10])
    assert pipeline(1) == 20 and calls == ["a", "b"]


def test_a_training_pipeline_runs_on_a_batch_and_on_one_image():
    pipeline = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), ConvertImageDtype(),
                        Normalize([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])])
    x = images(n=8, h=32, w=32)
    assert pipeline(x).shape == (8, 3, 32, 32) and pipeline(x).dtype == np.float32
    assert pipeline(x[0]).shape == (3, 32, 32)


def test_a_loader_applies_a_batch_transform_through_get_batch():
    class Images(TensorDataset):
        def get_batch(self, indices):
            x, y = super().get_batch(indices)
            return ConvertImageDtype()(x), y

    ds = Images(images(n=10), np.arange(10))
    for x, y in DataLoader(ds, batch_size=4):
        assert x.dtype == np.float32 and x.shape[1:] == (3, 8, 8)
