"""Teacher files: what distillation needs of a teacher, in one .npz small enough to commit.

`fer-train teacher RUN... --out X.npz` writes the ensemble's logits (float16) on the FER-2013 train
images (`train`, for `fit --teacher-logits`) and on PublicTest (`test`, for `benchmarks/teacher-weights.py`),
the checksums of those splits and the member runs. A teacher of one Keras model also keeps the model
itself (its config, its kernels in int8 with a float16 scale per channel and its other weights in
float16: 1.6 MB for `reference`) and the command that trained it, so that `fit --teacher X.npz` can
label each augmented batch online without the run folder.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np

from trainer.data import DataError, Split
from trainer.evaluate import checkpoint


def save(out: Path, train_logits: np.ndarray, test_logits: np.ndarray, train: Split, test: Split,
         members: list[str], model: keras.Model | None = None, made_by: dict | None = None) -> None:
    """Write a teacher file; `model` (with `made_by`: its run's command and config) only for a single model."""
    extra = {}
    if model is not None:
        extra = {"model_config": json.dumps(model.get_config()), "made_by": json.dumps(made_by or {})}
        for i, w in enumerate(model.get_weights()):
            extra.update(_encode(f"{i:03d}", w))
    np.savez_compressed(out, train=train_logits.astype(np.float16), test=test_logits.astype(np.float16),
                        train_checksum=train.checksum, test_checksum=test.checksum,
                        members=np.array(members), **extra)


@contextmanager
def _opened(path: Path) -> Iterator[np.lib.npyio.NpzFile]:
    """A teacher file, open; one DataError where it is not a readable .npz or lacks a part."""
    try:
        with np.load(path) as f:
            yield f
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"{path} is not a readable teacher file ({type(e).__name__}: {e})") from None


def load_logits(path: Path, split: Split, part: str = "train") -> np.ndarray:
    """Logits of `part` ("train", or "test" for PublicTest) from a teacher file, checked against
    `split`; a .npy holds train logits only."""
    if not path.is_file():
        raise DataError(f"no teacher logits at {path}")
    if path.suffix != ".npz":
        if part != "train":
            raise DataError(f"{path} holds train logits only; the {part} logits are in a teacher file (.npz)")
        try:
            return np.load(path).astype(np.float32)
        except (OSError, ValueError) as e:
            raise DataError(f"{path} is not readable teacher logits ({e})") from None
    with _opened(path) as f:
        if str(f[f"{part}_checksum"]) != split.checksum:
            images = "training images" if part == "train" else "PublicTest images"
            raise DataError(f"{path} was made from other {images} (checksum {f[f'{part}_checksum']}, "
                            f"these are {split.checksum})")
        return f[part].astype(np.float32)


def load_model(src: Path) -> keras.Model:
    """A frozen teacher: a run folder's best.keras, a .keras file, or a teacher file that holds a model."""
    path = checkpoint(src)
    if not path.is_file():
        raise DataError(f"no model at {path}")
    if path.suffix != ".npz":
        return keras.models.load_model(path)
    with _opened(path) as f:
        if "model_config" not in f:
            raise DataError(f"{path} holds logits only (an ensemble's, or written before teacher files kept "
                            "the model): give it to --teacher-logits, or its run folder to --teacher")
        model = keras.Model.from_config(json.loads(str(f["model_config"])))
        weights = sorted(k for k in f.files if k.startswith("weight_"))
        model.set_weights([_decode(f, k.removeprefix("weight_")) for k in weights])
    return model


def _encode(key: str, w: np.ndarray) -> dict[str, np.ndarray]:
    """A kernel as int8 with a float16 scale per channel (the last axis, or a depthwise kernel's
    channel axis before it); other weights in float16."""
    if w.ndim < 2:
        return {f"weight_{key}": w.astype(np.float16)}
    channels = w.ndim - 1 if w.shape[-1] > 1 else w.ndim - 2
    others = tuple(a for a in range(w.ndim) if a != channels)
    scale = (np.abs(w).max(axis=others, keepdims=True) / 127).astype(np.float16)
    scale[scale == 0] = 1
    q = np.clip(np.round(w / scale.astype(np.float32)), -127, 127).astype(np.int8)
    return {f"weight_{key}": q, f"scale_{key}": scale}


def _decode(f: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """A weight as float32, from int8 and its scale or from float16."""
    w = f[f"weight_{key}"].astype(np.float32)
    return w * f[f"scale_{key}"].astype(np.float32) if f"scale_{key}" in f.files else w


def made_by(path: Path) -> dict | None:
    """The command and config of the run a teacher file's model came from (None where it has none or
    the file cannot be read: a record, not an input)."""
    try:
        with _opened(path) as f:
            record = json.loads(str(f["made_by"])) if "made_by" in f else None
    except DataError:
        return None
    return record if isinstance(record, dict) else None
