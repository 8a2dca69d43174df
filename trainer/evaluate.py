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

from trainer.benchmarks import Benchmark, publictest  # noqa: E402
from trainer.calibration import softmax  # noqa: E402
from trainer.data import DataError, Split  # noqa: E402
from trainer.labels import LABELS  # noqa: E402
from trainer.metrics import classification_report, roc_auc, roc_curve  # noqa: E402
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
FERPLUS_FLIP = "val_ferplus_flip"  # the same against the FER+ majority
SELECT = "val_select"  # what best.keras is selected on: the label blend's mix of the two


def predict_logits(model: keras.Model, x: np.ndarray, flip_tta: bool = False) -> np.ndarray:
    """Logits for uint8 images (N, 48, 48); with `flip_tta`, averaged with the mirrored images."""
    x = x[..., None].astype(np.float32)
    logits = model.predict(x, batch_size=512, verbose=0)
    if flip_tta:
        logits = (logits + model.predict(x[:, :, ::-1], batch_size=512, verbose=0)) / 2
    return logits


def flip_tta_accuracy(model: keras.Model, split: Split | Benchmark) -> float:
    """Accuracy on `split` with each image's logits averaged with its mirror image's."""
    return float((predict_logits(model, split.x, flip_tta=True).argmax(1) == split.y).mean())


def score_benchmark(bench: Benchmark, plain: np.ndarray, flip: np.ndarray) -> dict:
    """Accuracy (one pass and flip TTA), and per class with flip TTA: recall, confusion, one-vs-rest ROC AUC."""
    report = classification_report(bench.y, flip.argmax(1))
    probs = softmax(flip)
    return {"title": bench.title, "images": len(bench.y), "excluded": bench.excluded,
            "accuracy": float((plain.argmax(1) == bench.y).mean()), "accuracy_flip_tta": report["accuracy"],
            "per_class_recall": {k: v["recall"] for k, v in report["per_class"].items()},
            "roc_auc": {label: round(roc_auc(bench.y == i, probs[:, i]), 4) for i, label in enumerate(LABELS)
                        if 0 < (bench.y == i).sum() < len(bench.y)},
            "confusion": report["confusion"]}


def evaluate_run(run: Path, model: keras.Model, test: Split, benches: list[Benchmark] | None = None) -> dict:
    """Write report.json, report.md, confusion.png, roc.png and curves.png into `run`; return the report.

    The top-level metrics are PublicTest's on FER-2013 labels; `benchmarks` holds each test set's
    (`benches`, by default PublicTest alone) side by side.
    """
    benches = benches or [publictest(test)]
    report = {"model": model.name, "params": model.count_params(), "macs": count_macs(model),
              "test_images": len(test), "test_checksum": test.checksum}
    scored, curves = {}, {}
    for bench in benches:
        plain = predict_logits(model, bench.x)
        flip = predict_logits(model, bench.x, flip_tta=True)
        scored[bench.name] = score_benchmark(bench, plain, flip)
        curves[bench.name] = (bench.y, softmax(flip))
        if bench.name == "fer2013":
            report.update(classification_report(bench.y, plain.argmax(1)))
            report["accuracy_flip_tta"] = scored[bench.name]["accuracy_flip_tta"]
    report["benchmarks"] = scored
    (run / "report.json").write_text(json.dumps(report, indent=2))
    (run / "report.md").write_text(markdown(report))
    plot_confusions(scored, run / "confusion.png")
    plot_roc(scored, curves, run / "roc.png")
    if (run / "history.csv").exists():
        plot_curves(run / "history.csv", run / "curves.png")
    return report


def markdown(report: dict) -> str:
    benches = report["benchmarks"]
    lines = [f"# {report['model']}", "",
             f"{report['params']:,} params, {report['macs'] / 1e6:.1f} M MACs; FER-2013 macro F1 {report['macro_f1']:.3f}", "",
             "| test set | faces | accuracy | flip TTA |", "|---|---|---|---|"]
    for b in benches.values():
        lines.append(f"| {b['title']} | {b['images']:,} | {b['accuracy']:.2%} | **{b['accuracy_flip_tta']:.2%}** |")
    if "ferplus" in benches:
        lines += ["", f"FER+: {benches['ferplus']['excluded']} PublicTest faces without a clear majority among "
                      "the seven classes (ties, contempt, unknown, not a face) are left out."]
    head = " | ".join(f"{b['title']} recall | AUC" for b in benches.values())
    lines += ["", "Per class, flip TTA; FER-2013 precision/F1 without TTA:", "",
              f"| class | FER-2013 precision | F1 | {head} |", "|---|---|---|" + "---|---|" * len(benches)]
    for label, m in report["per_class"].items():
        cells = " | ".join(f"{b['per_class_recall'][label]:.3f} | {b['roc_auc'].get(label, float('nan')):.3f}"
                           for b in benches.values())
        lines.append(f"| {label} | {m['precision']:.3f} | {m['f1']:.3f} | {cells} |")
    return "\n".join(lines) + "\n"


def plot_confusions(scored: dict[str, dict], path: Path) -> None:
    """Row-normalised confusion matrices (flip TTA), one panel per test set."""
    fig, axes = plt.subplots(1, len(scored), figsize=(6 * len(scored), 5.5), squeeze=False)
    for ax, b in zip(axes[0], scored.values()):
        cm = np.array(b["confusion"])
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
        ax.set_yticks(range(len(LABELS)), LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{b['title']}\naccuracy {b['accuracy_flip_tta']:.1%} (flip TTA)", fontsize=10)
        for i in range(len(LABELS)):
            for j in range(len(LABELS)):
                ax.text(j, i, f"{norm[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(scored: dict[str, dict], curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """One-vs-rest ROC curve of each class (flip TTA), one panel per test set."""
    fig, axes = plt.subplots(1, len(scored), figsize=(5 * len(scored), 4.8), squeeze=False)
    for ax, (name, b) in zip(axes[0], scored.items()):
        y, probs = curves[name]
        for i, label in enumerate(LABELS):
            if label in b["roc_auc"]:
                fpr, tpr = roc_curve(y == i, probs[:, i])
                ax.plot(fpr, tpr, label=f"{label} (AUC {b['roc_auc'][label]:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_xlabel("false-positive rate")
        ax.set_ylabel("true-positive rate")
        ax.set_title(b["title"], fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(history: Path, path: Path) -> None:
    with history.open() as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", loss_ax), ("accuracy", acc_ax)):
        ax.plot(epochs, [float(r[key]) for r in rows], label="train (augmented)")
        ax.plot(epochs, [float(r["val_" + key]) for r in rows], label="PublicTest")
        if key == "accuracy":
            for column, label in ((FLIP_ACCURACY, "PublicTest, flip TTA"), (FERPLUS_FLIP, "FER+ majority, flip TTA")):
                if rows and rows[0].get(column):
                    ax.plot(epochs, [float(r[column]) for r in rows], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
