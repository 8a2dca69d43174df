"""Two int8 models mixed, `a x A + (1 - a) x B` of their probabilities, on the three test sets.

An analysis of existing models (no training): how far a teacher made of a FER-2013-label model and a
FER+-leaning one could reach on PublicTest's FER-2013 labels and FER+ majority, and DiffusionFER.

Usage (from the repo root, with the [train] extra):
  .venv/bin/python benchmarks/label-frontier.py [A.tflite B.tflite]
"""

from __future__ import annotations

import sys
from pathlib import Path

from edge.classifier import Classifier
from trainer.benchmarks import all_benchmarks
from trainer.data import load_split
from trainer.evaluate import softmax
from trainer.metrics import classification_report

WEIGHTS = (1.0, 0.75, 0.6, 0.5, 0.4, 0.25, 0.0)


def main() -> None:
    a_path, b_path = sys.argv[1:3] if len(sys.argv) == 3 else ("models/fer_int8.tflite", "runs/blend06_kd/fer_int8.tflite")
    test = load_split(Path("../shared/data/fer2013"), "test", Path(".cache"))
    benches = all_benchmarks(test)
    models = [Classifier(Path(p), num_threads=2) for p in (a_path, b_path)]
    probs = {b.name: [softmax(m.logits(b.x)) for m in models] for b in benches}
    print(f"A = {a_path}, B = {b_path}")
    for a in WEIGHTS:
        cells = []
        for b in benches:
            pa, pb = probs[b.name]
            report = classification_report(b.y, (a * pa + (1 - a) * pb).argmax(1))
            cell = f"{b.name} {report['accuracy']:.2%}"
            if b.name == "fer2013":
                recall = {c: report["per_class"][c]["recall"] for c in ("disgust", "fear")}
                cell += f" (disgust {recall['disgust']:.2f}, fear {recall['fear']:.2f})"
            cells.append(cell)
        print(f"a = {a}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
