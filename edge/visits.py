"""Visits: what one tracked face did between arriving and leaving, summed as it happens.

A track's `Visit` is fed on every scoring step (O(1): the seconds since the last step go to the
emotion published until then, and to the local hour they fall in). When the track ends, `summary`
is the `<base>/visit` payload (schemas/visit.schema.json) and its `hours` the face's part of the
hourly roll-up the history store keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edge.publish.payloads import iso


def hour_start(wall: float) -> float:
    """The start of the local hour that `wall` falls in (epoch seconds; any UTC offset)."""
    return datetime.fromtimestamp(wall).replace(minute=0, second=0, microsecond=0).timestamp()


def day_start(wall: float) -> float:
    """The start of the local day that `wall` falls in (epoch seconds)."""
    return datetime.fromtimestamp(wall).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_hour(start: float) -> float:
    """The start of the local hour after the one starting at `start`."""
    return hour_start(start + 3601)


def next_day(start: float) -> float:
    """The start of the local day after the one starting at `start` (23 to 25 hours on DST days)."""
    return day_start(start + 36 * 3600)


@dataclass
class Hour:
    """One face's part of one local hour: seconds in each published emotion, and its mood."""

    emotion_s: dict[str, float] = field(default_factory=dict)
    mood_s: float = 0.0  # seconds the mood was integrated over
    mood_sum: float = 0.0  # mood (-1..1) x seconds


@dataclass
class Visit:
    start: float  # wall clock, first seen
    end: float = 0.0  # wall clock, last seen
    emotion_s: dict[str, float] = field(default_factory=dict)
    mood_s: float = 0.0
    mood_sum: float = 0.0
    mood_min: float | None = None
    events: list[tuple[float, str]] = field(default_factory=list)  # (wall, emotion) as published
    hours: dict[float, Hour] = field(default_factory=dict)
    _hour: tuple[float, float] = (0.0, 0.0)  # the current hour's [start, end), so a step rarely needs datetime

    def add(self, seconds: float, wall: float, emotion: str | None, mood: float) -> None:
        """Fold in `seconds` ending at `wall`, spent in `emotion` (None: not yet published) at `mood`."""
        self.end = wall
        if seconds <= 0:
            self.mood_min = mood if self.mood_min is None else min(self.mood_min, mood)
            return
        if not self._hour[0] <= wall < self._hour[1]:
            h0 = hour_start(wall)
            self._hour = (h0, next_hour(h0))
        hour = self.hours.setdefault(self._hour[0], Hour())
        for acc in (self, hour):
            if emotion is not None:
                acc.emotion_s[emotion] = acc.emotion_s.get(emotion, 0.0) + seconds
            acc.mood_s += seconds
            acc.mood_sum += mood * seconds
        self.mood_min = mood if self.mood_min is None else min(self.mood_min, mood)

    def event(self, wall: float, emotion: str) -> None:
        self.events.append((wall, emotion))

    def summary(self, face_id: int, device_id: str) -> dict:
        """The visit payload: its span, the share of its published time in each emotion, its mood."""
        total = sum(self.emotion_s.values())
        shares = {k: round(v / total, 4) for k, v in sorted(self.emotion_s.items(), key=lambda kv: -kv[1])} if total else {}
        return {
            "device_id": device_id, "face_id": face_id, "start": iso(self.start), "end": iso(self.end),
            "duration_s": round(self.end - self.start, 2),
            "dominant": next(iter(shares), None),
            "emotions": shares,
            "mood_mean": round(100 * self.mood_sum / self.mood_s) if self.mood_s else None,
            "mood_min": round(100 * self.mood_min) if self.mood_min is not None else None,
            "events": [{"ts": iso(t), "emotion": e} for t, e in self.events],
        }
