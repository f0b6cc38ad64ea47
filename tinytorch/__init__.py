"""TinyTorch: a deep learning framework built in NumPy, one chapter at a time.

The modules under tinytorch/ are generated from the chapters in modules/;
this file only gathers their public names.
"""

from .core.tensor import (Tensor, arange, cat, full, full_like, ones, ones_like, stack, tensor, where, zeros,
                          zeros_like)
from .core.init import manual_seed, rand, rand_like, randint, randn, randn_like
from .core.autograd import enable_grad, gradcheck, is_grad_enabled, no_grad
from . import data, models, nn, optim, profiling
from .nn import utils as _nn_utils  # makes tinytorch.nn.utils available after `import tinytorch`, as in PyTorch
from .core import kernels
from .core.networks import set_cross_entropy_kernel
from .core.normalization import set_batch_norm_kernel
from .core.spatial import set_conv2d_kernel, set_max_pool2d_kernel

# The package's one assembly step: chapter 14's fused softmax-cross-entropy computes every
# cross_entropy / nn.CrossEntropyLoss on (N, C) logits (the same numbers as chapter 05's
# composition, in one primitive). set_cross_entropy_kernel(None) goes back to the composition.
set_cross_entropy_kernel(kernels.softmax_cross_entropy_rows)
# Chapter 14's channels-last convolution computes every conv2d / nn.Conv2d (chapter 06's arguments,
# checks and results, with its own backward). set_conv2d_kernel(None) goes back to Im2col and one matmul.
set_conv2d_kernel(kernels.conv2d_channels_last)
# ... and its fused BatchNorm (batch statistics) and tiled max-pooling (stride = kernel, no padding).
set_batch_norm_kernel(kernels.batch_norm_fused)
set_max_pool2d_kernel(kernels.max_pool2d_tiles)

import numpy as _np

# dtypes under PyTorch's names: x.to(tinytorch.float64), tinytorch.zeros(3, dtype=tinytorch.int64)
float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool = _np.int32, _np.int64, _np.bool_

__version__ = "0.1.0"
