"""1998: LeNet. A convolutional network reads real handwritten digits.

    python milestones/1998_lenet.py

Yann LeCun, Léon Bottou, Yoshua Bengio and Patrick Haffner's "Gradient-based
learning applied to document recognition" (1998) put together what every image
model since has used: convolutions whose small kernels are shared across the
whole image (so a stroke is recognised wherever it is), pooling that makes the
answer tolerant to small shifts, and a few fully connected layers at the end,
all trained by backpropagation. LeNet-5 read the digits on bank cheques.

This is a LeNet-style network in your framework, sized for the UCI digits
(8x8 pixels, 1,797 images): two stages of `nn.Conv2d(3x3)`, `nn.BatchNorm2d`,
`nn.ReLU`, `nn.MaxPool2d(2)` (chapters 06 and 08), then a `nn.Linear`
classifier, trained with Adam (10) on 1,438 images and tested on the 359 it
never saw. The MLP of 1986 gets about 96% here; sharing weights
across positions gets the CNN to 98% and more.
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
    "year": 1998,
    "title": "LeNet",
    "recreates": "a LeNet-style CNN on real handwritten digits",
    "needs": ["02_tensor", "03_activations", "04_layers", "05_networks", "06_spatial", "08_normalization",
              "09_autograd", "10_optimizers"],
    "passes_when": ">= 98% test accuracy on the digits",
    "budget": "<= 3 min",
}
THRESHOLD = 0.98


def lenet() -> nn.Sequential:
    """(N, 1, 8, 8) digits -> (N, 10) class scores."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),    # (N, 32, 4, 4)
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),   # (N, 64, 2, 2)
        nn.Flatten(),                                                                       # (N, 256)
        nn.Linear(256, 10))


def train_lenet(args, digits, train, test, log=print) -> tuple[float, dict, list[str]]:
    """Train on `train`, report test accuracy each epoch; returns (final test accuracy, curve, log lines)."""
    tinytorch.manual_seed(args.seed)
    images = digits.images[:, None] / 16.0                         # (N, 1, 8, 8), pixels 0..1
    mean, std = images[train].mean(), images[train].std()
    images = ((images - mean) / std).astype(np.float32)
    x_test, y_test = tinytorch.tensor(images[test]), digits.target[test]
    model = lenet()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    curve, lines, start = {"epoch": [], "train_loss": [], "test_accuracy": []}, [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        for batch in np.array_split(rng.permutation(train), len(train) // args.batch_size):
            loss = loss_fn(model(tinytorch.tensor(images[batch])), tinytorch.tensor(digits.target[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        schedule.step()
        model.eval()                                  # BatchNorm uses its running statistics
        with tinytorch.no_grad():
            test_accuracy = accuracy(model(x_test), y_test)
        curve["epoch"].append(epoch)
        curve["train_loss"].append(float(np.mean(losses)))
        curve["test_accuracy"].append(test_accuracy)
        lines.append(f"epoch {epoch:2d}: train loss {np.mean(losses):.4f} | test accuracy {test_accuracy:.2%} | "
                     f"{time.perf_counter() - start:.0f} s")
        log(lines[-1])
    return test_accuracy, curve, lines


def main(args) -> dict:
    digits = load_digits(args.data)
    train, test = split_digits(digits.target, test_fraction=0.2, seed=0)
    params = sum(p.numel() for p in lenet().parameters())
    print(f"{len(train)} training images, {len(test)} test images (stratified, seed 0); "
          f"a {params:,}-parameter LeNet-style CNN, {args.epochs} epochs", flush=True)
    final, curve, lines = train_lenet(args, digits, train, test, log=lambda s: print(s, flush=True))
    return {"passed": final >= THRESHOLD, "value": final,
            "summary": f"{final:.2%} test accuracy on {len(test)} digits (needs >= 98%)",
            "details": {"test_accuracy": final, "curve": curve, "log": lines}}


if __name__ == "__main__":
    args = parse_args(MILESTONE, __doc__, options=[
        (("--data",), {"default": "data", "help": "folder for digits.csv.gz (default data; "
                                                  "TINYTORCH_DIGITS_URL names a mirror)"}),
        (("--epochs",), {"type": int, "default": 20}),
        (("--batch-size",), {"type": int, "default": 64}),
        (("--lr",), {"type": float, "default": 3e-3}),
    ])
    sys.exit(run(MILESTONE, main, args))
