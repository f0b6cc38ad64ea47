"""Train a CNN on CIFAR-10 with tinytorch alone: the course's north star (75% test accuracy).

    python examples/cifar10_cnn.py --data data/cifar10 --epochs 10

The data comes from `tinytorch.data.download_cifar10`: the official archive by
default, or a mirror given by --url/--checksum (or the TINYTORCH_CIFAR10_URL and
TINYTORCH_CIFAR10_CHECKSUM environment variables). The run's log, training
curves and confusion matrix go to book/results/cifar10.md (--book-page).
"""

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's tinytorch, even when it is not installed

import tinytorch  # noqa: E402
from tinytorch import Tensor, nn, no_grad, optim  # noqa: E402
from tinytorch.data import (CIFAR10Dataset, Compose, ConvertImageDtype, DataLoader, Normalize,  # noqa: E402
                            DatasetError, RandomCrop, RandomHorizontalFlip, download_cifar10)

# Per-channel statistics of the CIFAR-10 training images (the usual published values).
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

# The architecture, as data: three conv stages (conv 3x3 pad 1, BatchNorm, ReLU, maxpool 2).
CHANNELS = (32, 64, 128)


def build_model(channels=CHANNELS, num_classes: int = 10) -> nn.Module:
    layers, c_in = [], 3
    for c_out in channels:
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c_out
    side = 32 // 2 ** len(channels)
    # (N, C, side, side) -> (N, C*side*side) -> (N, classes)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * side * side, num_classes))


def one_cycle_lr(step: int, total: int, peak: float, warmup: float = 0.25) -> float:
    """Linear warm-up to `peak` over the first `warmup` of training, then cosine down to ~0."""
    rise = max(1, int(total * warmup))
    if step < rise:
        return peak * (0.1 + 0.9 * step / rise)
    progress = (step - rise) / max(1, total - rise)
    return peak * 0.5 * (1 + np.cos(np.pi * progress))


def evaluate(model, loader, num_classes: int = 10):
    """Loss, accuracy and confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss, confusion = 0.0, np.zeros((num_classes, num_classes), dtype=np.int64)
    with no_grad():
        for images, labels in loader:
            logits = model(images)
            total_loss += loss_fn(logits, labels).item()
            np.add.at(confusion, (labels.data, logits.data.argmax(axis=1)), 1)
    n = confusion.sum()
    return total_loss / n, np.trace(confusion) / n, confusion


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/cifar10", help="folder for the CIFAR-10 download (default data/cifar10)")
    p.add_argument("--url", default=None, help="archive URL (a mirror; default: the official one or $TINYTORCH_CIFAR10_URL)")
    p.add_argument("--checksum", default=None, help="the mirror's checksum, e.g. sha256:<hex>")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (quick checks)")
    p.add_argument("--book-page", default=None,
                   help="write the results page here (e.g. book/results/cifar10.md) with its plots beside it")
    return p.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    command = "python examples/cifar10_cnn.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    tinytorch.manual_seed(args.seed)
    download_cifar10(args.data, url=args.url, checksum=args.checksum)

    train_tf = Compose([ConvertImageDtype(), Normalize(MEAN, STD), RandomCrop(32, padding=4), RandomHorizontalFlip()])
    test_tf = Compose([ConvertImageDtype(), Normalize(MEAN, STD)])
    train_set = CIFAR10Dataset(args.data, train=True, transform=train_tf)
    test_set = CIFAR10Dataset(args.data, train=False, transform=test_tf)
    if args.limit:
        train_set.data, train_set.targets = train_set.data[:args.limit], train_set.targets[:args.limit]
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True, seed=args.seed)
    test_loader = DataLoader(test_set, batch_size=500)

    model = build_model()
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    params = sum(p.numel() for p in model.parameters())
    log = [f"model: {params:,} parameters; {len(train_set):,} training images, batch {args.batch_size}, "
           f"{args.epochs} epochs, SGD (Nesterov 0.9, weight decay {args.weight_decay}), one-cycle peak lr {args.lr}"]
    print(log[0], flush=True)

    total_steps, step, start = args.epochs * len(train_loader), 0, time.perf_counter()
    history = {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": [], "seconds": []}
    for epoch in range(1, args.epochs + 1):
        model.train()
        seen = correct = 0
        running = 0.0
        epoch_start = time.perf_counter()
        for images, labels in train_loader:
            for group in optimizer.param_groups:
                group["lr"] = one_cycle_lr(step, total_steps, args.lr)
            logits = model(images)
            loss = loss_fn(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            seen += len(labels)
            running += loss.item() * len(labels)
            correct += int((logits.data.argmax(axis=1) == labels.data).sum())
            if step % 100 == 0:
                rate = seen / (time.perf_counter() - epoch_start)
                print(f"  epoch {epoch} step {step}/{total_steps} loss {running / seen:.3f} "
                      f"acc {correct / seen:.3f} {rate:.0f} img/s", flush=True)
        test_loss, test_acc, confusion = evaluate(model, test_loader)
        elapsed = time.perf_counter() - start
        for key, value in zip(history, (running / seen, correct / seen, test_loss, test_acc, elapsed)):
            history[key].append(value)
        line = (f"epoch {epoch:2d}: train loss {running / seen:.3f} acc {correct / seen:.3f} | "
                f"test loss {test_loss:.3f} acc {test_acc:.4f} | {time.perf_counter() - epoch_start:.0f} s "
                f"(total {elapsed / 60:.1f} min)")
        print(line, flush=True)
        log.append(line)
    if args.book_page:
        write_book_page(Path(args.book_page), command, log, history, confusion, test_set.classes)
    return history["test_acc"][-1]


def write_book_page(page: Path, command: str, log: list, history: dict, confusion, classes) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page.parent.mkdir(parents=True, exist_ok=True)
    epochs = range(1, len(history["test_acc"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(epochs, history["train_loss"], "o-", label="train")
    ax1.plot(epochs, history["test_loss"], "o-", label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(epochs, history["train_acc"], "o-", label="train (augmented)")
    ax2.plot(epochs, history["test_acc"], "o-", label="test")
    ax2.axhline(0.75, color="gray", ls="--", lw=1, label="75% target")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(page.with_name("cifar10_curves.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(10), classes, rotation=45, ha="right")
    ax.set_yticks(range(10), classes)
    for i in range(10):
        for j in range(10):
            ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="test-set confusion matrix")
    fig.tight_layout()
    fig.savefig(page.with_name("cifar10_confusion.png"), dpi=110)
    plt.close(fig)

    per_class = confusion.diagonal() / confusion.sum(axis=1)
    rows = "\n".join(f"| {c} | {a:.1%} |" for c, a in zip(classes, per_class))
    minutes = history["seconds"][-1] / 60
    page.write_text(f"""# CIFAR-10: the north star

A CNN built and trained with nothing but tinytorch reaches
**{history['test_acc'][-1]:.2%} test accuracy** on CIFAR-10 after {len(history['test_acc'])} epochs,
in **{minutes:.1f} minutes** of wall time on a machine with {os.cpu_count()} cores
({platform.processor() or platform.machine()}, NumPy {np.__version__}).

Reproduce it with:

```bash
{command}
```

The architecture: three stages of `Conv2d(3x3, padding=1)`, `BatchNorm2d`, `ReLU`,
`MaxPool2d(2)` with {', '.join(map(str, CHANNELS))} channels, then `Flatten` and one
`Linear` layer; random crops (padding 4) and horizontal flips; SGD with Nesterov
momentum and a one-cycle learning-rate schedule.

![training curves](cifar10_curves.png)

![confusion matrix](cifar10_confusion.png)

| class | test accuracy |
| --- | --- |
{rows}

## Log

```text
{chr(10).join(log)}
```
""", encoding="utf-8")
    print(f"wrote {page}")


if __name__ == "__main__":
    try:
        main()
    except (DatasetError, ValueError) as err:  # no data, a bad mirror or checksum, a damaged archive: one line
        sys.exit(f"error: {err}")
