"""Training utilities under PyTorch's names (torch.nn.utils' counterpart)."""

from tinytorch.nn.utils.clip_grad import clip_grad_norm_
