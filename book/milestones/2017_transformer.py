# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
"""
# 2017: the Transformer

Vaswani et al.'s "Attention Is All You Need" dropped recurrence: every
position of a sequence attends to every other, and where each one looks is
learned. Sorting tests exactly that: output position *i* must find the
*i*-th smallest digit wherever it sits in the input.

**What your code does.** Token and position `nn.Embedding`s, two pre-norm
blocks of your `nn.MultiheadAttention` (chapter 07) and an MLP with
`nn.LayerNorm` (08), and a `nn.Linear` head, trained with cross-entropy,
backpropagation and Adam on 20,000 random sequences of 8 digits. It is tested
on 1,000 sequences it never saw, and a sequence counts only if all 8 outputs
are right. It passes at 99% exact match or more.

**Next: the capstone.** Chapter 17 uses the same blocks with a causal mask
and trains a GPT on Shakespeare; its result is on the {doc}`TinyGPT results page <../results/tinygpt>`.
"""

# %%
from pathlib import Path

from tito.milestones import show_recorded

show_recorded(Path("../.."), 2017)
