"""The JSON payloads of events and state (schemas in schemas/)."""

from __future__ import annotations

from datetime import datetime, timezone

from edge.records import Event, State


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")


def event_payload(event: Event, seq: int, device_id: str) -> dict:
    return {"seq": seq, "device_id": device_id, "ts": iso(event.ts), "face_id": event.face_id,
            "emotion": event.emotion, "previous": event.previous, "confidence": round(event.confidence, 4),
            "scores": event.scores, "box": list(event.box)}


def state_payload(state: State, device_id: str, wall: float) -> dict:
    return {"device_id": device_id, "ts": iso(wall), **state.to_dict()}
