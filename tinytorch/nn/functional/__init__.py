"""Stateless functions behind the layers (torch.nn.functional's counterpart)."""

from tinytorch.core.activations import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.core.attention import scaled_dot_product_attention
from tinytorch.core.networks import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy,
                                    mse_loss, nll_loss)
from tinytorch.core.regularization import dropout
from tinytorch.core.spatial import avg_pool2d, conv2d, max_pool2d
