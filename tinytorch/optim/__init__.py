"""Optimizers under PyTorch's names (tinytorch.optim.SGD is torch.optim.SGD's counterpart)."""

from tinytorch.core.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop

from . import lr_scheduler
