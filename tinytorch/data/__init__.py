"""Feeding data to models: datasets, batching, image transforms, CIFAR-10, handwritten digits (torch.utils.data's counterpart)."""

from tinytorch.data.loader import DataLoader, Dataset, TensorDataset, default_collate
from tinytorch.data.transforms import (
    Compose,
    ConvertImageDtype,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToTensor,
)
from tinytorch.data.cifar10 import (
    CIFAR10Dataset,
    DatasetError,
    download_cifar10,
    download_file,
    write_cifar10_archive,
)
from tinytorch.data.shakespeare import download_shakespeare
from tinytorch.data.digits import Digits, download_digits, load_digits, split_digits, write_digits_file

from . import transforms
