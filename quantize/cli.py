"""`fer-quantize`: int8 TFLite conversion of a fer-train model, verified on PublicTest, plus its card."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

DEFAULT_DATA = "../shared/data/fer2013"
DEFAULT_VOTES = "../shared/data/ferplus/votes.csv"  # as trainer.benchmarks; repeated so --help needs no import
DEFAULT_DIFFUSIONFER = "../shared/data/diffusionfer"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fer-quantize", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="example: fer-quantize runs/compact --out models/fer_int8.tflite")
    p.add_argument("model", help="fer-train run folder (uses best.keras) or a .keras file; with --score, a .tflite")
    p.add_argument("--score", action="store_true",
                   help="only score an int8 .tflite (and its card) on the three test sets, as the edge runs it")
    p.add_argument("--data", default=DEFAULT_DATA, help="FER-2013 folder root or fer2013.csv")
    p.add_argument("--out", default="models/fer_int8.tflite", help="output .tflite (card written beside it)")
    p.add_argument("--calibration", type=int, default=1000, help="representative training images")
    p.add_argument("--flip-tta", action="store_true", help="bake mirror-image averaging into the model")
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="keep the logits as trained (default: divided by a temperature fitted to PublicTest's "
                        "FER+ vote distributions, so the published confidence is calibrated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=".cache")
    p.add_argument("--ferplus-votes", default=DEFAULT_VOTES, help="FER+ votes.csv, for the FER+ majority score")
    p.add_argument("--diffusionfer", default=DEFAULT_DIFFUSIONFER, help="DiffusionFER folder, the cross-domain check")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from trainer.quiet import import_tensorflow
    import_tensorflow("fer-quantize")
    from quantize.convert import QuantizeError
    from trainer.data import DataError

    try:
        if args.score:
            print(json.dumps(score(args), indent=2))
            return 0
        card = quantize(args, "fer-quantize " + shlex.join(sys.argv[1:] if argv is None else argv))
    except (QuantizeError, DataError) as e:
        print(f"fer-quantize: error: {e}", file=sys.stderr)
        return 2
    m = card["metrics"]
    scores = "; ".join(f"{name} float {t['float_accuracy']:.4f}, int8 {t['int8_accuracy']:.4f}"
                       for name, t in m["test_sets"].items())
    print(f"{args.out}: {card['bytes']:,} bytes; {scores}; top-1 agreement {m['int8_float_agreement']:.4f}")
    return 0


def int8_scores(benches: list, logits: dict[str, np.ndarray]) -> dict:
    """Accuracy and per-class recall on each test set of the edge Classifier's `logits` (by test set name)."""
    from trainer.metrics import classification_report

    out = {}
    for bench in benches:
        pred = logits[bench.name].argmax(1)
        report = classification_report(bench.y, pred)
        out[bench.name] = {"title": bench.title, "images": len(bench.y), "excluded": bench.excluded,
                           "int8_accuracy": round(report["accuracy"], 4),
                           "int8_per_class_recall": {k: v["recall"] for k, v in report["per_class"].items()}}
    return out


def score(args: argparse.Namespace) -> dict:
    """The three test sets' numbers for a shipped .tflite, read through the edge runtime."""
    from edge.classifier import Classifier, ModelError
    from quantize.convert import QuantizeError
    from trainer.benchmarks import all_benchmarks
    from trainer.data import load_split

    try:
        clf = Classifier(Path(args.model), num_threads=1)
    except ModelError as e:
        raise QuantizeError(str(e)) from None
    test = load_split(Path(args.data), "test", Path(args.cache_dir))
    benches = all_benchmarks(test, args.ferplus_votes, args.diffusionfer)
    return int8_scores(benches, {b.name: clf.logits(b.x) for b in benches})


def quantize(args: argparse.Namespace, command: str) -> dict:
    """Convert, verify in the edge runtime, and write the .tflite and its card; returns the card."""
    from edge.classifier import Classifier
    from quantize.convert import QuantizeError, load_fer_model, to_int8_tflite, with_flip_tta, with_temperature
    from trainer.calibration import fit_temperature
    from trainer.ferplus import load_votes, vote_shares, votes_for
    from trainer.benchmarks import all_benchmarks
    from trainer.data import load_split
    from trainer.evaluate import predict_logits
    from trainer.labels import IMAGE_SIZE, LABELS
    from trainer.metrics import classification_report
    from trainer.models import count_macs

    src = Path(args.model)
    run = src if src.is_dir() else src.parent
    model = load_fer_model(src)
    base_params, base_macs = model.count_params(), count_macs(model)
    if args.flip_tta:
        model = with_flip_tta(model)
    train = load_split(Path(args.data), "train", Path(args.cache_dir))
    test = load_split(Path(args.data), "test", Path(args.cache_dir))
    temperature, shares = 1.0, None
    if Path(args.ferplus_votes).is_file():
        shares, has = vote_shares(votes_for(test, load_votes(Path(args.ferplus_votes))))
    if args.calibrate:
        if shares is None:
            raise QuantizeError(f"calibration needs the FER+ votes ({args.ferplus_votes}), or give --no-calibrate")
        temperature = fit_temperature(predict_logits(model, test.x[has]), shares[has])
        model = with_temperature(model, temperature)
    pick = np.random.default_rng(args.seed).choice(len(train), min(args.calibration, len(train)), replace=False)
    tflite = to_int8_tflite(model, train.x[pick])

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tflite)
    card_path = out.with_suffix(".json")
    card = {"labels": list(LABELS), "input": {"size": [IMAGE_SIZE, IMAGE_SIZE]}}
    card_path.write_text(json.dumps(card))  # minimal card so the edge runtime can load it

    clf = Classifier(out, card_path, num_threads=1)
    benches = all_benchmarks(test, args.ferplus_votes, args.diffusionfer)
    int8_logits = {b.name: clf.logits(b.x) for b in benches}  # "fer2013" is all of PublicTest
    test_sets = int8_scores(benches, int8_logits)
    for bench in benches:
        test_sets[bench.name]["float_accuracy"] = round(float(np.mean(predict_logits(model, bench.x).argmax(1) == bench.y)), 4)
    float_pred = predict_logits(model, test.x).argmax(1)
    int8_pred = int8_logits["fer2013"].argmax(1)
    float_report = classification_report(test.y, float_pred)
    int8_report = classification_report(test.y, int8_pred)
    agreement = float(np.mean(float_pred == int8_pred))
    latency = clf.latency_ms(test.x[:1], runs=300)

    inp, outp = clf.tensor_details
    card = {
        "name": "fer-edge emotion classifier",
        "labels": list(LABELS),
        "input": {"size": [IMAGE_SIZE, IMAGE_SIZE], "channels": 1, "pixels": "raw grayscale 0-255",
                  "dtype": str(np.dtype(inp["dtype"])), "scale": float(inp["quantization"][0]),
                  "zero_point": int(inp["quantization"][1]), "face_crop": "Haar frontal-face box, square, no margin"},
        "output": {"kind": "logits", "dtype": str(np.dtype(outp["dtype"])),
                   "scale": float(outp["quantization"][0]), "zero_point": int(outp["quantization"][1])},
        "architecture": model.name,
        "flip_tta": bool(args.flip_tta),
        "params": int(base_params),
        "macs": int(base_macs * (2 if args.flip_tta else 1)),
        "bytes": len(tflite),
        "sha256": hashlib.sha256(tflite).hexdigest(),
        "metrics": {
            "publictest_images": len(test),
            "publictest_float_accuracy": round(float_report["accuracy"], 4),
            "publictest_int8_accuracy": round(int8_report["accuracy"], 4),
            "int8_float_agreement": round(agreement, 4),
            "int8_macro_f1": round(int8_report["macro_f1"], 4),
            "int8_per_class_recall": {k: v["recall"] for k, v in int8_report["per_class"].items()},
            "test_sets": test_sets,
            "int8_latency_ms_p50_1thread": round(latency, 4),
            "latency_machine": "2-core x86-64 dev box, ai-edge-litert, 1 thread, 1 face",
        },
        "confidence_calibration": _calibration(benches, int8_logits, temperature, args.calibrate,
                                               None if shares is None else shares[has],
                                               None if shares is None else int8_logits["fer2013"][has]),
        "training": _training_record(run),
        "quantize": {"command": command, "calibration_images": len(pick), "seed": args.seed},
        "data": {"source": str(args.data), "train_images": len(train), "train_checksum": train.checksum,
                 "publictest_images": len(test), "publictest_checksum": test.checksum,
                 "ferplus_votes": str(args.ferplus_votes) if "ferplus" in test_sets else None,
                 "diffusionfer": str(args.diffusionfer) if "diffusionfer" in test_sets else None},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    if run.is_dir():  # for `fer-train compare`: one summary per variant
        (run / ("quant_flip.json" if args.flip_tta else "quant.json")).write_text(json.dumps({
            "int8_accuracy": card["metrics"]["publictest_int8_accuracy"], "bytes": len(tflite),
            "int8_test_sets": {name: t["int8_accuracy"] for name, t in test_sets.items()},
            "latency_ms_p50": card["metrics"]["int8_latency_ms_p50_1thread"], "flip_tta": bool(args.flip_tta),
            "tflite": str(out)}, indent=2))
    return card


def _calibration(benches: list, int8_logits: dict[str, np.ndarray], temperature: float, fitted: bool,
                 shares: np.ndarray | None, voted_logits: np.ndarray | None) -> dict:
    """The temperature baked into the model, and the expected calibration error (15 bins) of the
    int8 model's confidence on each test set, without it (logits x T) and with it; and, against the
    FER+ vote `shares` of the PublicTest faces with votes (`voted_logits`), how far the confidence is
    from the share of people who agree."""
    from trainer.calibration import expected_calibration_error, softmax, vote_calibration_error

    def before_after(error, logits: np.ndarray, truth: np.ndarray) -> dict:
        return {"before": round(error(softmax(logits * temperature), truth), 4),
                "after": round(error(softmax(logits), truth), 4)}

    out = {"temperature": round(temperature, 4),
           "fitted_on": "PublicTest's FER+ vote distributions (cross-entropy), float model" if fitted else None,
           "expected_calibration_error": {b.name: before_after(expected_calibration_error, int8_logits[b.name], b.y)
                                          for b in benches}}
    if shares is not None:
        out["vote_calibration_error"] = {"publictest_with_votes": before_after(vote_calibration_error,
                                                                               voted_logits, shares)}
    return out


def _training_record(run: Path) -> dict:
    """The run's command and config; under `lineage`, those of every run it was warm-started from,
    distilled from or averaged from, and theirs in turn, each once, by the path its config names
    (for a teacher file, the run its model came from)."""
    record = _own_record(run)
    lineage: dict[str, dict] = {}
    todo = _sources(record["config"])
    while todo:
        src = todo.pop(0)
        if src not in lineage:
            lineage[src] = _own_record(Path(src))
            todo += _sources(lineage[src]["config"])
    return {**record, "lineage": lineage}


def _own_record(run: Path) -> dict:
    """One run's command and config: a run folder's own, or for a teacher file those it carries."""
    if run.suffix == ".npz" and run.is_file():
        from trainer.teachers import made_by

        return made_by(run) or {"command": None, "config": None}
    from trainer.records import run_record

    return run_record(run)


def _sources(config: dict | None) -> list[str]:
    """The runs and files a run's config names as its warm start, its online teachers and its soup."""
    config = config or {}
    named = [config.get("init_from"), *(config.get("teachers") or []), *(config.get("soup_of") or [])]
    return [src for src in named if isinstance(src, str) and src]


if __name__ == "__main__":
    sys.exit(main())
