"""`fer-train`: train, evaluate and compare FER-2013 models."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
from pathlib import Path

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
    fit.add_argument("--depth", type=int, default=2, help="separable blocks per stage (compact)")
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
    fit.add_argument("--init-from", help="warm start from a run folder's best.keras (same architecture)")
    kd = fit.add_mutually_exclusive_group()
    kd.add_argument("--teacher-logits", help="train_logits.npy of a teacher run, for distillation")
    kd.add_argument("--teacher", dest="teachers", nargs="+", default=(), metavar="RUN",
                    help="online distillation: run folders whose mean logits on each augmented batch are the teacher")
    fit.add_argument("--distill-weight", type=float, default=0.7)
    fit.add_argument("--distill-temperature", type=float, default=3.0)
    fit.add_argument("--erase-prob", type=float, default=0.5, help="random-erasing probability")
    fit.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (0 disables)")
    fit.add_argument("--rotate", type=float, default=10.0, help="max rotation in degrees")
    fit.add_argument("--cache-dir", default=".cache", help="decoded-array cache")

    ev = sub.add_parser("evaluate", help="re-evaluate a run's best.keras (or a .keras file) on PublicTest")
    ev.add_argument("model", help="run folder or .keras file")
    ev.add_argument("--data", default=DEFAULT_DATA)
    ev.add_argument("--out", help="report folder (default: the run folder)")
    ev.add_argument("--cache-dir", default=".cache")

    teach = sub.add_parser("teacher", help="save an ensemble's train logits for --teacher-logits; prints its accuracy")
    teach.add_argument("runs", nargs="+", help="run folders (best.keras) or .keras files; their logits are averaged")
    teach.add_argument("--out", required=True, help="where to write the .npy logits")
    teach.add_argument("--no-flip-tta", dest="flip_tta", action="store_false",
                       help="one pass per model (default: each model's logits averaged over the images "
                            "and their mirrors)")
    teach.add_argument("--data", default=DEFAULT_DATA)
    teach.add_argument("--cache-dir", default=".cache")

    cmp_ = sub.add_parser("compare", help="markdown table of several runs' reports")
    cmp_.add_argument("runs", nargs="+", help="run folders holding report.json (and quant.json)")
    return p


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
            _record_command(Path(args.run), argv)
            run = fit(FitConfig(run_dir=args.run, augment=augment, **values))
            print(f"report: {run / 'report.md'}")
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "teacher":
            _teacher(args)
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

    from trainer.data import load_split
    from trainer.evaluate import checkpoints, evaluate_run

    src = Path(args.model)
    [path] = checkpoints([src])
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent)
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate_run(out, keras.models.load_model(path), load_split(Path(args.data), "test", Path(args.cache_dir)))
    print(f"accuracy {report['accuracy']:.4f}; report: {out / 'report.md'}")


def _teacher(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    from trainer.data import load_split
    from trainer.evaluate import checkpoints, predict_logits

    paths = checkpoints(args.runs)
    splits = [load_split(Path(args.data), name, Path(args.cache_dir)) for name in ("train", "test")]
    models = [keras.models.load_model(p) for p in paths]
    train_logits, test_logits = (np.mean([predict_logits(m, split.x, args.flip_tta) for m in models], axis=0)
                                 for split in splits)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, train_logits)
    acc = [float((z.argmax(1) == split.y).mean()) for z, split in zip((train_logits, test_logits), splits)]
    print(f"{out}: logits of {len(paths)} model(s) on {len(splits[0])} train images; "
          f"accuracy train {acc[0]:.2%}, PublicTest {acc[1]:.2%}")


def compare(runs) -> str:
    """Markdown table: accuracy, params, MACs and, per quantized variant, int8 accuracy, size and latency."""
    rows = ["| run | model | float acc | flip TTA | int8 variant | int8 acc | params | MACs (M) | int8 KB | int8 ms |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f: format(v, f) if v is not None else "–"  # noqa: E731
    for run in runs:
        r = json.loads((run / "report.json").read_text())
        variants = [json.loads(p.read_text()) for p in sorted(run.glob("quant*.json"))] or [{}]
        for q in variants:
            kind = "–" if not q else ("flip TTA" if q.get("flip_tta") else "plain")
            macs = r["macs"] * (2 if q.get("flip_tta") else 1)  # TTA runs the network twice
            rows.append(f"| {run.name} | {r['model']} | {r['accuracy']:.2%} | {fmt(r.get('accuracy_flip_tta'), '.2%')} "
                        f"| {kind} | {fmt(q.get('int8_accuracy'), '.2%')} | {r['params']:,} | {macs / 1e6:.1f} "
                        f"| {fmt(q.get('bytes') and q['bytes'] / 1024, '.0f')} | {fmt(q.get('latency_ms_p50'), '.3f')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
