"""The GPT of chapter 17 written in PyTorch, for comparisons: same structure, same parameter names.

nanoGPT's model with two choices made to match tinytorch: GELU is the tanh
approximation by default (the form tinytorch's GPT uses; `gelu="none"` gives
nanoGPT's exact GELU) and attention uses an explicit causal mask rather than a fused
kernel. `copy_weights(tiny, reference)` copies a tinytorch GPT's parameters into a
model built here, so both compute the same function; `init_like_nanogpt(reference)`
draws fresh weights from torch's generator the way nanoGPT does. Needs PyTorch;
imported only by the benchmarks and the tests that compare.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        T = config.block_size
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)                        # each (B, T, C)
        q = q.view(B, T, nh, hs).transpose(1, 2)                       # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)
        v = v.view(B, T, nh, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))        # (B, nh, T, T)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)                 # (B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, config, gelu: str = "tanh"):
        super().__init__()
        self.gelu = gelu                                               # F.gelu's approximate=: "tanh" or "none"
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.mlp.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate=self.gelu))


class GPT(nn.Module):
    def __init__(self, config, gelu: str = "tanh"):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([Block(config, gelu) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight                          # tied, as in tinytorch's GPT

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))
        return logits, loss


def init_like_nanogpt(reference: GPT) -> GPT:
    """nanoGPT's _init_weights, drawn from torch's generator in nanoGPT's order.

    First `apply` visits every module (children before parents, so the tied head redraws the
    token table last) and gives each Linear and Embedding weight N(0, 0.02) and zero biases;
    then the projections that write into the residual stream are redrawn with
    N(0, 0.02 / sqrt(2 n_layer)). The modules are built in nanoGPT's order too, so after
    torch.manual_seed(s) the weights are the ones nanoGPT's train.py starts from with seed s.
    """
    def init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    reference.apply(init)
    for name, p in reference.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * reference.config.n_layer))
    return reference


def copy_weights(tiny, reference: GPT, dtype=torch.float32) -> GPT:
    """Copy every parameter of a tinytorch GPT into `reference` (same names), cast to dtype."""
    reference.to(dtype)
    theirs = dict(reference.named_parameters())
    ours = dict(tiny.named_parameters())
    if set(ours) != set(theirs):
        raise ValueError(f"parameter names differ: {sorted(set(ours) ^ set(theirs))}")
    with torch.no_grad():
        for name, p in ours.items():
            theirs[name].copy_(torch.from_numpy(np.asarray(p.data)).to(dtype))
    return reference
