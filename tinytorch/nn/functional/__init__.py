"""Stateless functions behind the layers (torch.nn.functional's counterpart)."""

from tinytorch.core.activations import gelu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.core.regularization import dropout
