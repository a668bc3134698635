"""A small CNN on scikit-learn's bundled 8x8 digits, trained in seconds on CPU (seeded).

Used by the sanity check (``captum-leg sanity``) and the tests. Inputs are ``(N, 1, 8, 8)``
pixels in ``[0, 1]`` (the digits' 0..16 scaled by 1/16): ``pixel_space="unit"``.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from captum_leg.evaluation.seeding import seeded_global_rng


class DigitsCNN(nn.Module):
    """conv(1->16) - conv(16->32) - linear(32*4*4 -> 64) - linear(64 -> 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def load_digits_tensors() -> Tuple[Tensor, Tensor]:
    """All 1797 digits as ``(N, 1, 8, 8)`` float tensors in ``[0, 1]`` and ``(N,)`` labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - environment dependent
        raise ImportError("the digits sanity check needs scikit-learn: pip install scikit-learn") from err
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    return x, torch.tensor(d.target, dtype=torch.long)


def train_digits_cnn(epochs: int = 15, seed: int = 0, n_test: int = 297) -> Tuple[DigitsCNN, float, Tensor, Tensor]:
    """Train :class:`DigitsCNN` on the first ``1797 - n_test`` digits (Adam, seeded).

    Args:
        epochs: passes over the training set (batch 64).
        seed: seed of init and shuffling.
        n_test: held-out digits at the end of the data set.

    Returns:
        ``(model in eval mode, test accuracy, test inputs, test labels)``.
    """
    x, y = load_digits_tensors()
    xtr, ytr, xte, yte = x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]
    with seeded_global_rng(seed):  # layer construction draws from the global generators
        model = DigitsCNN()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(len(xtr), generator=gen)
            for i in range(0, len(xtr), 64):
                idx = perm[i : i + 64]
                loss = nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return model, acc, xte, yte
