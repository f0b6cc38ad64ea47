"""Complete models built from tinytorch's layers: TinyGPT, its tokenizer and its training recipe (chapter 17),
and generating from it fast: the KV cache and byte-pair encoding (chapter 18)."""

from tinytorch.models.bpe import BPETokenizer
from tinytorch.models.gpt import GPTConfig
from tinytorch.models.generation import GPT, KVCache, kv_cache_bytes
from tinytorch.models.tokenizer import CharTokenizer
from tinytorch.models.train import (TrainConfig, batch_generators, configure_optimizers, estimate_loss,
                                    get_batch, get_lr, reuse_freed_memory, train)
