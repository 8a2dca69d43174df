"""`fer-train`: train, evaluate and compare FER-2013 models."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
    import numpy as np

DEFAULT_DATA = "../shared/data/fer2013"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fer-train", description=__doc__,
        epilog="example: fer-train fit --data ../shared/data/fer2013 --run runs/compact")
    sub = p.add_subparsers(dest="command", required=True)

    fit = sub.add_parser("fit", help="train a model (re-run the same command to resume)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    fit.add_argument("--data", default=DEFAULT_DATA, help="FER-2013 folder root (train/, test/) or fer2013.csv")
    fit.add_argument("--run", required=True, help="run folder for checkpoints and the report")
    fit.add_argument("--arch", choices=["compact", "reference"], default="compact")
    fit.add_argument("--width", type=float, default=1.25, help="channel width multiplier")
    fit.add_argument("--depth", type=int, nargs="+", default=[2],
                     help="compact: separable blocks per stage, one number or three (stages at 24, 12, 6 px)")
    fit.add_argument("--stem-stride", type=int, choices=[1, 2], default=2,
                     help="compact: 2 runs the stem at 24x24, 1 on the full 48x48 face")
    fit.add_argument("--dropout", type=float, default=0.3)
    fit.add_argument("--epochs", type=int, default=50)
    fit.add_argument("--batch-size", type=int, default=128)
    fit.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (warmup, then cosine)")
    fit.add_argument("--warmup-epochs", type=int, default=3, help="linear warmup before the cosine decay")
    fit.add_argument("--weight-decay", type=float, default=0.05, help="AdamW decoupled weight decay")
    fit.add_argument("--label-smoothing", type=float, default=0.1)
    fit.add_argument("--class-weight-power", type=float, default=0.3,
                     help="class weight = (n_max/n_class)**power; 0 disables")
    fit.add_argument("--patience", type=int, default=20, help="early-stopping patience in epochs")
    fit.add_argument("--seed", type=int, default=1)
    fit.add_argument("--init-from", help="warm start from a model of the same architecture: a run folder, a "
                     ".keras file or a one-model file of `fer-train teacher`")
    kd = fit.add_mutually_exclusive_group()
    kd.add_argument("--teacher-logits", nargs="+", default=(), metavar="FILE",
                    help="teachers' train logits, for distillation: a run's train_logits.npy or the .npz of "
                         "`fer-train teacher`; several are averaged")
    fit.add_argument("--teacher-weights", nargs="+", type=float, default=(), metavar="W",
                     help="with several --teacher-logits: their weights in the average, one each (default equal)")
    kd.add_argument("--teacher", dest="teachers", nargs="+", default=(), metavar="RUN",
                    help="online distillation: runs, .keras files or teacher files (.npz of `fer-train teacher` "
                         "from one model) whose mean logits on each augmented batch are the teacher")
    fit.add_argument("--distill-weight", type=float, default=0.7)
    fit.add_argument("--distill-temperature", type=float, default=3.0)
    fit.add_argument("--labels", choices=["fer2013", "ferplus", "blend"], default="fer2013",
                     help="targets: FER-2013 labels, FER+ vote distributions, or a blend of the two")
    fit.add_argument("--ferplus-weight", type=float, default=0.5, help="blend: weight of the FER+ votes (0..1)")
    _test_sets(fit)
    fit.add_argument("--erase-prob", type=float, default=0.5, help="random-erasing probability")
    fit.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0 disables)")
    fit.add_argument("--rotate", type=float, default=10.0, help="max rotation in degrees")
    fit.add_argument("--cache-dir", default=".cache", help="decoded-array cache")
    fit.add_argument("--precision", choices=["float32", "bf16"], default="float32",
                     help="bf16: Keras mixed_bfloat16 (bf16 convolutions, float32 weights, logits and loss); "
                          "pays for large full convolutions on CPUs with AMX or AVX512-BF16")

    ev = sub.add_parser("evaluate", help="re-evaluate a run's best.keras (or a .keras file) on PublicTest")
    ev.add_argument("model", help="run folder or .keras file")
    ev.add_argument("--data", default=DEFAULT_DATA)
    ev.add_argument("--out", help="report folder (default: the run folder)")
    ev.add_argument("--cache-dir", default=".cache")
    _test_sets(ev)

    teach = sub.add_parser("teacher", help="save an ensemble's train logits for --teacher-logits; prints its accuracy")
    teach.add_argument("runs", nargs="+", help="run folders (best.keras), .keras or teacher files, or int8 "
                       ".tflite models (as the edge runs them); their logits are averaged")
    teach.add_argument("--out", required=True, help="where to write the logits: .npy (train only, float32) or "
                       "a teacher file .npz (train and PublicTest, float16, compressed: small enough to commit; "
                       "with one Keras model, the model too, for --teacher)")
    teach.add_argument("--no-flip-tta", dest="flip_tta", action="store_false",
                       help="one pass per model (default: each model's logits averaged over the images "
                            "and their mirrors)")
    teach.add_argument("--data", default=DEFAULT_DATA)
    teach.add_argument("--cache-dir", default=".cache")
    _test_sets(teach)

    sp = sub.add_parser("soup", help="average the weights of runs fine-tuned from one another into a run of its own")
    sp.add_argument("runs", nargs="+", help="run folders, .keras or teacher files of one architecture")
    sp.add_argument("--run", required=True, help="the soup's run folder (best.keras, config.json, the report)")
    sp.add_argument("--data", default=DEFAULT_DATA)
    sp.add_argument("--cache-dir", default=".cache")
    _test_sets(sp)

    cmp_ = sub.add_parser("compare", help="markdown table of several runs' reports")
    cmp_.add_argument("runs", nargs="+", help="run folders holding report.json (and quant.json)")
    return p


def _test_sets(p: argparse.ArgumentParser) -> None:
    from trainer.benchmarks import DEFAULT_DIFFUSIONFER, DEFAULT_VOTES  # numpy only, no TensorFlow

    p.add_argument("--ferplus-votes", default=DEFAULT_VOTES, help="FER+ votes.csv (training targets and the FER+ score)")
    p.add_argument("--diffusionfer", default=DEFAULT_DIFFUSIONFER,
                   help="DiffusionFER folder, the cross-domain check (never trained or selected on)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from trainer.data import DataError  # deferred: TensorFlow loads slowly, --help should not

    if args.command != "compare":
        from trainer.quiet import import_tensorflow
        import_tensorflow("fer-train")
    try:
        if args.command == "fit":
            from trainer.augment import AugmentConfig
            from trainer.fit import FitConfig, fit
            augment = dataclasses.replace(AugmentConfig(), erase_prob=args.erase_prob,
                                          mixup_alpha=args.mixup, rotate_deg=args.rotate)
            fields = {f.name for f in dataclasses.fields(FitConfig)}
            values = {k: v for k, v in vars(args).items() if k in fields}
            values["teachers"] = tuple(args.teachers)
            values["teacher_logits"] = tuple(args.teacher_logits)
            values["teacher_weights"] = tuple(args.teacher_weights)
            values["depth"] = args.depth[0] if len(args.depth) == 1 else tuple(args.depth)
            cfg = FitConfig(run_dir=args.run, augment=augment, **values)  # refuses impossible flags
            _record_command(Path(args.run), argv)
            run = fit(cfg)
            print(f"report: {run / 'report.md'}")
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "teacher":
            _teacher(args)
        elif args.command == "soup":
            _soup(args, argv)
        else:
            print(compare(Path(r) for r in args.runs))
    except DataError as e:
        print(f"fer-train: error: {e}", file=sys.stderr)
        return 2
    return 0


def _record_command(run: Path, argv: list[str] | None) -> None:
    """Append this command line to the run's command.txt (a resumed run lists each invocation)."""
    run.mkdir(parents=True, exist_ok=True)
    with (run / "command.txt").open("a") as f:
        f.write("fer-train " + shlex.join(sys.argv[1:] if argv is None else argv) + "\n")


def _evaluate(args: argparse.Namespace) -> None:
    import keras

    from trainer.benchmarks import all_benchmarks
    from trainer.data import load_split
    from trainer.evaluate import checkpoints, evaluate_run

    src = Path(args.model)
    [path] = checkpoints([src])
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent)
    out.mkdir(parents=True, exist_ok=True)
    test = load_split(Path(args.data), "test", Path(args.cache_dir))
    report = evaluate_run(out, keras.models.load_model(path), test,
                          all_benchmarks(test, args.ferplus_votes, args.diffusionfer))
    scores = ", ".join(f"{name} {b['accuracy_flip_tta']:.4f}" for name, b in report["benchmarks"].items())
    print(f"accuracy {report['accuracy']:.4f}; flip TTA: {scores}; report: {out / 'report.md'}")


def _soup(args: argparse.Namespace, argv: list[str] | None) -> None:
    from trainer.benchmarks import all_benchmarks
    from trainer.data import load_split
    from trainer.evaluate import evaluate_run
    from trainer.soup import write_soup

    run = Path(args.run)
    model = write_soup(run, [Path(r) for r in args.runs])
    (run / "command.txt").unlink(missing_ok=True)  # a soup is made in one go: its command replaces any before
    _record_command(run, argv)
    test = load_split(Path(args.data), "test", Path(args.cache_dir))
    report = evaluate_run(run, model, test, all_benchmarks(test, args.ferplus_votes, args.diffusionfer))
    scores = ", ".join(f"{name} {b['accuracy_flip_tta']:.2%}" for name, b in report["benchmarks"].items())
    print(f"mean of {len(args.runs)} models; flip TTA: {scores}; report: {run / 'report.md'}")


def _teacher(args: argparse.Namespace) -> None:
    import numpy as np

    from trainer import teachers
    from trainer.benchmarks import all_benchmarks
    from trainer.data import load_split
    from trainer.records import run_record

    members = [_teacher_member(Path(r), args.flip_tta) for r in args.runs]
    train, test = (load_split(Path(args.data), name, Path(args.cache_dir)) for name in ("train", "test"))
    ensemble = lambda x: np.mean([logits(x) for logits, _ in members], axis=0)  # noqa: E731
    train_logits = ensemble(train.x)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    test_logits = ensemble(test.x)
    if out.suffix == ".npz":  # small enough to commit; a single Keras model travels with its logits
        model = members[0][1] if len(members) == 1 else None
        teachers.save(out, train_logits, test_logits, train, test, [str(r) for r in args.runs], model,
                      run_record(Path(args.runs[0])) if model is not None else None)
    else:
        np.save(out, train_logits)
    def accuracy(b) -> float:  # PublicTest's benchmarks reuse test_logits: each image runs once
        logits = test_logits[b.rows] if b.rows is not None else ensemble(b.x)
        return float((logits.argmax(1) == b.y).mean())

    scores = ", ".join(f"{b.title} {accuracy(b):.2%}" for b in all_benchmarks(test, args.ferplus_votes, args.diffusionfer))
    print(f"{out}: logits of {len(members)} model(s) on {len(train)} train images; "
          f"accuracy train {float((train_logits.argmax(1) == train.y).mean()):.2%}; {scores}")


def _teacher_member(src: Path, flip_tta: bool) -> tuple[Callable[[np.ndarray], np.ndarray], keras.Model | None]:
    """One teacher's logits for uint8 images, and its Keras model (None for a .tflite): a run, a .keras
    or teacher file, or a shipped int8 .tflite read through the edge runtime as the device runs it
    (with the flip TTA its card says it holds)."""
    from trainer.data import DataError

    if src.suffix == ".tflite":
        from edge.classifier import Classifier, ModelError

        if not src.is_file():
            raise DataError(f"no model at {src}")
        try:
            clf = Classifier(src, num_threads=2)
        except ModelError as e:
            raise DataError(str(e)) from None
        return clf.logits, None
    from trainer import teachers
    from trainer.evaluate import predict_logits

    model = teachers.load_model(src)
    return (lambda x: predict_logits(model, x, flip_tta)), model


TEST_SETS = ("fer2013", "ferplus", "diffusionfer")


def compare(runs) -> str:
    """Markdown table: the three test sets' accuracy (float with flip TTA, and per quantized variant
    int8 as it runs on the edge), params, MACs, int8 size and latency."""
    rows = ["| run | model | float FER-2013 | flip TTA: FER-2013 | FER+ | DiffusionFER | int8 variant "
            "| int8: FER-2013 | FER+ | DiffusionFER | params | MACs (M) | int8 KB | int8 ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f: format(v, f) if v is not None else "–"  # noqa: E731
    for run in runs:
        r = json.loads((run / "report.json").read_text())
        flip = [r.get("benchmarks", {}).get(name, {}).get("accuracy_flip_tta") for name in TEST_SETS]
        flip[0] = r.get("accuracy_flip_tta")
        variants = [json.loads(p.read_text()) for p in sorted(run.glob("quant*.json"))] or [{}]
        for q in variants:
            kind = "–" if not q else ("flip TTA" if q.get("flip_tta") else "plain")
            int8 = [q.get("int8_test_sets", {}).get(name) for name in TEST_SETS]
            int8[0] = q.get("int8_accuracy")
            macs = r["macs"] * (2 if q.get("flip_tta") else 1)  # TTA runs the network twice
            cells = " | ".join(fmt(v, ".2%") for v in (r["accuracy"], *flip))
            rows.append(f"| {run.name} | {r['model']} | {cells} | {kind} | {' | '.join(fmt(v, '.2%') for v in int8)} "
                        f"| {r['params']:,} | {macs / 1e6:.1f} | {fmt(q.get('bytes') and q['bytes'] / 1024, '.0f')} "
                        f"| {fmt(q.get('latency_ms_p50'), '.3f')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
