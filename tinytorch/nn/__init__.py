"""Layers and losses under PyTorch's names (tinytorch.nn.Linear is torch.nn.Linear's counterpart)."""

from tinytorch.core import init
from tinytorch.core.attention import Embedding, MultiheadAttention
from tinytorch.core.layers import (GELU, Identity, LeakyReLU, Linear, LogSoftmax, Module, ModuleList, Parameter, ReLU,
                                   Sequential, Sigmoid, Softmax, Tanh)
from tinytorch.core.networks import MLP, BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from tinytorch.core.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from tinytorch.core.regularization import Dropout
from tinytorch.core.spatial import AvgPool2d, Conv2d, Flatten, MaxPool2d

from . import functional
