"""2018: MLPerf. Benchmark your framework: time to accuracy, and the course's workloads.

    python milestones/2018_mlperf.py

MLPerf (2018; now run by MLCommons) changed how training systems are compared:
not images per second, which a system can buy by giving up accuracy, but time
to accuracy, the wall time to train a fixed model to a fixed quality target.
Its rules also fix the data, the model and the target, and report the machine.

This is the same idea at the course's scale, on your package: the wall time for
the 1998 LeNet-style CNN to reach 97% test accuracy on the digits and for the
1986 MLP to reach 95%, then the time of one training step (forward, backward,
SGD) of the course's two reference workloads from chapter 15: the CIFAR-10 CNN
(batch 32) and a Transformer block (batch 8, 64 tokens, width 128). Each is
set beside the same measurement on the complete course package, recorded in
`milestones/2018_reference.json` (`python milestones/2018_mlperf.py
--write-reference` on the complete package writes it). A slower framework is
reported, never failed: the milestone fails only if a quality target is not
reached within its epoch limit. Timings are noisy on a shared machine.
"""

import importlib
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's tinytorch, even when not installed

import tinytorch  # noqa: E402
from tinytorch import nn, optim  # noqa: E402
from tinytorch.data import load_digits, split_digits  # noqa: E402
from tinytorch.profiling import AttentionBlock, benchmark, reference_cnn  # noqa: E402

from _milestone import accuracy, parse_args, run  # noqa: E402

MILESTONE = {
    "year": 2018,
    "title": "MLPerf",
    "recreates": "an MLPerf-style benchmark of your framework: time to accuracy and the course's workloads",
    "needs": ["02_tensor", "03_activations", "04_layers", "05_networks", "06_spatial", "07_attention",
              "08_normalization", "09_autograd", "10_optimizers", "15_benchmarking"],
    "passes_when": "the quality targets are reached (speed is reported, never failed)",
    "budget": "<= 3 min",
}
REFERENCE = Path(__file__).resolve().parent / "2018_reference.json"
TARGETS = {"digits CNN": 0.97, "digits MLP": 0.95}


def time_to_accuracy(model, x, y, train, test, target: float, max_epochs: int, lr: float, seed: int) -> dict:
    """Train with Adam (batch 64) until test accuracy reaches `target`; the wall time and epochs it took."""
    opt = optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    x_test = tinytorch.tensor(x[test])
    start = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        model.train()
        for batch in np.array_split(rng.permutation(train), len(train) // 64):
            loss = loss_fn(model(tinytorch.tensor(x[batch])), tinytorch.tensor(y[batch]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with tinytorch.no_grad():
            reached = accuracy(model(x_test), y[test])
        if reached >= target:
            break
    return {"seconds": time.perf_counter() - start, "epochs": epoch, "accuracy": reached, "reached": reached >= target}


def step_time(model, inputs, targets, loss_fn) -> float:
    """Median seconds of one training step (forward, loss, backward, SGD update)."""
    opt = optim.SGD(model.parameters(), lr=1e-3)

    def step():
        loss = loss_fn(model(inputs), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return benchmark(step, warmup=1, repeats=5).median


def measure(args) -> dict:
    digits = load_digits(args.data)
    train, test = split_digits(digits.target, test_fraction=0.2, seed=0)
    lenet = importlib.import_module("1998_lenet").lenet          # the 1998 milestone's network
    images = digits.images[:, None] / 16.0
    images = ((images - images[train].mean()) / images[train].std()).astype(np.float32)
    pixels = ((digits.data - digits.data[train].mean(axis=0)) / (digits.data[train].std(axis=0) + 1.6)).astype(np.float32)
    results = {}
    tinytorch.manual_seed(args.seed)
    results["digits CNN"] = time_to_accuracy(lenet(), images, digits.target, train, test, TARGETS["digits CNN"],
                                             max_epochs=15, lr=3e-3, seed=args.seed)
    tinytorch.manual_seed(args.seed)
    mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    results["digits MLP"] = time_to_accuracy(mlp, pixels, digits.target, train, test, TARGETS["digits MLP"],
                                             max_epochs=40, lr=2e-3, seed=args.seed)
    for name in TARGETS:
        r = results[name]
        print(f"{name}: {r['accuracy']:.2%} after {r['epochs']} epochs, {r['seconds']:.1f} s "
              f"({'target ' + format(TARGETS[name], '.0%') + ' reached' if r['reached'] else 'target NOT reached'})",
              flush=True)
    tinytorch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    images32 = tinytorch.tensor(rng.standard_normal((32, 3, 32, 32)).astype(np.float32))
    labels32 = tinytorch.tensor(rng.integers(0, 10, size=32))
    results["CIFAR-10 CNN step"] = {"seconds": step_time(reference_cnn(), images32, labels32, nn.CrossEntropyLoss())}
    tokens = tinytorch.tensor(rng.standard_normal((8, 64, 128)).astype(np.float32))
    results["Transformer block step"] = {"seconds": step_time(AttentionBlock(), tokens, tokens, nn.MSELoss())}
    for name in ("CIFAR-10 CNN step", "Transformer block step"):
        print(f"{name}: {results[name]['seconds'] * 1000:.0f} ms per training step (median of 5)", flush=True)
    return results


def main(args) -> dict:
    results = measure(args)
    if args.write_reference:
        record = {"date": datetime.now().astimezone().isoformat(timespec="seconds"),
                  "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
                             f"NumPy {np.__version__}",
                  "command": "python milestones/2018_mlperf.py --write-reference",
                  "results": {name: round(r["seconds"], 4) for name, r in results.items()}}
        REFERENCE.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"wrote the reference numbers to {REFERENCE.name}")
    reference = json.loads(REFERENCE.read_text(encoding="utf-8")) if REFERENCE.is_file() else None
    rows = []
    for name, r in results.items():
        ref = (reference or {}).get("results", {}).get(name)
        ratio = r["seconds"] / ref if ref else None
        rows.append({"workload": name, "seconds": r["seconds"], "reference_seconds": ref, "ratio": ratio})
        compare = f"{ratio:.2f}x the complete package's {ref:.2f} s" if ratio else "no reference recorded"
        print(f"  {name:<24} {r['seconds']:8.2f} s   {compare}")
    if reference:
        print(f"reference: {reference['machine']}, {reference['date'][:10]} ({reference['command']})")
    missed = [name for name in TARGETS if not results[name]["reached"]]
    ratios = [row["ratio"] for row in rows if row["ratio"]]
    speed = f"; {np.exp(np.mean(np.log(ratios))):.2f}x the complete package's time (geometric mean)" if ratios else ""
    summary = ("quality targets reached" if not missed else f"quality target not reached: {', '.join(missed)}") + speed
    return {"passed": not missed, "value": float(np.exp(np.mean(np.log(ratios)))) if ratios else None,
            "summary": summary, "details": {"results": results, "rows": rows, "reference": reference}}


if __name__ == "__main__":
    args = parse_args(MILESTONE, __doc__, options=[
        (("--data",), {"default": "data", "help": "folder for digits.csv.gz (default data; "
                                                  "TINYTORCH_DIGITS_URL names a mirror)"}),
        (("--write-reference",), {"action": "store_true",
                                  "help": f"record these numbers as the reference ({REFERENCE.name}); "
                                          "run it on the complete package"}),
    ])
    sys.exit(run(MILESTONE, main, args))
