"""Train a CNN on CIFAR-10 with tinytorch alone: the course's north star (75% test accuracy).

    python examples/cifar10_cnn.py --data data/cifar10 --epochs 10

The data comes from `tinytorch.data.download_cifar10`: the official archive by
default, or a mirror given by --url/--checksum (or the TINYTORCH_CIFAR10_URL and
TINYTORCH_CIFAR10_CHECKSUM environment variables). The run's log, training
curves and confusion matrix go to book/results/cifar10.md (--book-page).
"""

import argparse
import datetime
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's tinytorch, even when it is not installed

import tinytorch  # noqa: E402
from tinytorch import nn, optim  # noqa: E402
from tinytorch.models import reuse_freed_memory  # noqa: E402
from tinytorch.optim.lr_scheduler import LRScheduler  # noqa: E402
from tinytorch.training import Trainer, evaluate_model, plot_confusion_matrix, plot_training_history  # noqa: E402
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


class WarmupCosineLR(LRScheduler):
    """Linear warm-up over the first epochs, then cosine decay towards zero (a one-cycle shape, per epoch)."""

    def __init__(self, optimizer, warmup_epochs: int, total_epochs: int, last_epoch: int = -1):
        self.warmup_epochs, self.total_epochs = warmup_epochs, total_epochs
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        e = self.last_epoch
        if e < self.warmup_epochs:
            scale = (e + 1) / (self.warmup_epochs + 1)
        else:
            progress = (e - self.warmup_epochs) / max(1, self.total_epochs - self.warmup_epochs)
            scale = 0.5 * (1 + np.cos(np.pi * progress))
        return [base * scale for base in self.base_lrs]


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
    p.add_argument("--replot", default=None, metavar="PAGE",
                   help="only redraw the training curves beside a results page from the log it holds (no training)")
    return p.parse_args(argv)


LOG_LINE = re.compile(r"epoch\s+(?P<epoch>\d+): train loss (?P<tl>[\d.]+) acc (?P<ta>[\d.]+) \| "
                      r"test loss (?P<vl>[\d.]+) acc (?P<va>[\d.]+) \| lr (?P<lr>[\d.]+)")


def history_from_page(page: Path) -> dict:
    """The per-epoch numbers of a results page's log, as the Trainer's history holds them."""
    rows = [m.groupdict() for m in LOG_LINE.finditer(page.read_text(encoding="utf-8"))]
    if not rows:
        raise ValueError(f"{page} holds no epoch log to plot; write it with --book-page first")
    columns = {"epoch": "epoch", "train_loss": "tl", "train_accuracy": "ta", "val_loss": "vl", "val_accuracy": "va", "lr": "lr"}
    return {key: [int(r[c]) if key == "epoch" else float(r[c]) for r in rows] for key, c in columns.items()}


def plot_curves(history, path: Path) -> None:
    """The Trainer's curves, with its "val" split named for what it is here: the test set."""
    import matplotlib
    matplotlib.use("Agg")  # files only: this may run on a machine without a display

    fig = plot_training_history(history)
    for ax in fig.axes:
        for line in ax.get_lines():
            line.set_label(re.sub(r"\bval\b", "test", line.get_label()))
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)


def main(argv=None) -> float:
    args = parse_args(argv)
    if args.replot:
        page = Path(args.replot)
        plot_curves(history_from_page(page), page.with_name("cifar10_curves.png"))
        print(f"redrew {page.with_name('cifar10_curves.png')} from the log in {page}")
        return float("nan")
    command = "python examples/cifar10_cnn.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    tinytorch.manual_seed(args.seed)
    reuse_freed_memory()  # every step frees and reallocates the same arrays: keep them instead of page-faulting
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
    scheduler = WarmupCosineLR(optimizer, warmup_epochs=max(1, args.epochs // 5), total_epochs=args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters; {len(train_set):,} training images, batch {args.batch_size}, "
          f"{args.epochs} epochs, SGD (Nesterov 0.9, weight decay {args.weight_decay}), peak lr {args.lr}", flush=True)

    # The test set is the validation loader only to report accuracy per epoch: nothing is selected on it.
    trainer = Trainer(model, optimizer, loss_fn, scheduler=scheduler, seed=args.seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    history = trainer.fit(train_loader, test_loader, epochs=args.epochs)
    minutes = (time.perf_counter() - start) / 60
    result = evaluate_model(model, test_loader, loss_fn)
    log = [f"epoch {e:2d}: train loss {tl:.3f} acc {ta:.3f} | test loss {vl:.3f} acc {va:.4f} | lr {lr:.4f} | "
           f"{t['total']:.0f} s ({t['samples_per_s']:.0f} img/s; forward {t['forward']:.0f} s, "
           f"backward {t['backward']:.0f} s, optimizer {t['optimizer']:.0f} s, data {t['data']:.0f} s)"
           for e, tl, ta, vl, va, lr, t in zip(history["epoch"], history["train_loss"], history["train_accuracy"],
                                               history["val_loss"], history["val_accuracy"], history["lr"],
                                               trainer.timings)]
    log.append(f"test accuracy {result['accuracy']:.4f} after {minutes:.1f} min")
    print(log[-1], flush=True)
    elapsed = np.cumsum([t["total"] for t in trainer.timings]) / 60            # minutes at the end of each epoch
    passed = [i for i, acc in enumerate(history["val_accuracy"]) if acc >= 0.75]
    target = (passed[0] + 1, float(elapsed[passed[0]])) if passed else None   # (epoch, minutes) of the first 75 %
    print("75% test accuracy " + (f"first passed after epoch {target[0]}, {target[1]:.1f} min in" if target
                                 else "not reached"), flush=True)
    load = (load_before, os.getloadavg() if load_before is not None else None)
    if args.book_page:
        write_book_page(Path(args.book_page), command, log, history, result, test_set.classes, minutes, target, load)
    return result["accuracy"]


def write_book_page(page: Path, command: str, log: list, history, result: dict, classes, minutes: float,
                    target, load) -> None:
    import matplotlib
    matplotlib.use("Agg")  # files only: this may run on a machine without a display

    page.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(history, page.with_name("cifar10_curves.png"))
    plot_confusion_matrix(result["confusion_matrix"], class_names=classes, path=page.with_name("cifar10_confusion.png"))
    rows = "\n".join(f"| {c} | {a:.1%} |" for c, a in zip(classes, result["per_class_accuracy"]))
    log_text = "\n".join(log)
    loads = ("; load average (1, 5, 15 min) " + " at the start, ".join(", ".join(f"{x:.2f}" for x in avg) for avg in load)
             + " at the end") if load[0] is not None else ""
    when = (f"This run first passed 75 % after epoch {target[0]}, **{target[1]:.1f} minutes** in (the sum of "
            f"the first {target[0]} epoch times in the log)" if target else "This run did not reach 75 %")
    page.write_text(f"""# CIFAR-10: the north star

A CNN built and trained with nothing but tinytorch reaches
**{result['accuracy']:.2%} test accuracy** on CIFAR-10 after {history.epochs} epochs,
in **{minutes:.1f} minutes** of wall time on a machine with {os.cpu_count()} cores
({platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__}).

Reproduce it with:

```bash
{command}
```

The architecture: three stages of `Conv2d(3x3, padding=1)`, `BatchNorm2d`, `ReLU`,
`MaxPool2d(2)` with {', '.join(map(str, CHANNELS))} channels, then `Flatten` and one
`Linear` layer ({sum(p.numel() for p in build_model().parameters()):,} parameters); random crops
(padding 4) and horizontal flips; SGD with Nesterov momentum and weight decay, a
linear warm-up over the first fifth of the epochs, then cosine decay; all run by
`tinytorch.training.Trainer`. The test set serves only to report accuracy after
each epoch: nothing is tuned or selected on it.

![training curves](cifar10_curves.png)

![confusion matrix](cifar10_confusion.png)

| class | test accuracy |
| --- | --- |
{rows}

## Log

Each epoch's time is split by the Trainer into forward, backward, optimizer and data.

```text
{log_text}
```

## Time to 75 %

{when}, and finished at {result['accuracy']:.1%} after {minutes:.1f} minutes. Measured on
{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC{loads}. The run is deterministic for a
given seed: on a busier machine the same command prints the same losses and accuracies, and
only the times grow (wall time on a shared machine says more about the neighbours than about
the code).
""", encoding="utf-8")
    print(f"wrote {page}")


if __name__ == "__main__":
    try:
        main()
    except (DatasetError, ValueError) as err:  # no data, a bad mirror or checksum, a damaged archive: one line
        sys.exit(f"error: {err}")
