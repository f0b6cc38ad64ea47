"""Stateless functions behind the layers (torch.nn.functional's counterpart)."""

from tinytorch.core.activations import gelu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.core.spatial import avg_pool2d, conv2d, max_pool2d
