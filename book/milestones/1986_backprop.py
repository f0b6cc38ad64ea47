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
# 1986: backpropagation

Rumelhart, Hinton and Williams's "Learning representations by
back-propagating errors" answered 1969: put hidden units between input and
output, make every unit smooth, and the chain rule hands every weight its
share of the error, layer by layer from the output back. Hidden units learn
their own features; XOR needs only two (roughly OR and AND), and the output
computes "OR and not AND".

**What your code does.** `nn.Sequential` of `nn.Linear` and `nn.Sigmoid`
(chapters 03–04), `nn.MSELoss` (05), `loss.backward()` (09) and `optim.SGD`
(10) learn XOR below, live. Then the same recipe at a bigger size (a
64–128–10 network with ReLU, cross-entropy and Adam) learns the real
handwritten digits; that run is recorded, not repeated in the build. It
passes at XOR 100% and 95% test accuracy or more on the digits.
"""

# %%
import importlib
import sys

sys.path.insert(0, "../../milestones")
backprop = importlib.import_module("1986_backprop")   # the milestone script, as a module
xor_accuracy = backprop.learn_xor(seed=0)
print(f"XOR accuracy after backpropagation: {xor_accuracy:.0%}")
assert xor_accuracy == 1.0, "the two-layer network did not learn XOR"

# %% [markdown]
"""
## The digits, as recorded
"""

# %%
from pathlib import Path

from tito.milestones import show_recorded

show_recorded(Path("../.."), 1986)
