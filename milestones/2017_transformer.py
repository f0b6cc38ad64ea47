"""2017: attention is all you need. A small Transformer learns to sort sequences of digits.

    python milestones/2017_transformer.py

Vaswani et al.'s "Attention Is All You Need" (2017) dropped recurrence: every
position of a sequence looks at every other through attention, and which one it
looks at is learned. Sorting is a clean test of that: output position i must
find the i-th smallest digit, wherever it sits in the input, so each position
has to compare itself with all the others at once; no fixed window or
recurrence gives it that.

The model is built from your chapters: token and position `nn.Embedding`s,
two pre-norm blocks of `nn.MultiheadAttention` (07) and an MLP with
`nn.LayerNorm` (08), a `nn.Linear` head, trained with cross-entropy (05),
backpropagation (09) and Adam (10). It trains on 20,000 random sequences of
8 digits and is tested on 1,000 sequences it never saw: a sequence counts
only when all 8 outputs are right (exact match). The capstone (chapter 17)
takes the same blocks, adds a causal mask, and trains a GPT on Shakespeare.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's tinytorch, even when not installed

import tinytorch  # noqa: E402
from tinytorch import nn, optim  # noqa: E402

from _milestone import parse_args, run  # noqa: E402

MILESTONE = {
    "year": 2017,
    "title": "The Transformer",
    "recreates": "a small Transformer sorts digit sequences it never saw; then on to the capstone's GPT",
    "needs": ["02_tensor", "03_activations", "04_layers", "05_networks", "07_attention", "08_normalization",
              "09_autograd", "10_optimizers"],
    "passes_when": ">= 99% exact match on held-out sequences",
    "budget": "<= 3 min",
}
THRESHOLD = 0.99
LENGTH, VOCAB = 8, 10


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(ln1(x)), then + mlp(ln2(x)); (B, T, d) -> (B, T, d)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.ReLU(), nn.Linear(4 * d, d))

    def forward(self, x):
        h = self.ln1(x)
        attended, _ = self.attn(h, h, h, need_weights=False)   # every position may look at every other
        x = x + attended
        return x + self.mlp(self.ln2(x))


class Sorter(nn.Module):
    """Token ids (B, T) -> scores (B, T, VOCAB) for the sorted sequence."""

    def __init__(self, d: int = 64, heads: int = 4, layers: int = 2):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, d)
        self.positions = nn.Embedding(LENGTH, d)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(np.arange(ids.shape[1]))   # (B, T, d) + (T, d)
        return self.head(self.ln(self.blocks(x)))                        # (B, T, VOCAB)


def make_data(rng, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Random digit sequences (N, LENGTH); no test sequence appears in the training set."""
    seqs = rng.integers(0, VOCAB, size=(n_train + 2 * n_test, LENGTH))
    _, first = np.unique(seqs, axis=0, return_index=True)
    seqs = seqs[np.sort(first)]                                  # each sequence once
    return seqs[:n_train], seqs[n_train:n_train + n_test]


def exact_match(model, seqs: np.ndarray) -> float:
    with tinytorch.no_grad():
        scores = model(tinytorch.tensor(seqs))                   # (N, T, VOCAB)
    return float(np.mean(np.all(scores.data.argmax(axis=-1) == np.sort(seqs, axis=1), axis=1)))


def main(args) -> dict:
    rng = np.random.default_rng(args.seed)
    tinytorch.manual_seed(args.seed)
    train, test = make_data(rng, args.train_size, 1000)
    model = Sorter()
    params = sum(p.numel() for p in model.parameters())
    print(f"{len(train):,} training sequences, {len(test):,} held-out ones, length {LENGTH}; "
          f"a {params:,}-parameter Transformer (2 blocks, 4 heads, width 64)")
    opt = optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    curve, log, start = {"step": [], "loss": [], "exact_match": []}, [], time.perf_counter()
    losses = []
    for step in range(1, args.steps + 1):
        batch = train[rng.integers(0, len(train), size=args.batch_size)]
        scores = model(tinytorch.tensor(batch))                                       # (B, T, VOCAB)
        loss = loss_fn(scores.reshape(-1, VOCAB), tinytorch.tensor(np.sort(batch, axis=1).reshape(-1)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == args.steps:
            match = exact_match(model, test)
            curve["step"].append(step)
            curve["loss"].append(float(np.mean(losses)))
            curve["exact_match"].append(match)
            log.append(f"step {step:4d}: loss {np.mean(losses):.4f} | held-out exact match {match:.1%} | "
                       f"{time.perf_counter() - start:.0f} s")
            print(log[-1], flush=True)
            losses = []
            if match >= args.stop_at:
                print(f"held-out exact match {match:.1%} >= {args.stop_at:.1%}: stopping early")
                break
    final = curve["exact_match"][-1]
    example = test[:1]
    with tinytorch.no_grad():
        answer = model(tinytorch.tensor(example)).data.argmax(axis=-1)[0]
    print(f"example: {example[0].tolist()} -> {answer.tolist()}")
    return {"passed": final >= THRESHOLD, "value": final,
            "summary": f"{final:.1%} exact match on {len(test):,} held-out sequences (needs >= 99%) "
                       f"after {curve['step'][-1]} steps",
            "details": {"exact_match": final, "steps": curve["step"][-1], "curve": curve, "log": log}}


if __name__ == "__main__":
    args = parse_args(MILESTONE, __doc__, options=[
        (("--steps",), {"type": int, "default": 1000, "help": "training steps at most"}),
        (("--batch-size",), {"type": int, "default": 64}),
        (("--lr",), {"type": float, "default": 2e-3}),
        (("--train-size",), {"type": int, "default": 20000}),
        (("--stop-at",), {"type": float, "default": 0.995, "help": "stop once held-out exact match reaches this"}),
    ])
    sys.exit(run(MILESTONE, main, args))
