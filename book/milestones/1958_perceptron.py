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
# 1958: the perceptron

Frank Rosenblatt's perceptron is one linear unit and a threshold: it answers
1 when $w \cdot x + b > 0$. His learning rule needs no calculus: show it one
example at a time; when it answers 0 but should say 1, add the example to the
weights and 1 to the bias; when it wrongly says 1, subtract. He proved that
whenever a line separates the two classes, the rule stops making mistakes
after finitely many updates.

**What your code does.** The unit is your `nn.Linear(2, 1)` (chapter 04) on
your `Tensor` (chapter 02): its forward computes the scores, and the rule
writes into its `weight` and `bias`. The two clouds of points lie along one
diagonal, so the separating line must miss the origin: a `Linear` whose bias
is ignored cannot pass. It passes at 99% training accuracy or more.

The run below is the script `milestones/1958_perceptron.py`, executed while
this page was built.
"""

# %%
import subprocess
import sys

# The milestone script itself, on the package this book was built with (the same as: tito milestone run 1958).
done = subprocess.run([sys.executable, "../../milestones/1958_perceptron.py"], capture_output=True, text=True)
print(done.stdout + done.stderr)
assert done.returncode == 0, "milestone 1958 failed on this package"
