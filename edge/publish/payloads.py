"""The JSON payloads of events and state (schemas in schemas/)."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import cv2
import numpy as np

from edge.classifier import crop_faces
from edge.records import Box, Event, State


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")


def event_payload(event: Event, seq: int, device_id: str) -> dict:
    return {"seq": seq, "device_id": device_id, "ts": iso(event.ts), "face_id": event.face_id,
            "emotion": event.emotion, "previous": event.previous, "confidence": round(event.confidence, 4),
            "scores": event.scores, "box": list(event.box)}


def state_payload(state: State, device_id: str, wall: float, visits_today: int) -> dict:
    return {"device_id": device_id, "ts": iso(wall), **state.to_dict(), "visits_today": visits_today}


def face_jpeg(gray: np.ndarray, box: Box, size: int = 96) -> str:
    """The face crop as a base64 JPEG (only when `mqtt.publish_images` is on)."""
    ok, jpg = cv2.imencode(".jpg", crop_faces(gray, [box], (size, size))[0], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(jpg.tobytes()).decode() if ok else ""
