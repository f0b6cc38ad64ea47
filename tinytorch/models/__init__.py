"""Complete models built from tinytorch's layers: TinyGPT, its tokenizer and its training recipe (chapter 17)."""

from tinytorch.models.gpt import GPT, GPTConfig
from tinytorch.models.tokenizer import CharTokenizer
from tinytorch.models.train import (TrainConfig, batch_generators, configure_optimizers, estimate_loss,
                                    get_batch, get_lr, reuse_freed_memory, train)
