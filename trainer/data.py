"""Load FER-2013 from its folder layout or from fer2013.csv, with a decoded-array cache.

Both loaders return a `Split`: uint8 images (N, 48, 48) and int labels in `LABELS` order.
Bad input raises `DataError` with a one-line message; single unreadable images are skipped
and counted instead, so one corrupt JPEG does not cost a training run.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainer.labels import IMAGE_SIZE, LABELS

log = logging.getLogger(__name__)

CSV_USAGES = {"train": "Training", "test": "PublicTest", "private": "PrivateTest"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class DataError(Exception):
    """A dataset that cannot be used, with a message fit for one line."""


@dataclass(frozen=True)
class Split:
    """Images (N, 48, 48) uint8 and labels (N,) int64 of one dataset split.

    `paths` names each image relative to the dataset root (`train/angry/x.jpg`) for the folder
    layout, which is how FER+ votes are joined; it is empty for fer2013.csv.
    """

    x: np.ndarray
    y: np.ndarray
    checksum: str
    skipped: int = 0
    paths: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y, minlength=len(LABELS))


def load_split(source: Path, split: str, cache_dir: Path | None = None) -> Split:
    """Load `split` ('train', 'test' or 'private') from a folder root or a fer2013.csv file."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"dataset not found: {source}")
    if source.is_file():
        key_files = [source]
    else:
        folder = source / split
        if not folder.is_dir():
            raise DataError(f"missing folder {folder} (expected {source}/{split}/<emotion>/*.jpg)")
        key_files = sorted(p for p in folder.rglob("*") if p.is_file())
    cache = _cache_path(cache_dir, source, split, key_files)
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            return Split(z["x"], z["y"], str(z["checksum"]), int(z["skipped"]), tuple(z["paths"].tolist()))
    result = _load_csv(source, split) if source.is_file() else load_folder(source / split)
    if len(result) == 0:
        raise DataError(f"no images in {source} for split {split!r}")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, x=result.x, y=result.y, checksum=result.checksum, skipped=result.skipped,
                 paths=np.array(result.paths, dtype=str))
        tmp.replace(cache)
    return result


def _cache_path(cache_dir: Path | None, source: Path, split: str, files: list[Path]) -> Path | None:
    if cache_dir is None:
        return None
    h = hashlib.sha1(f"v2|{source.resolve()}|{split}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return Path(cache_dir) / f"{split}-{h.hexdigest()[:16]}.npz"


def load_folder(folder: Path) -> Split:
    """Images under `folder/<emotion>/`, resized to 48x48 gray (also for other datasets laid out so)."""
    emotion_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    unknown = [p.name for p in emotion_dirs if p.name not in LABELS]
    if unknown:
        raise DataError(f"unknown emotion folder(s) in {folder}: {', '.join(unknown)} (expected {', '.join(LABELS)})")
    if not emotion_dirs:
        raise DataError(f"no emotion folders in {folder}")
    xs, ys, paths, skipped = [], [], [], 0
    digest = hashlib.sha256()
    for d in emotion_dirs:
        label = LABELS.index(d.name)
        for path in sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            raw = path.read_bytes()
            img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE)
            if img is None:
                log.warning("skipping unreadable image %s", path)
                skipped += 1
                continue
            if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
                img = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
            digest.update(f"{d.name}/{path.name}".encode())
            digest.update(raw)
            xs.append(img)
            ys.append(label)
            paths.append(f"{folder.name}/{d.name}/{path.name}")
    return _split(xs, ys, digest, skipped, tuple(paths))


def _load_csv(path: Path, split: str) -> Split:
    usage = CSV_USAGES.get(split)
    if usage is None:
        raise DataError(f"unknown split {split!r} (expected one of {', '.join(CSV_USAGES)})")
    xs, ys = [], []
    digest = hashlib.sha256()
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: missing CSV column(s) {', '.join(sorted(missing))} (expected emotion,pixels,Usage)")
        for row in reader:
            if row["Usage"] != usage:
                continue
            line = reader.line_num
            try:
                label = int(row["emotion"])
                pixels = np.array(row["pixels"].split(), dtype=np.int64)
            except (ValueError, AttributeError):
                raise DataError(f"{path}:{line}: malformed row (emotion must be an int, pixels space-separated ints)") from None
            if not 0 <= label < len(LABELS):
                raise DataError(f"{path}:{line}: emotion {label} out of range 0..{len(LABELS) - 1}")
            if pixels.size != IMAGE_SIZE * IMAGE_SIZE or pixels.min() < 0 or pixels.max() > 255:
                raise DataError(f"{path}:{line}: expected {IMAGE_SIZE * IMAGE_SIZE} pixel values in 0..255, got {pixels.size}")
            digest.update(row["emotion"].encode() + row["pixels"].encode())
            xs.append(pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE))
            ys.append(label)
    return _split(xs, ys, digest, 0)


def _split(xs: list[np.ndarray], ys: list[int], digest: "hashlib._Hash", skipped: int,
           paths: tuple[str, ...] = ()) -> Split:
    x = np.stack(xs) if xs else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return Split(x, np.asarray(ys, np.int64), "sha256:" + digest.hexdigest(), skipped, paths)
