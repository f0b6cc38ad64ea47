"""1958: Rosenblatt's perceptron learns to separate two classes with your Linear layer.

    python milestones/1958_perceptron.py

Frank Rosenblatt's perceptron (1958) is one linear unit followed by a threshold:
it answers 1 when w·x + b > 0, else 0. His learning rule needs no gradients:
show it one example at a time, and when it answers wrongly, add the example to
the weights (a missed 1) or subtract it (a false 1); do the same to the bias.
Rosenblatt proved the rule stops making mistakes after finitely many updates
whenever a line (a hyperplane) separates the two classes.

Here the unit is your `tinytorch.nn.Linear(2, 1)`: its forward computes the
scores, and the rule updates its weight and bias. The data are two clouds of
200 points each along the same diagonal, so the separating line must miss the
origin: a Linear whose bias does nothing cannot pass.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's tinytorch, even when not installed

import tinytorch  # noqa: E402
from tinytorch import nn  # noqa: E402

from _milestone import parse_args, run  # noqa: E402

MILESTONE = {
    "year": 1958,
    "title": "The perceptron",
    "recreates": "Rosenblatt's perceptron learning rule on linearly separable data",
    "needs": ["02_tensor", "04_layers"],
    "passes_when": "train accuracy >= 99%",
    "budget": "seconds",
}
THRESHOLD = 0.99


def make_data(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two separable clouds: class 0 around (1, 1), class 1 around (3, 3); x (2n, 2) float32, y (2n,) in {0, 1}."""
    lower = rng.normal((1.0, 1.0), 0.35, size=(n, 2))
    upper = rng.normal((3.0, 3.0), 0.35, size=(n, 2))
    x = np.concatenate([lower, upper]).astype(np.float32)
    y = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)
    return x, y


def predict(unit: nn.Linear, x: np.ndarray) -> np.ndarray:
    """The perceptron's answer: 1 where the Linear layer's score is positive, else 0; (N, 2) -> (N,)."""
    with tinytorch.no_grad():
        scores = unit(tinytorch.tensor(x))         # (N, 2) -> (N, 1)
    return (scores.data[:, 0] > 0).astype(np.float32)


def train_perceptron(unit: nn.Linear, x: np.ndarray, y: np.ndarray, epochs: int, rng, log=print) -> list[float]:
    """Rosenblatt's rule, one example at a time in a shuffled order; returns the accuracy after each epoch."""
    history = []
    for epoch in range(1, epochs + 1):
        mistakes = 0
        for i in rng.permutation(len(x)):
            error = y[i] - predict(unit, x[i:i + 1])[0]     # +1: a missed 1, -1: a false 1, 0: right
            if error != 0:
                unit.weight.data[0] += error * x[i]           # w <- w + (y - ŷ) x
                unit.bias.data[0] += error                    # b <- b + (y - ŷ)
                mistakes += 1
        history.append(float(np.mean(predict(unit, x) == y)))
        log(f"epoch {epoch:2d}: {mistakes:3d} updates, train accuracy {history[-1]:.1%}")
        if mistakes == 0:
            log(f"no mistakes in a whole pass: the rule has converged after {epoch} epochs")
            break
    return history


def main(args) -> dict:
    rng = np.random.default_rng(args.seed)
    tinytorch.manual_seed(args.seed)
    x, y = make_data(200, rng)
    unit = nn.Linear(2, 1)
    print(f"{len(x)} points in 2-D, two classes; one Linear(2, 1) unit and a threshold")
    history = train_perceptron(unit, x, y, args.epochs, rng)
    w, b = unit.weight.data[0], unit.bias.data[0]
    print(f"the line it found: {w[0]:.2f}·x1 + {w[1]:.2f}·x2 + {b:.2f} = 0")
    final = history[-1]
    return {"passed": final >= THRESHOLD, "value": final,
            "summary": f"train accuracy {final:.1%} (needs >= {THRESHOLD:.0%}) after {len(history)} epochs",
            "details": {"train_accuracy": final, "epochs": len(history), "history": history}}


if __name__ == "__main__":
    args = parse_args(MILESTONE, __doc__, options=[(("--epochs",), {"type": int, "default": 20,
                                                                     "help": "passes over the data at most"})])
    sys.exit(run(MILESTONE, main, args))
