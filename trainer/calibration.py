"""Confidence that means what it says: a softmax temperature fitted to the FER+ votes, and the
expected calibration error (ECE) that says how far a model's confidence is from its accuracy, or from
the share of people who agree with it."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature T minimising the cross-entropy of softmax(logits / T) against `targets`
    (per-image distributions, e.g. the share of people's votes), searched on a log grid 0.25..8."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 400))
    losses = [-(targets * np.log(softmax(logits, t) + 1e-12)).sum(axis=1).mean() for t in grid]
    return float(grid[int(np.argmin(losses))])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their share of images."""
    return _binned_gap(probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float), bins)


def vote_calibration_error(probs: np.ndarray, shares: np.ndarray, bins: int = 15) -> float:
    """The same gap with people's votes as the outcome: mean |share of voters who chose the predicted
    class - confidence|, binned. 0 means a confidence of 0.7 is, on average, 7 voters in 10 agreeing."""
    return _binned_gap(probs.max(axis=1), shares[np.arange(len(probs)), probs.argmax(axis=1)], bins)


def _binned_gap(confidence: np.ndarray, outcome: np.ndarray, bins: int) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return float(sum(abs(outcome[which == b].mean() - confidence[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))
