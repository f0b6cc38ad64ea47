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
# 1969: the XOR problem

Marvin Minsky and Seymour Papert's *Perceptrons* proved what one layer of
threshold units cannot compute. The famous case is XOR: (0, 1) and (1, 0)
must fall on one side of the line, (0, 0) and (1, 1) on the other. But the
midpoint of (0, 0) and (1, 1) is (0.5, 0.5), which is also the midpoint of
(0, 1) and (1, 0); a line keeps the midpoint of two points on their side, so
(0.5, 0.5) would have to be on both sides at once. Any single line gets at
least one of the four points wrong: **75% at best**. The result was read as
a verdict on neural networks, and the field stalled for a decade.

**What your code does.** The 1958 perceptron (your `nn.Linear(2, 1)` and
Rosenblatt's rule) learns AND and OR exactly, which shows that the rule and your
layer work; on XOR it never gets all four points right. The script also
tries 2,000 lines across the square to show the 75% ceiling. It passes when AND
and OR reach 100% and XOR stays at or below 75%.
"""

# %%
import subprocess
import sys

# The milestone script itself, on the package this book was built with (the same as: tito milestone run 1969).
done = subprocess.run([sys.executable, "../../milestones/1969_xor.py"], capture_output=True, text=True)
print(done.stdout + done.stderr)
assert done.returncode == 0, "milestone 1969 failed on this package"
