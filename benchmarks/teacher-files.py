"""What a teacher file's stored model (int8 kernels) answers against the float model's stored logits.

Each teacher .npz that holds a model also holds the float model's flip-TTA PublicTest logits (`test`).
This rebuilds the model from the file, runs it on PublicTest with flip TTA and prints, per file and
for the mean of all given files (the online teacher of `fit --teacher A B C`), how far the logits
moved, how often the answer changed, and FER+ majority and FER-2013 accuracy both ways.

Usage (from the repo root): .venv/bin/python benchmarks/teacher-files.py [A.npz B.npz ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trainer import teachers
from trainer.benchmarks import DEFAULT_VOTES, ferplus_majority
from trainer.data import load_split
from trainer.evaluate import predict_logits
from trainer.ferplus import load_votes

ONLINE = [Path(f"models/teachers/{n}.npz") for n in ("reference_blend2", "reference_blend3", "reference_half")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("teachers", nargs="*", type=Path, default=ONLINE)
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--votes", default=DEFAULT_VOTES)
    args = ap.parse_args()
    test = load_split(Path(args.data), "test", Path(".cache"))
    fplus = ferplus_majority(test, load_votes(Path(args.votes)))

    def scores(logits: np.ndarray) -> str:
        pred = logits.argmax(1)
        return f"FER+ {np.mean(pred[fplus.rows] == fplus.y):.2%}, FER-2013 {np.mean(pred == test.y):.2%}"

    stored, rebuilt = [], []
    for t in args.teachers:
        with np.load(t) as f:
            stored.append(f["test"].astype(np.float32))
        rebuilt.append(predict_logits(teachers.load_model(t), test.x, flip_tta=True))
    for name, s, r in [*zip((t.stem for t in args.teachers), stored, rebuilt),
                       ("mean", np.mean(stored, 0), np.mean(rebuilt, 0))]:
        d = np.abs(r - s)
        print(f"{name}: logit change mean {d.mean():.4f}, max {d.max():.4f}; same answer on "
              f"{np.mean(r.argmax(1) == s.argmax(1)):.2%}; stored {scores(s)}; file's model {scores(r)}")


if __name__ == "__main__":
    main()
