"""TinyTorch: a deep learning framework built in NumPy, one chapter at a time.

The modules under tinytorch/ are generated from the chapters in modules/;
this file only gathers their public names.
"""

from .core.tensor import Tensor
from .core.init import manual_seed
from .core.autograd import enable_grad, gradcheck, is_grad_enabled, no_grad
from . import data, models, nn, optim, profiling
from .nn import utils as _nn_utils  # makes tinytorch.nn.utils available after `import tinytorch`, as in PyTorch
from .core import kernels  # installs chapter 14's fused cross-entropy behind nn.CrossEntropyLoss

__version__ = "0.1.0"
