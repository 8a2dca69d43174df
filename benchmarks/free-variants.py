"""Variants of trained students that cost no training, against plain flip TTA, on the three test sets.

- more test-time views: centre crops (44, 42, 40 px, resized to 48) and their mirrors added to flip TTA;
- histogram-equalised inputs (global and CLAHE): FER-2013's faces are equalised, camera crops and
  DiffusionFER's are not;
- other shifts of the input's domain: blur, JPEG at quality 30, gamma, contrast, a looser crop
  (zoomed out, the border reflected or filled);
- shifts of the logits: the neutral class's logit lowered, and one bias per class fitted to
  PublicTest's FER+ vote shares (after the model's temperature): can a prior shift alone read
  DiffusionFER's expressions?
- with several runs fine-tuned from one another: the mean of their weights (a "model soup").

Float Keras models (`best.keras`), accuracy and mean per-class recall of the argmax (DiffusionFER's
recall per class too). An analysis for docs/labels.md: PublicTest picks, DiffusionFER is only reported.

Usage (from the repo root, with the [train] extra):
  .venv/bin/python benchmarks/free-variants.py runs/student7 [runs/student5 runs/student6 ...]
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import keras
import numpy as np

from trainer.benchmarks import DEFAULT_VOTES, Benchmark, all_benchmarks
from trainer.calibration import fit_temperature, softmax
from trainer.data import load_split
from trainer.evaluate import checkpoint, predict_logits
from trainer.ferplus import load_votes, vote_shares, votes_for
from trainer.labels import LABELS
from trainer.metrics import classification_report

View = Callable[[np.ndarray], np.ndarray]


def centre_crop(size: int) -> View:
    o = (48 - size) // 2
    return lambda x: np.stack([cv2.resize(i[o:o + size, o:o + size], (48, 48)) for i in x])


def per_image(f: Callable[[np.ndarray], np.ndarray]) -> View:
    return lambda x: np.stack([f(i) for i in x])


def zoom_out(scale: float, border: int) -> View:
    """A looser crop: the face shrunk to `scale` of the frame, the margin reflected or mean-filled."""
    def one(i: np.ndarray) -> np.ndarray:
        pad = round(48 * (1 / scale - 1) / 2)
        wide = cv2.copyMakeBorder(i, pad, pad, pad, pad, border, value=int(i.mean()))
        return cv2.resize(wide, (48, 48), interpolation=cv2.INTER_AREA)
    return per_image(one)


def gamma(g: float) -> View:
    table = np.clip(255 * (np.arange(256) / 255) ** g, 0, 255).astype(np.uint8)
    return per_image(lambda i: cv2.LUT(i, table))


def jpeg(quality: int) -> View:
    return per_image(lambda i: cv2.imdecode(cv2.imencode(".jpg", i, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 0))


def contrast(k: float) -> View:
    return per_image(lambda i: np.clip((i - i.mean()) * k + i.mean(), 0, 255).astype(np.uint8))


CLAHE = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
VARIANTS: dict[str, list[View]] = {
    "flip TTA (shipped)": [lambda x: x],
    "flip + crop 44": [lambda x: x, centre_crop(44)],
    "flip + crop 42": [lambda x: x, centre_crop(42)],
    "flip + crop 40": [lambda x: x, centre_crop(40)],
    "flip + crops 44, 40": [lambda x: x, centre_crop(44), centre_crop(40)],
    "equalizeHist, flip": [per_image(cv2.equalizeHist)],
    "CLAHE, flip": [per_image(CLAHE.apply)],
    "blur sigma 0.7, flip": [per_image(lambda i: cv2.GaussianBlur(i, (0, 0), 0.7))],
    "blur sigma 1.0, flip": [per_image(lambda i: cv2.GaussianBlur(i, (0, 0), 1.0))],
    "JPEG quality 30, flip": [jpeg(30)],
    "gamma 0.7, flip": [gamma(0.7)],
    "gamma 1.4, flip": [gamma(1.4)],
    "contrast x1.3, flip": [contrast(1.3)],
    "zoomed out to 0.9, reflected, flip": [zoom_out(0.9, cv2.BORDER_REFLECT)],
    "zoomed out to 0.8, reflected, flip": [zoom_out(0.8, cv2.BORDER_REFLECT)],
    "zoomed out to 0.8, mean-filled, flip": [zoom_out(0.8, cv2.BORDER_CONSTANT)],
}
NEUTRAL_SHIFTS = (0.25, 0.5, 0.75, 1.0, 1.5)


def score(model: keras.Model, bench: Benchmark, views: list[View]) -> str:
    """Accuracy and mean recall of the mean flip-TTA logits of the views."""
    return scored(bench, np.mean([predict_logits(model, view(bench.x), flip_tta=True) for view in views], axis=0))


def scored(bench: Benchmark, logits: np.ndarray) -> str:
    report = classification_report(bench.y, logits.argmax(1))
    recalls = [c["recall"] for c in report["per_class"].values()]
    per_class = f" [{' '.join(f'{r:.2f}' for r in recalls)}]" if bench.rows is None else ""
    return f"{bench.name} {report['accuracy']:.2%} ({np.mean(recalls):.3f}){per_class}"


def vote_bias(logits: np.ndarray, shares: np.ndarray, temperature: float) -> np.ndarray:
    """One logit bias per class (neutral's fixed at 0) minimising the cross-entropy of
    softmax(logits / T + bias) against the vote shares; gradient descent, the loss is convex."""
    bias = np.zeros(logits.shape[1])
    for _ in range(3000):
        bias -= 2.0 * (softmax(logits / temperature + bias) - shares).mean(axis=0)
        bias -= bias[LABELS.index("neutral")]
    return bias * temperature


def logit_shifts(model: keras.Model, benches: list[Benchmark], votes: np.ndarray) -> None:
    """Shifts of the flip-TTA logits: neutral lowered by k, and the bias fitted to PublicTest's votes."""
    logits = {b.name: predict_logits(model, b.x, flip_tta=True) for b in benches}
    shares, voted = vote_shares(votes)
    fitted, fitted_shares = logits["fer2013"][voted], shares[voted]  # all of PublicTest, in its order
    temperature = fit_temperature(fitted, fitted_shares)
    neutral = np.eye(len(LABELS))[LABELS.index("neutral")]
    shifts = {f"neutral logit -{k}": -k * neutral for k in NEUTRAL_SHIFTS}
    bias = vote_bias(fitted, fitted_shares, temperature)
    shifts.update({f"bias fitted to the FER+ votes x{a}": a * bias for a in (0.2, 0.5, 1.0)})
    for name, shift in shifts.items():
        print(f"{name}:", ", ".join(scored(b, logits[b.name] + shift) for b in benches), flush=True)
    held_out_bias(benches, logits, shares, voted, temperature)


def held_out_bias(benches: list[Benchmark], logits: dict[str, np.ndarray], shares: np.ndarray,
                  voted: np.ndarray, temperature: float) -> None:
    """The vote-fitted bias, fitted on one random half of PublicTest and scored on the other, both ways."""
    halves = np.array_split(np.random.default_rng(0).permutation(len(shares)), 2)
    for fit_on, score_on in (halves, halves[::-1]):
        fit_on = fit_on[voted[fit_on]]
        half_bias = vote_bias(logits["fer2013"][fit_on], shares[fit_on], temperature)
        base, biased = [], []
        for b in benches:
            if b.rows is not None:  # the two PublicTest label sets
                keep = np.flatnonzero(np.isin(b.rows, score_on))
                part = replace(b, x=b.x[keep], y=b.y[keep], rows=b.rows[keep])
                base.append(scored(part, logits[b.name][keep]))
                biased.append(scored(part, logits[b.name][keep] + half_bias))
        print("bias fitted on one half of PublicTest, scored on the other: as shipped", ", ".join(base),
              "| biased", ", ".join(biased), flush=True)


def main() -> None:
    runs = sys.argv[1:] or ["runs/student7"]
    test = load_split(Path("../shared/data/fer2013"), "test", Path(".cache"))
    benches = all_benchmarks(test)
    models = [keras.models.load_model(checkpoint(Path(r)), compile=False) for r in runs]
    print("variant: test set accuracy (mean per-class recall) [DiffusionFER's recall per class], ...")
    for name, views in VARIANTS.items():
        print(f"{runs[0]}, {name}:", ", ".join(score(models[0], b, views) for b in benches), flush=True)
    logit_shifts(models[0], benches, votes_for(test, load_votes(Path(DEFAULT_VOTES))))
    soup = keras.models.clone_model(models[0])
    for k in range(2, len(runs) + 1):
        for combo in itertools.combinations(range(len(runs)), k):
            soup.set_weights([np.mean(w, axis=0) for w in zip(*(models[i].get_weights() for i in combo))])
            names = " + ".join(runs[i] for i in combo)
            print(f"mean weights of {names}, flip TTA:", ", ".join(score(soup, b, VARIANTS["flip TTA (shipped)"]) for b in benches), flush=True)


if __name__ == "__main__":
    main()
