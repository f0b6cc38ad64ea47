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
# 2018: MLPerf

MLPerf (2018, now MLCommons) changed how training systems are compared: not
images per second, which a system can buy by giving up accuracy, but **time
to accuracy**, the wall time to train a fixed model to a fixed quality
target, with the data, model, target and machine stated.

**What your code does.** The 1998 CNN trains to 97% test accuracy on the
digits and the 1986 MLP to 95%; the wall time each takes is the score. Then
one training step of each of chapter 15's two reference workloads (the
CIFAR-10 CNN at batch 32, and a Transformer block at batch 8 with 64 tokens of
width 128) is timed with your benchmark harness. Each number is set beside
the complete package's, stored in `milestones/2018_reference.json`
(`python milestones/2018_mlperf.py --write-reference` writes it). A slower
framework is reported, never failed: the milestone fails only when a quality
target is missed. Wall times on a shared machine are noisy; compare ratios
run side by side, not across machines.
"""

# %%
from pathlib import Path

from tito.milestones import show_recorded

show_recorded(Path("../.."), 2018)
