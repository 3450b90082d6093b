"""Train a small CNN on scikit-learn's bundled 8x8 digits with convkit alone (CPU).

    pip install ".[test]"        # or: pip install . scikit-learn
    python examples/train_digits.py [--epochs 15] [--batch 32] [--lr 0.05] [--seed 0]

Network: two conv-BN-ReLU-maxpool blocks (1 -> 16 -> 32 channels, 8x8 -> 4x4 -> 2x2), then a
linear layer to the 10 classes; SGD with momentum and weight decay; cross-entropy loss.
1,797 images, 80/20 train/test split. Prints loss and accuracy per epoch with a progress
bar (on a terminal), and the final test accuracy (>= 97% expected in well under 2 minutes).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from convkit import nn


def digits_net(rng) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=rng), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=rng), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10, rng=rng))


def load_digits_split(rng, test_fraction=0.2):
    """(x_train, y_train, x_test, y_test): images (N, 1, 8, 8) float32 in [0, 1], labels int64."""
    from sklearn.datasets import load_digits   # the data set ships inside scikit-learn
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    order = rng.permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def accuracy(net, x, y, batch=256) -> float:
    net.eval()
    correct = sum(int((net(x[i:i + batch]).argmax(axis=1) == y[i:i + batch]).sum())
                  for i in range(0, len(x), batch))
    return correct / len(x)


def _progress(epoch, epochs, done, total, loss):
    if sys.stderr.isatty():
        bar = "#" * int(30 * done / total)
        sys.stderr.write(f"\repoch {epoch:2d}/{epochs} [{bar:30s}] {done:4d}/{total} loss {loss:.4f}")
        sys.stderr.flush()


def train(epochs=15, batch=32, lr=0.05, momentum=0.9, weight_decay=1e-4, seed=0, verbose=True):
    """Train and return (final test accuracy, seconds)."""
    rng = np.random.default_rng(seed)
    x_train, y_train, x_test, y_test = load_digits_split(rng)
    net = digits_net(rng)
    loss_fn = nn.CrossEntropyLoss()
    opt = nn.SGD(net, lr=lr, momentum=momentum, weight_decay=weight_decay)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        net.train()
        order = rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = loss_fn(net(x_train[idx]), y_train[idx])
            net.zero_grad()
            net.backward(loss_fn.backward())
            opt.step()
            total += float(loss) * len(idx)
            _progress(epoch, epochs, min(i + batch, len(order)), len(order), float(loss))
        if sys.stderr.isatty():
            sys.stderr.write("\r" + " " * 75 + "\r")
        test_acc = accuracy(net, x_test, y_test)
        if verbose:
            print(f"epoch {epoch:2d}/{epochs}  loss {total / len(order):.4f}  "
                  f"train acc {accuracy(net, x_train, y_train):.4f}  test acc {test_acc:.4f}")
    seconds = time.perf_counter() - start
    if verbose:
        print(f"test accuracy {test_acc:.4f} after {epochs} epochs in {seconds:.1f} s")
    return test_acc, seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    acc, _ = train(a.epochs, a.batch, a.lr, seed=a.seed)
    return 0 if acc >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
