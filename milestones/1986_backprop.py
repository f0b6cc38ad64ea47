"""1986: backpropagation. A two-layer network learns XOR, then real handwritten digits.

    python milestones/1986_backprop.py

Rumelhart, Hinton and Williams's "Learning representations by back-propagating
errors" (Nature, 1986) answered Minsky and Papert: put a layer of hidden units
between input and output, make every unit smooth (a sigmoid instead of a
threshold), and the chain rule gives each weight its share of the error, layer
by layer from the output back. The hidden layer learns its own features, and
XOR becomes easy: one hidden unit can learn OR, another AND, and the output
"OR and not AND".

Your framework does all of it: `nn.Sequential` of `nn.Linear` and `nn.Sigmoid`
(chapters 03-04), a loss (05), `loss.backward()` (09) and an optimizer (10).
First XOR, exactly as in 1986; then the same recipe, bigger, on 1,797 real
handwritten digits (8x8 pixels, the UCI set), trained on 1,438 of them and
tested on the 359 it never saw.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's tinytorch, even when not installed

import tinytorch  # noqa: E402
from tinytorch import nn, optim  # noqa: E402
from tinytorch.data import load_digits, split_digits  # noqa: E402

from _milestone import accuracy, parse_args, run  # noqa: E402

MILESTONE = {
    "year": 1986,
    "title": "Backpropagation",
    "recreates": "an MLP learns XOR by backpropagation, then real handwritten digits",
    "needs": ["02_tensor", "03_activations", "04_layers", "05_networks", "09_autograd", "10_optimizers"],
    "passes_when": "XOR 100%; digits >= 95% test accuracy",
    "budget": "<= 1 min",
}
DIGITS_THRESHOLD = 0.95


def learn_xor(seed: int) -> float:
    """A 2-4-1 sigmoid network trained by backpropagation on XOR's four points; returns its accuracy."""
    tinytorch.manual_seed(seed)
    x = tinytorch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=tinytorch.float32)
    y = tinytorch.tensor([[0], [1], [1], [0]], dtype=tinytorch.float32)
    net = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1), nn.Sigmoid())   # (4, 2) -> (4, 1)
    opt = optim.SGD(net.parameters(), lr=2.0, momentum=0.9)
    loss_fn = nn.MSELoss()
    for step in range(1, 1001):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()                       # the chain rule, from the loss back to every weight
        opt.step()
        if step % 250 == 0:
            print(f"  XOR step {step:4d}: loss {loss.item():.4f}")
    with tinytorch.no_grad():
        out = net(x).data[:, 0]
    print(f"  XOR outputs {[round(float(v), 2) for v in out]} for targets [0, 1, 1, 0]")
    return float(np.mean((out > 0.5) == (y.data[:, 0] > 0.5)))


def learn_digits(args) -> tuple[float, dict, list[str]]:
    """A 64-128-10 network on the handwritten digits; returns (test accuracy, curve, log lines)."""
    tinytorch.manual_seed(args.seed)
    digits = load_digits(args.data)
    train, test = split_digits(digits.target, test_fraction=0.2, seed=0)
    mean, std = digits.data[train].mean(axis=0), digits.data[train].std(axis=0) + 1.6
    x = (digits.data - mean) / std                            # each pixel centred and scaled on the training images
    x_train, y_train = x[train], digits.target[train]
    x_test, y_test = tinytorch.tensor(x[test]), digits.target[test]
    print(f"  digits: {len(train)} training images, {len(test)} test images (stratified, seed 0)")
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))     # (B, 64) -> (B, 10)
    opt = optim.Adam(net.parameters(), lr=2e-3)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)   # the step size decays to 0
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    log, curve = [], {"epoch": [], "train_loss": [], "test_accuracy": []}
    for epoch in range(1, args.epochs + 1):
        start, losses = time.perf_counter(), []
        for batch in np.array_split(rng.permutation(len(train)), len(train) // args.batch_size):
            loss = loss_fn(net(tinytorch.tensor(x_train[batch])), tinytorch.tensor(y_train[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        schedule.step()
        with tinytorch.no_grad():
            test_accuracy = accuracy(net(x_test), y_test)
        curve["epoch"].append(epoch)
        curve["train_loss"].append(float(np.mean(losses)))
        curve["test_accuracy"].append(test_accuracy)
        log.append(f"epoch {epoch:2d}: train loss {np.mean(losses):.4f} | test accuracy {test_accuracy:.2%} | "
                   f"{time.perf_counter() - start:.2f} s")
        print("  " + log[-1], flush=True)
    return test_accuracy, curve, log


def main(args) -> dict:
    print("XOR, by backpropagation:")
    xor = learn_xor(args.seed)
    print(f"  XOR accuracy {xor:.0%}")
    print("Handwritten digits, the same recipe with more units:")
    digits, curve, log = learn_digits(args)
    passed = xor == 1.0 and digits >= DIGITS_THRESHOLD
    return {"passed": passed, "value": digits,
            "summary": f"XOR {xor:.0%}, digits {digits:.2%} test accuracy (needs XOR 100%, digits >= 95%)",
            "details": {"xor_accuracy": xor, "digits_test_accuracy": digits, "curve": curve, "log": log}}


if __name__ == "__main__":
    args = parse_args(MILESTONE, __doc__, options=[
        (("--data",), {"default": "data", "help": "folder for digits.csv.gz (default data; "
                                                  "TINYTORCH_DIGITS_URL names a mirror)"}),
        (("--epochs",), {"type": int, "default": 30}),
        (("--batch-size",), {"type": int, "default": 32}),
    ])
    sys.exit(run(MILESTONE, main, args))
