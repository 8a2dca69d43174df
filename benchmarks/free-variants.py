"""Variants of trained students that cost no training, against plain flip TTA, on the three test sets.

- more test-time views: centre crops (44, 42, 40 px, resized to 48) and their mirrors added to flip TTA;
- histogram-equalised inputs (global and CLAHE): FER-2013's faces are equalised, camera crops and
  DiffusionFER's are not;
- with several runs fine-tuned from one another: the mean of their weights (a "model soup").

Float Keras models (`best.keras`), accuracy and mean per-class recall of the argmax. An analysis for
docs/labels.md: PublicTest picks, DiffusionFER is only reported.

Usage (from the repo root, with the [train] extra):
  .venv/bin/python benchmarks/free-variants.py runs/student7 [runs/student5 runs/student6 ...]
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import keras
import numpy as np

from trainer.benchmarks import Benchmark, all_benchmarks
from trainer.data import load_split
from trainer.evaluate import checkpoint, predict_logits
from trainer.metrics import classification_report

View = Callable[[np.ndarray], np.ndarray]


def centre_crop(size: int) -> View:
    o = (48 - size) // 2
    return lambda x: np.stack([cv2.resize(i[o:o + size, o:o + size], (48, 48)) for i in x])


def per_image(f: Callable[[np.ndarray], np.ndarray]) -> View:
    return lambda x: np.stack([f(i) for i in x])


CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
VARIANTS: dict[str, list[View]] = {
    "flip TTA (shipped)": [lambda x: x],
    "flip + crop 44": [lambda x: x, centre_crop(44)],
    "flip + crop 42": [lambda x: x, centre_crop(42)],
    "flip + crop 40": [lambda x: x, centre_crop(40)],
    "flip + crops 44, 40": [lambda x: x, centre_crop(44), centre_crop(40)],
    "equalizeHist, flip": [per_image(cv2.equalizeHist)],
    "CLAHE, flip": [per_image(CLAHE.apply)],
}


def score(model: keras.Model, bench: Benchmark, views: list[View]) -> str:
    """Accuracy and mean recall of the mean flip-TTA logits of the views."""
    logits = np.mean([predict_logits(model, view(bench.x), flip_tta=True) for view in views], axis=0)
    report = classification_report(bench.y, logits.argmax(1))
    recall = np.mean([c["recall"] for c in report["per_class"].values()])
    return f"{bench.name} {report['accuracy']:.2%} ({recall:.3f})"


def main() -> None:
    runs = sys.argv[1:] or ["runs/student7"]
    benches = all_benchmarks(load_split(Path("../shared/data/fer2013"), "test", Path(".cache")))
    models = [keras.models.load_model(checkpoint(Path(r)), compile=False) for r in runs]
    print("variant: test set accuracy (mean per-class recall), ...")
    for name, views in VARIANTS.items():
        print(f"{runs[0]}, {name}:", ", ".join(score(models[0], b, views) for b in benches), flush=True)
    soup = keras.models.clone_model(models[0])
    for k in range(2, len(runs) + 1):
        for combo in itertools.combinations(range(len(runs)), k):
            soup.set_weights([np.mean(w, axis=0) for w in zip(*(models[i].get_weights() for i in combo))])
            names = " + ".join(runs[i] for i in combo)
            print(f"mean weights of {names}, flip TTA:", ", ".join(score(soup, b, VARIANTS["flip TTA (shipped)"]) for b in benches), flush=True)


if __name__ == "__main__":
    main()
