"""Training utilities under PyTorch's names (torch.nn.utils' counterpart)."""

from tinytorch.models.train import clip_grad_norm_
