"""`fer-edge predict`: faces and emotions of still images, optionally drawn onto a copy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.annotate import draw_face
from edge.classifier import Classifier, crop_faces
from edge.config import Config
from edge.detector import FaceDetector


def annotate(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    """A copy of a BGR photo with its faces drawn as the live preview draws them."""
    out = image.copy()
    for f in faces:
        draw_face(out, tuple(f["box"]), f"{f['emotion']} {f['confidence']:.0%}", f["emotion"],
                  list(f["scores"].values()), list(f["scores"]))
    return out


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".tif", ".tiff"}


def image_files(folder: Path) -> list[Path]:
    """The image files under `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def predict_faces(gray: np.ndarray, classifier: Classifier, detector: FaceDetector, crop_margin: float,
                  whole: bool = False) -> list[dict]:
    """Faces of one gray image with their emotions. With `whole` (or a small image, <= 96 px, in
    which Haar finds none, as FER-2013's crops are) the whole image is one face."""
    boxes = [] if whole else detector.detect(gray)
    if whole or (not boxes and max(gray.shape) <= 96):
        boxes = [(0, 0, gray.shape[1], gray.shape[0])]
    probs = classifier.classify(crop_faces(gray, boxes, classifier.input_size, crop_margin))
    return [{"box": [int(v) for v in box], "emotion": classifier.labels[int(p.argmax())],
             "confidence": round(float(p.max()), 4),
             "scores": {k: round(float(v), 4) for k, v in zip(classifier.labels, p)}}
            for box, p in zip(boxes, probs)]


def _error(message: str) -> None:
    print(f"fer-edge: error: {message}", file=sys.stderr, flush=True)


def predict_images(cfg: Config, images: list[Path], out: Path | None, whole: bool = False) -> int:
    """Print one JSON line per image; 2 if an image could not be read or written, or a folder held none.

    With `whole`, each image is taken as one face crop (see `predict_faces`).
    """
    classifier = Classifier(cfg.model.path, num_threads=cfg.model.num_threads)
    detector = FaceDetector(cfg.detector)
    status = 0
    paths: list[tuple[Path, Path]] = []  # (image, its name under --out)
    folders = [arg for arg in images if arg.is_dir()]
    for arg in images:
        if arg in folders:
            files = image_files(arg)
            if not files:
                _error(f"{arg}: no images in this folder")
                status = 2
            paths += [(p, p.relative_to(arg)) for p in files]
        elif arg.exists():
            paths.append((arg, Path(arg.name)))
        else:
            _error(f"{arg}: no such file or folder")
            status = 2
    out_is_folder = out is not None and (len(paths) > 1 or bool(folders) or out.is_dir())
    for path, name in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            _error(f"{path}: not a readable image")
            status = 2
            continue
        faces = predict_faces(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), classifier, detector,
                              cfg.detector.crop_margin, whole)
        print(json.dumps({"image": str(path), "faces": faces}), flush=True)
        if out is not None:
            target = out / name if out_is_folder else out
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), annotate(image, faces)):
                _error(f"cannot write {target}")
                status = 2
    return status
