"""Evaluation report of a trained model: metrics JSON, a markdown summary and PNG plots."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from trainer.data import DataError, Split  # noqa: E402
from trainer.labels import LABELS  # noqa: E402
from trainer.metrics import classification_report  # noqa: E402
from trainer.models import count_macs  # noqa: E402


def checkpoint(src: Path) -> Path:
    """The model file of a run folder (its best.keras), or `src` itself when it is a file."""
    return src / "best.keras" if src.is_dir() else src


def checkpoints(runs: Iterable[str | Path], what: str = "") -> list[Path]:
    """The model files of several runs; a DataError (prefixed by `what`) names any that is missing."""
    paths = [checkpoint(Path(r)) for r in runs]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{what}no model at {', '.join(missing)}")
    return paths


FLIP_ACCURACY = "val_accuracy_flip"  # history.csv column: PublicTest accuracy with flip TTA, per epoch


def predict_logits(model: keras.Model, x: np.ndarray, flip_tta: bool = False) -> np.ndarray:
    """Logits for uint8 images (N, 48, 48); with `flip_tta`, averaged with the mirrored images."""
    x = x[..., None].astype(np.float32)
    logits = model.predict(x, batch_size=512, verbose=0)
    if flip_tta:
        logits = (logits + model.predict(x[:, :, ::-1], batch_size=512, verbose=0)) / 2
    return logits


def flip_tta_accuracy(model: keras.Model, split: Split) -> float:
    """Accuracy on `split` with each image's logits averaged with its mirror image's."""
    return float((predict_logits(model, split.x, flip_tta=True).argmax(1) == split.y).mean())


def evaluate_run(run: Path, model: keras.Model, test: Split, flip_tta: bool = True) -> dict:
    """Write report.json, report.md, confusion.png and curves.png into `run`; return the report."""
    report = {"model": model.name, "params": model.count_params(), "macs": count_macs(model),
              "test_images": len(test), "test_checksum": test.checksum}
    report.update(classification_report(test.y, predict_logits(model, test.x).argmax(1)))
    if flip_tta:
        report["accuracy_flip_tta"] = flip_tta_accuracy(model, test)
    (run / "report.json").write_text(json.dumps(report, indent=2))
    (run / "report.md").write_text(markdown(report))
    plot_confusion(np.array(report["confusion"]), run / "confusion.png", report["accuracy"])
    if (run / "history.csv").exists():
        plot_curves(run / "history.csv", run / "curves.png")
    return report


def markdown(report: dict) -> str:
    lines = [f"# {report['model']}", "",
             f"PublicTest accuracy: **{report['accuracy']:.2%}**"
             + (f" (flip TTA {report['accuracy_flip_tta']:.2%})" if "accuracy_flip_tta" in report else ""),
             f"macro F1 {report['macro_f1']:.3f}, {report['params']:,} params, {report['macs'] / 1e6:.1f} M MACs", "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in report["per_class"].items():
        lines.append(f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    return "\n".join(lines) + "\n"


def plot_confusion(cm: np.ndarray, path: Path, accuracy: float) -> None:
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"PublicTest confusion (row-normalized), accuracy {accuracy:.1%}")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(history: Path, path: Path) -> None:
    with history.open() as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train (augmented)")
        ax.plot(epochs, [float(r["val_" + key]) for r in rows], label="PublicTest")
        if key == "accuracy" and rows and rows[0].get(FLIP_ACCURACY):
            ax.plot(epochs, [float(r[FLIP_ACCURACY]) for r in rows], label="PublicTest, flip TTA")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
