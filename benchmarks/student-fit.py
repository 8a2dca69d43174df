"""How closely a student follows its teachers, on the images it trained on and on PublicTest.

For each run (best.keras) and the mean logits of the given teacher files (`fer-train teacher`), prints
on FER-2013 train and on PublicTest: how often their argmax agree, KL(teacher || student) of the
softmax at T = 2 (the distillation temperature), and the student's FER-2013 accuracy. All logits
flip TTA. Equal numbers on both splits mean the student underfits its teachers rather than
overfitting its training images. An analysis for docs/labels.md.

Usage (from the repo root, with the [train] extra):
  .venv/bin/python benchmarks/student-fit.py runs/student10 --teachers models/teachers/A.npz B.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from trainer.calibration import softmax
from trainer.data import load_split
from trainer.evaluate import checkpoint, predict_logits
from trainer.teachers import load_logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--teachers", nargs="+", type=Path, required=True)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--data", default="../shared/data/fer2013")
    args = ap.parse_args()
    splits = {name: load_split(Path(args.data), name, Path(".cache")) for name in ("train", "test")}
    teacher = {name: np.mean([load_logits(t, split, name) for t in args.teachers], axis=0)
               for name, split in splits.items()}
    print(f"teachers: mean of {', '.join(t.stem for t in args.teachers)}; T = {args.temperature:g}")
    for run in args.runs:
        model = keras.models.load_model(checkpoint(run), compile=False)
        for name, split in splits.items():
            s = predict_logits(model, split.x, flip_tta=True)
            p, q = softmax(teacher[name], args.temperature), softmax(s, args.temperature)
            kl = float(np.mean(np.sum(p * (np.log(p + 1e-9) - np.log(q + 1e-9)), axis=1)))
            print(f"{run} on {name}: argmax agreement {np.mean(s.argmax(1) == teacher[name].argmax(1)):.2%}, "
                  f"KL {kl:.4f}, FER-2013 accuracy {np.mean(s.argmax(1) == split.y):.2%}", flush=True)


if __name__ == "__main__":
    main()
