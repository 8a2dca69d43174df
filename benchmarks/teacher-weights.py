"""The PublicTest scores of weighted means of committed teachers' logits: the frontier a student can learn from.

Each teacher .npz of `fer-train teacher` holds its flip-TTA PublicTest logits (`test`); this averages
them with every combination of the given weights and prints FER+ majority accuracy, FER+ mean per-class
recall and FER-2013 accuracy of the argmax, one line per combination.

Usage (from the repo root): .venv/bin/python benchmarks/teacher-weights.py A.npz B.npz ... [--weights 0 0.25 0.5 0.75 1]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from trainer.benchmarks import DEFAULT_VOTES, ferplus_majority
from trainer.data import load_split
from trainer.ferplus import load_votes
from trainer.metrics import confusion


def mean_recall(pred: np.ndarray, y: np.ndarray) -> float:
    cm = confusion(y, pred)
    return float(np.mean(np.diag(cm) / cm.sum(axis=1)))  # FER+'s majority has faces of every class


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teachers", nargs="+", type=Path)
    ap.add_argument("--weights", nargs="+", type=float, default=[0, 0.25, 0.5, 0.75, 1])
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--votes", default=DEFAULT_VOTES)
    args = ap.parse_args()
    test = load_split(Path(args.data), "test", Path(".cache"))
    fplus = ferplus_majority(test, load_votes(Path(args.votes)))
    logits = []
    for t in args.teachers:
        with np.load(t) as f:
            if str(f["test_checksum"]) != test.checksum:
                raise SystemExit(f"{t} was made from other PublicTest images")
            logits.append(f["test"].astype(np.float32))
    print("weights (" + ", ".join(t.stem for t in args.teachers) + "): FER+ majority, FER+ mean recall, FER-2013")
    for w in itertools.product(args.weights, repeat=len(logits)):
        if sum(w) == 0:
            continue
        pred = np.average(logits, axis=0, weights=w).argmax(1)
        print(f"{', '.join(f'{x:g}' for x in w)}: {np.mean(pred[fplus.rows] == fplus.y):.2%}, "
              f"{mean_recall(pred[fplus.rows], fplus.y):.3f}, {np.mean(pred == test.y):.2%}")


if __name__ == "__main__":
    main()
