"""Learning-rate schedules under PyTorch's names (torch.optim.lr_scheduler's counterpart)."""

from tinytorch.core.lr_scheduler import (CosineAnnealingLR, ExponentialLR, LinearLR, LRScheduler, MultiStepLR,
                                         OneCycleLR, ReduceLROnPlateau, StepLR)
