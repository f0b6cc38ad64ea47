"""Chapter 14's kernels: matrix products and transposes, convolutions (blocked columns, Winograd), and fused layers
and losses."""

from tinytorch.kernels.matmul import matmul_blocked, matmul_naive, transpose_blocked
from tinytorch.kernels.conv import (
    Conv2dChannelsLast,
    conv2d_channels_last,
    conv2d_direct,
    conv2d_kernel,
    winograd_backward,
    winograd_forward,
    winograd_matrices,
    winograd_transform,
    workspace_buffer,
)
from tinytorch.kernels.fused import (
    BatchNormFused,
    LayerNormFused,
    MaxPool2dTiles,
    SoftmaxCrossEntropy,
    batch_norm_fused,
    cross_entropy_kernel,
    layer_norm_fused,
    max_pool2d_tiles,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_rows,
)
