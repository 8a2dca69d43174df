"""The annotated frame: each face's box in its emotion's colour, its id, emotion and confidence,
and a bar per class; JPEG-encoded at a bounded width (for the HTTP preview and the MQTT camera).
Photos (`fer-edge predict`, `POST /predict`) are drawn the same way."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.records import State

COLOURS: dict[str, tuple[int, int, int]] = {  # BGR, the same hues as the page
    "angry": (60, 60, 220), "disgust": (60, 150, 60), "fear": (160, 70, 150), "happy": (40, 190, 240),
    "sad": (200, 120, 40), "surprise": (40, 130, 250), "neutral": (170, 170, 170),
}
GREY = (200, 200, 200)


def annotate(gray: np.ndarray, state: State, labels: tuple[str, ...], max_width: int = 640) -> np.ndarray:
    """A BGR copy of the frame, scaled to at most `max_width`, with the state's faces drawn on it."""
    scale = min(1.0, max_width / gray.shape[1])
    img = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    for face in state.faces:
        draw_face(img, tuple(round(v * scale) for v in face.box),
                  f"#{face.face_id} {face.emotion or '...'} {face.confidence:.0%}", face.emotion, face.probs, labels)
    return img


def draw_face(img: np.ndarray, box: tuple[int, int, int, int], text: str, emotion: str | None,
              probs: Sequence[float], labels: Sequence[str]) -> None:
    """One face, in place: its box in its emotion's colour, `text` on a tab of that colour above it
    (inside the box where the image has no room above), and a bar per class under it. Lines and
    type grow with the image, so a large photo shown small still reads."""
    x, y, w, h = box
    colour = COLOURS.get(emotion or "", GREY)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, max(0.5, img.shape[1] / 1600)
    thick = max(1, round(img.shape[1] / 400))
    cv2.rectangle(img, (x, y), (x + w, y + h), colour, thick + 1)
    weight = max(1, round(size * 2))
    (tw, th), base = cv2.getTextSize(text, font, size, weight)
    tab = th + base + 4
    top = y - tab if y >= tab else y
    cv2.rectangle(img, (x, top), (x + tw + 6, top + tab), colour, -1)
    cv2.putText(img, text, (x + 3, top + th + 2), font, size, (0, 0, 0), weight, cv2.LINE_AA)
    bar_h = max(3, h // 20)
    for i, (label, p) in enumerate(zip(labels, probs)):
        bar_top = y + h + 3 + i * (bar_h + 1)
        if bar_top + bar_h >= img.shape[0]:
            break
        cv2.rectangle(img, (x, bar_top), (x + max(1, round(w * p)), bar_top + bar_h), COLOURS.get(label, GREY), -1)


def to_jpeg(img: np.ndarray, quality: int = 80) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""
