"""Train a FER-2013 model, top to bottom: data -> augmentation -> model -> fit -> evaluate.

Everything a run writes lands in `runs/<name>/`: config.json, labels.json, history.csv, best.keras
(selected on flip-TTA PublicTest accuracy, as the shipped int8 model runs, against the chosen
labels), backup/ (resume state), train_logits.npy (for distillation) and the evaluation report. Re-running the same command
resumes an interrupted run (a finished one is only re-evaluated).
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from trainer import teachers as teacher_files
from trainer.augment import AugmentConfig, augment_batch
from trainer.benchmarks import DEFAULT_DIFFUSIONFER, DEFAULT_VOTES, Benchmark, all_benchmarks
from trainer.data import DataError, Split, load_split
from trainer.evaluate import (FERPLUS_FLIP, FLIP_ACCURACY, SELECT, checkpoints, evaluate_run, flip_tta_accuracy,
                              predict_logits)
from trainer.ferplus import Targets, blend_targets, load_votes, votes_for
from trainer.labels import LABELS
from trainer.models import ARCHITECTURES, count_macs, grow, stage_depths

log = logging.getLogger(__name__)

PRECISIONS = {"float32": "float32", "bf16": "mixed_bfloat16"}


@dataclass(frozen=True)
class FitConfig:
    data: str
    run_dir: str
    arch: str = "compact"
    width: float = 1.25
    depth: int | tuple[int, ...] = 2  # compact: blocks per stage, one number or three
    stem_stride: int = 2  # compact: 2 (stem at 24x24) or 1 (stem at 48x48)
    dropout: float = 0.3
    epochs: int = 50
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 3
    label_smoothing: float = 0.1
    class_weight_power: float = 0.3
    patience: int = 20
    seed: int = 1
    init_from: str | None = None
    teacher_logits: tuple[str, ...] = ()  # several: their logits are averaged
    teacher_weights: tuple[float, ...] = ()  # one per teacher_logits file; empty: equal weights
    teachers: tuple[str, ...] = ()  # online: runs, .keras files or teacher files holding a model
    distill_weight: float = 0.7
    distill_temperature: float = 3.0
    labels: str = "fer2013"  # fer2013 | ferplus | blend
    ferplus_weight: float = 0.5  # blend: weight of the FER+ vote distribution
    ferplus_votes: str = DEFAULT_VOTES
    diffusionfer: str = DEFAULT_DIFFUSIONFER
    cache_dir: str = ".cache"
    precision: str = "float32"  # float32 | bf16 (mixed_bfloat16: bf16 compute, float32 weights and logits)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        """Flags that cannot work are refused before any data loads."""
        if not 0 <= self.ferplus_weight <= 1:
            raise DataError(f"--ferplus-weight must be within 0..1, got {self.ferplus_weight}")
        try:
            stage_depths(self.depth)
        except ValueError as e:
            raise DataError(f"--{e}") from None
        weights = self.teacher_weights
        if weights and (len(weights) != len(self.teacher_logits) or min(weights) < 0 or sum(weights) <= 0):
            raise DataError(f"teacher weights {list(weights)} do not fit {len(self.teacher_logits)} teacher(s): "
                            "give one non-negative weight per --teacher-logits file")

    @property
    def ferplus_share(self) -> float:
        """How much the targets (and so the selection metric) follow FER+ rather than FER-2013 labels."""
        return {"fer2013": 0.0, "ferplus": 1.0}.get(self.labels, self.ferplus_weight)


def label_targets(split: Split, cfg: FitConfig) -> Targets:
    """Label-smoothed one-hot targets, mixed with FER+ votes per `cfg.labels`; images FER+ marks as
    not a face are left out unless labels=fer2013."""
    n = len(LABELS)
    y = np.full((len(split), n), cfg.label_smoothing / n, np.float32)
    y[np.arange(len(split)), split.y] += 1 - cfg.label_smoothing
    if cfg.labels == "fer2013":
        return Targets(y, np.ones(len(split), bool), {"images": len(split), "fer2013_only": len(split)})
    votes = votes_for(split, load_votes(Path(cfg.ferplus_votes)))
    return blend_targets(split, y, votes, cfg.ferplus_share)


def soft_targets(split: Split, cfg: FitConfig) -> Targets:
    """The label targets, mixed with the saved teachers' softened predictions if `cfg` names any."""
    targets = label_targets(split, cfg)
    if not cfg.teacher_logits:
        return targets
    members = [teacher_files.load_logits(Path(t), split) for t in cfg.teacher_logits]
    for t, m in zip(cfg.teacher_logits, members):
        if m.shape != targets.y.shape:
            raise DataError(f"teacher logits {t} have shape {m.shape}, expected {targets.y.shape}")
    logits = np.average(members, axis=0, weights=cfg.teacher_weights or None)
    z = logits / cfg.distill_temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    y = (1 - cfg.distill_weight) * targets.y + cfg.distill_weight * p / p.sum(axis=1, keepdims=True)
    return replace(targets, y=y.astype(np.float32))


def class_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-image loss weights (n_max / n_c) ** power of each image's class, averaging 1."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    w = (counts.max() / np.maximum(counts, 1)) ** power
    return (w / (w[labels].mean()))[labels].astype(np.float32)


Teacher = Callable[[tf.Tensor], tf.Tensor]


def load_teacher(sources: tuple[str, ...]) -> Teacher:
    """Frozen models (runs, .keras files or teacher files) whose mean logits are the teacher's."""
    paths = checkpoints(sources, "--teacher: ")
    members = [teacher_files.load_model(p) for p in paths]
    log.info("online teacher: mean logits of %s", ", ".join(str(p) for p in paths))
    return lambda x: tf.add_n([m(x, training=False) for m in members]) / len(members)


def train_dataset(split: Split, targets: Targets, cfg: FitConfig, teacher: Teacher | None = None) -> tf.data.Dataset:
    """Shuffled, augmented batches of (pixels, `targets`, class weights).

    With an online `teacher`, its targets are computed on the augmented (and mixed) images the
    student sees, so they stay consistent with the input ("a good teacher is patient and consistent").
    """
    x = split.x[targets.keep][..., None].astype(np.float32)
    y = targets.y[targets.keep]
    w = class_weights(y.argmax(axis=1), cfg.class_weight_power)
    ds = tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(len(x), seed=cfg.seed)
    ds = ds.batch(cfg.batch_size, drop_remainder=True)
    ds = ds.map(lambda xb, yb, wb: (*augment_batch(xb, yb, cfg.augment), wb),
                num_parallel_calls=tf.data.AUTOTUNE)
    if teacher is not None:
        def distill(xb: tf.Tensor, yb: tf.Tensor, wb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            p = tf.nn.softmax(teacher(xb) / cfg.distill_temperature)
            return xb, (1 - cfg.distill_weight) * yb + cfg.distill_weight * p, wb
        ds = ds.map(distill)
    return ds.prefetch(tf.data.AUTOTUNE)


def test_dataset(split: Split, batch_size: int) -> tf.data.Dataset:
    y = keras.utils.to_categorical(split.y, len(LABELS))
    return tf.data.Dataset.from_tensor_slices((split.x[..., None].astype(np.float32), y)).batch(batch_size)


class FlipTTAValidation(keras.callbacks.Callback):
    """Adds to each epoch's logs the flip-TTA accuracy on PublicTest's FER-2013 labels (FLIP_ACCURACY)
    and FER+ majority (FERPLUS_FLIP), and SELECT: their mix by `ferplus_share`, the selection metric."""

    def __init__(self, benches: list[Benchmark], ferplus_share: float) -> None:
        super().__init__()
        self.benches = {b.name: b for b in benches}
        self.share = ferplus_share if "ferplus" in self.benches else 0.0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        logs[FLIP_ACCURACY] = flip_tta_accuracy(self.model, self.benches["fer2013"])
        if "ferplus" in self.benches:
            logs[FERPLUS_FLIP] = flip_tta_accuracy(self.model, self.benches["ferplus"])
        logs[SELECT] = (1 - self.share) * logs[FLIP_ACCURACY] + self.share * logs.get(FERPLUS_FLIP, 0.0)


def _best_so_far(history: Path) -> float | None:
    if not history.exists():
        return None
    with history.open() as f:
        values = [float(r[SELECT]) for r in csv.DictReader(f) if r.get(SELECT)]
    return max(values) if values else None


def _load_weights(model: keras.Model, src: Path) -> None:
    """Copy the weights of a model of the same architecture (or of a shallower compact net, grown with
    identity blocks): a run's best.keras, a .keras file, or a file of `fer-train teacher` that holds one model."""
    [path] = checkpoints([src], "--init-from: ")
    donor = teacher_files.load_model(path)
    if donor.name == model.name:
        model.set_weights(donor.get_weights())
    else:
        try:
            grow(model, donor)
        except ValueError:
            raise DataError(f"--init-from: {path} is {donor.name}, this run builds {model.name} "
                            "(a compact net may only grow deeper)") from None
        log.info("grown from %s: its extra blocks start as identities", donor.name)
    log.info("initialised from %s", path)


def fit(cfg: FitConfig) -> Path:
    """Train (or resume) one run and write its report; returns the run folder."""
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    keras.utils.set_random_seed(cfg.seed)

    # Data
    train = load_split(Path(cfg.data), "train", Path(cfg.cache_dir))
    test = load_split(Path(cfg.data), "test", Path(cfg.cache_dir))
    log.info("train %d images %s, test %d images", len(train), train.class_counts().tolist(), len(test))
    benches = all_benchmarks(test, cfg.ferplus_votes, cfg.diffusionfer)
    targets = soft_targets(train, cfg)
    counts = targets.counts
    (run / "labels.json").write_text(json.dumps({"labels": cfg.labels, "ferplus_share": cfg.ferplus_share,
                                                 "train": counts}, indent=2))
    log.info("targets: %s labels (FER+ share %.2f): %s", cfg.labels, cfg.ferplus_share, counts)

    # Model (its layers take the precision policy in force when they are built, and keep it)
    kwargs = {"width": cfg.width, "dropout": cfg.dropout}
    if cfg.arch == "compact":
        kwargs.update(depth=cfg.depth, stem_stride=cfg.stem_stride)
    keras.mixed_precision.set_global_policy(PRECISIONS[cfg.precision])
    try:
        model = ARCHITECTURES[cfg.arch](**kwargs)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    log.info("%s: %d params, %.1f M MACs", model.name, model.count_params(), count_macs(model) / 1e6)
    if cfg.init_from:  # warm start; an interrupted run's own backup still takes precedence
        _load_weights(model, Path(cfg.init_from))
    steps = len(train) // cfg.batch_size
    warmup = min(cfg.warmup_epochs, cfg.epochs // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.lr / 10, decay_steps=steps * (cfg.epochs - warmup),
        warmup_target=cfg.lr, warmup_steps=steps * warmup, alpha=0.01)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])

    # Fit (resumable: BackupAndRestore keeps weights, optimizer and epoch; the best is kept apart)
    best = _best_so_far(run / "history.csv")
    callbacks = [  # FlipTTAValidation first: the others read the metric it adds
        FlipTTAValidation(benches[:2], cfg.ferplus_share),
        keras.callbacks.BackupAndRestore(str(run / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(run / "best.keras"), monitor=SELECT, mode="max",
                                        save_best_only=True, initial_value_threshold=best),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
        keras.callbacks.EarlyStopping(monitor=SELECT, mode="max", patience=cfg.patience),
    ]
    finished = run / "finished"
    if finished.exists():
        log.info("%s already finished training; re-evaluating its best checkpoint", run)
    else:
        teacher = load_teacher(cfg.teachers) if cfg.teachers else None
        model.fit(train_dataset(train, targets, cfg, teacher), validation_data=test_dataset(test, 512),
                  epochs=cfg.epochs, callbacks=callbacks, shuffle=False,  # the dataset shuffles itself
                  verbose=1 if sys.stdout.isatty() else 2)  # a log file gets one line per epoch
        finished.touch()

    # Evaluate the selected checkpoint, and keep its train logits for distillation
    best_model = keras.models.load_model(run / "best.keras")
    np.save(run / "train_logits.npy", predict_logits(best_model, train.x))
    evaluate_run(run, best_model, test, benches)
    return run
