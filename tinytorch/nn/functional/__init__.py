"""Stateless functions behind the layers (torch.nn.functional's counterpart)."""

from tinytorch.nn.activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from tinytorch.nn.attention import scaled_dot_product_attention
from tinytorch.nn.loss import binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from tinytorch.nn.regularization import dropout
from tinytorch.nn.spatial import avg_pool2d, conv2d, max_pool2d
