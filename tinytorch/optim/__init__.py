"""Optimizers and learning-rate schedules under PyTorch's names (tinytorch.optim.SGD is torch.optim.SGD's counterpart)."""

from tinytorch.optim.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop

from . import lr_scheduler
