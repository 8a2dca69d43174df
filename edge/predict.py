"""`fer-edge predict`: faces and emotions of still images, optionally drawn onto a copy."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edge.classifier import Classifier, crop_faces
from edge.config import Config
from edge.detector import FaceDetector


def annotate(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    out = image.copy()
    for f in faces:
        x, y, w, h = f["box"]
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 255, 0), 2)
        cv2.putText(out, f"{f['emotion']} {f['confidence']:.0%}", (x, max(12, y - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX, max(0.4, w / 250), (0, 255, 0), 1 + w // 200, cv2.LINE_AA)
    return out


def predict_images(cfg: Config, images: list[Path], out: Path | None) -> int:
    """Print one JSON line per image; 2 if any image could not be read."""
    classifier = Classifier(cfg.model.path, num_threads=cfg.model.num_threads)
    detector = FaceDetector(cfg.detector)
    status = 0
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            print(f"fer-edge: error: {path}: not a readable image", flush=True)
            status = 2
            continue
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes = detector.detect(gray)
        if not boxes and max(gray.shape) <= 96:  # an already-cropped face, as in FER-2013
            boxes = [(0, 0, gray.shape[1], gray.shape[0])]
        probs = classifier.classify(crop_faces(gray, boxes, classifier.input_size, cfg.detector.crop_margin))
        faces = [{"box": [int(v) for v in box], "emotion": classifier.labels[int(p.argmax())],
                  "confidence": round(float(p.max()), 4),
                  "scores": {k: round(float(v), 4) for k, v in zip(classifier.labels, p)}}
                 for box, p in zip(boxes, probs)]
        print(json.dumps({"image": str(path), "faces": faces}), flush=True)
        if out is not None:
            target = out / path.name if len(images) > 1 or out.is_dir() else out
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), annotate(image, faces)):
                print(f"fer-edge: error: cannot write {target}", flush=True)
                status = 2
    return status
