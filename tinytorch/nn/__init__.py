"""Layers and losses under PyTorch's names (tinytorch.nn.Linear is torch.nn.Linear's counterpart)."""

from tinytorch.core import init
from tinytorch.core.activations import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.layers import Linear, Module, ModuleList, Parameter, Sequential
from tinytorch.core.regularization import Dropout

from . import functional
