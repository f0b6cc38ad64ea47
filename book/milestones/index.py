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
# Milestones

Each milestone retrains a result from the field's history with **your own
`tinytorch`**: the package exported from the chapters you wrote. When one
passes, the framework you built did what the people who made history did,
on real data.

```bash
tito milestone list          # every milestone, the chapters it needs, whether your package can run it
tito milestone run 1958      # run one: progress as it trains, then PASSED or FAILED against its threshold
```

`run` refuses, in one line, while a chapter the milestone needs still holds
stubs, and names that chapter. A wrong implementation does not crash it: the
run ends with FAILED and the number it reached. Your result is recorded in
`.tito/progress.json`, and your copy of the book's progress page lists it.
Each milestone is also a script in `milestones/` that you can read and run
alone (`python milestones/1958_perceptron.py`); it imports only `tinytorch`
and NumPy.

The digits are the UCI handwritten digits (8×8 pixels, 1,797 images),
downloaded once into `data/` from scikit-learn's pinned copy, checksum
verified (`TINYTORCH_DIGITS_URL` and `TINYTORCH_DIGITS_CHECKSUM` name a
mirror). The split is stratified and seeded: 1,438 images to train on, 359
to test on.

The table below shows the runs recorded for this book on the complete
package (`tito milestone run YEAR --write-book`); 1958 and 1969 also run live
on their pages every time the book is built.
"""

# %%
from pathlib import Path

from tito.milestones import results_table

results_table(Path("../.."))
