"""Layers and losses under PyTorch's names (tinytorch.nn.Linear is torch.nn.Linear's counterpart)."""

from tinytorch.nn import init
from tinytorch.nn.attention import Embedding, MultiheadAttention
from tinytorch.nn.layers import (GELU, Identity, LeakyReLU, Linear, LogSoftmax, ModuleList, ReLU, Sequential,
                                 Sigmoid, Softmax, Tanh)
from tinytorch.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from tinytorch.nn.module import Module, Parameter
from tinytorch.nn.networks import MLP
from tinytorch.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from tinytorch.nn.regularization import Dropout
from tinytorch.nn.spatial import AvgPool2d, Conv2d, Flatten, MaxPool2d

from . import functional, utils
