"""Plain records that flow between pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.mood import room_mood

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # gray uint8 (H, W)
    index: int  # position in the source (frames read, dropped ones included)
    ts: float  # capture time, time.monotonic()
    wall: float  # capture time, time.time()


@dataclass(frozen=True)
class Event:
    """A tracked face's emotion changed (or was first established)."""

    face_id: int
    emotion: str
    previous: str | None
    confidence: float
    scores: dict[str, float]
    box: Box
    ts: float  # wall-clock capture time of the frame
    capture_ts: float  # monotonic capture time, for latency


@dataclass
class FaceState:
    face_id: int
    emotion: str | None
    confidence: float
    box: Box
    mood: float = 0.0  # expected valence, -1..1 (edge/mood.py)
    probs: tuple[float, ...] = ()  # smoothed class probabilities, in the model's label order


@dataclass
class State:
    faces: list[FaceState] = field(default_factory=list)
    camera: str = "ok"  # "lost" while the source is being reopened (and no faces are known)

    @property
    def face_count(self) -> int:
        return len(self.faces)

    @property
    def dominant(self) -> str | None:
        """The emotion with the highest summed confidence over the faces that have one."""
        totals: dict[str, float] = {}
        for f in self.faces:
            if f.emotion is not None:
                totals[f.emotion] = totals.get(f.emotion, 0.0) + f.confidence
        return max(totals, key=totals.get) if totals else None

    @property
    def mood(self) -> int | None:
        return room_mood([f.mood for f in self.faces])

    def key(self) -> tuple:
        """What a state change is judged on: faces, their emotions and the mood in steps of 10, not
        boxes or scores."""
        mood = self.mood
        return (self.camera, None if mood is None else round(mood / 10), *((f.face_id, f.emotion) for f in self.faces))

    def to_dict(self) -> dict:
        return {"camera": self.camera, "face_count": self.face_count, "dominant": self.dominant, "mood": self.mood,
                "faces": [{"id": f.face_id, "emotion": f.emotion, "confidence": round(f.confidence, 4),
                           "mood": round(100 * f.mood), "scores": [round(p, 4) for p in f.probs],
                           "box": list(f.box)} for f in self.faces]}
