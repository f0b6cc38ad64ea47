"""TinyTorch: a deep learning framework built in NumPy, one chapter at a time.

The modules under tinytorch/ are generated from the chapters in modules/;
this file only gathers their public names.
"""

from .core.tensor import Tensor
from .core.creation import arange, full, full_like, ones, ones_like, tensor, zeros, zeros_like
from .core.ops import cat, stack, where
from .nn.init import manual_seed, rand, rand_like, randint, randn, randn_like
from .core.autograd import enable_grad, gradcheck, is_grad_enabled, no_grad
from . import data, kernels, models, nn, optim, profiling, utils
from .nn import loss as _loss, normalization as _normalization, spatial as _spatial

# The package's one assembly step: chapter 14's kernels compute what earlier chapters composed,
# each installed by one assignment to the hook its chapter provides (set_*_kernel(None) goes back):
# the fused softmax-cross-entropy behind every cross_entropy / nn.CrossEntropyLoss on (N, C) logits,
_loss.cross_entropy_kernel = kernels.softmax_cross_entropy_rows
# the channels-last convolution behind every conv2d / nn.Conv2d (chapter 06's arguments, checks and
# results, with its own backward),
_spatial.conv2d_kernel = kernels.conv2d_channels_last
# the fused BatchNorm (batch statistics) and LayerNorm, and the tiled max-pooling (stride = kernel, no padding).
_normalization.batch_norm_kernel = kernels.batch_norm_fused
_normalization.layer_norm_kernel = kernels.layer_norm_fused
_spatial.max_pool2d_kernel = kernels.max_pool2d_tiles

import numpy as _np

# dtypes under PyTorch's names: x.to(tinytorch.float64), tinytorch.zeros(3, dtype=tinytorch.int64)
float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool = _np.int32, _np.int64, _np.bool_

__version__ = "0.1.0"
