"""Face tracks across frames: stable ids, smoothed probabilities, hysteresis, change events."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.config import TrackerConfig
from edge.detector import iou
from edge.mood import face_mood
from edge.records import Box, Event, FaceState, State
from edge.visits import Visit


@dataclass
class Track:
    face_id: int
    box: Box
    last_seen: float  # when a detection last found it
    first_seen: float  # when it was first found
    probs: np.ndarray | None = None  # smoothed class probabilities; None until first scored
    scored: float = -math.inf  # when its probabilities were last folded in
    scores: int = 0  # how many were folded in
    missed: bool = False  # the last search for it did not find it: not scored until found again
    emotion: str | None = None
    visit: Visit | None = None  # what it did so far; from its first score


class Tracker:
    """Detections and scores come separately: `observe` folds in where faces were found (the faces
    searched for on this frame, and new ones), `score` their class probabilities, for any subset of
    the found faces; so a frame may re-detect some faces and classify others."""

    def __init__(self, cfg: TrackerConfig, labels: tuple[str, ...]):
        self.cfg, self.labels = cfg, labels
        self.tracks: list[Track] = []
        self.ended: list[Track] = []  # tracks that left after an event, until `pop_ended` takes them
        self._next_id = 1

    def found(self) -> list[Track]:
        """The tracks whose last search found them: the faces that may be scored at their boxes."""
        return [t for t in self.tracks if not t.missed]

    def boxes(self) -> list[Box]:
        return [t.box for t in self.tracks]

    def _match(self, boxes: list[Box]) -> dict[int, Track]:
        """Greedy association, best IoU first; a detection can continue at most one track."""
        pairs = sorted(((iou(b, t.box), i, t) for i, b in enumerate(boxes) for t in self.tracks),
                       key=lambda p: p[0], reverse=True)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for score, i, track in pairs:
            if score < self.cfg.iou_match:
                break
            if i not in matched and track.face_id not in used:
                matched[i] = track
                used.add(track.face_id)
        return matched

    def observe(self, boxes: list[Box], searched: list[Track], ts: float) -> list[Track]:
        """Fold in the faces a detection found at `ts`: `boxes` continue the tracks they overlap or
        start new ones (returned, not yet scored); a `searched` track none of them continues is
        missed. Tracks unseen for `expire_s` are dropped."""
        matched = self._match(boxes)
        for track in searched:
            track.missed = True
        new = []
        for i, box in enumerate(boxes):
            track = matched.get(i)
            if track is None:
                track = Track(self._next_id, box, ts, ts)
                self._next_id += 1
                self.tracks.append(track)
                new.append(track)
            track.box, track.last_seen, track.missed = box, ts, False
        live = [t for t in self.tracks if ts - t.last_seen <= self.cfg.expire_s]
        if len(live) < len(self.tracks):
            self._end([t for t in self.tracks if ts - t.last_seen > self.cfg.expire_s])
        self.tracks = live
        return new

    def _end(self, tracks: list[Track]) -> None:
        self.ended += [t for t in tracks if t.visit is not None and t.visit.events]

    def end_all(self) -> None:
        """Every face leaves now (the camera was lost, or the daemon stops): their visits end."""
        self._end(self.tracks)
        self.tracks = []

    def pop_ended(self) -> list[Track]:
        """The tracks that left since the last call, each with a visit that published an emotion."""
        ended, self.ended = self.ended, []
        return ended

    def score(self, tracks: list[Track], probs: np.ndarray, ts: float, wall: float) -> list[Event]:
        """Fold in the class probabilities of `tracks`, scored at their boxes at `ts`; return the
        emotion-change events."""
        events = []
        for track, p in zip(tracks, probs):
            since, before = track.scored, track.emotion
            self._fold(track, p, ts)
            event = self._decide(track, ts, wall)
            if track.visit is None:
                track.visit = Visit(start=wall - (ts - track.first_seen))
            track.visit.add(ts - since if since > -math.inf else 0.0, wall, before, face_mood(track.probs, self.labels))
            if event:
                track.visit.event(wall, event.emotion)
                events.append(event)
        return events

    def _fold(self, track: Track, probs: np.ndarray, ts: float) -> None:
        """The EMA step: older scores fade with a time constant of `smoothing_s`; a new track's first
        scores are averaged evenly (weight 1/n) until the EMA's own weight is the larger, so its first
        frame counts no more than the ones after it."""
        dt = max(ts - track.scored, 0.0)
        alpha = 1.0 if self.cfg.smoothing_s == 0 else 1 - math.exp(-dt / self.cfg.smoothing_s)
        track.scores += 1
        alpha = max(alpha, 1 / track.scores)
        track.probs = probs.astype(np.float64) if track.probs is None else (1 - alpha) * track.probs + alpha * probs
        track.scored = ts

    def _decide(self, track: Track, ts: float, wall: float) -> Event | None:
        top = int(track.probs.argmax())
        label, score = self.labels[top], float(track.probs[top])
        if label == track.emotion or score < self.cfg.min_confidence:
            return None
        if track.emotion is None:  # a new face: enough scores; within the wait, scores spanning
            age = ts - track.first_seen  # `smoothing_s` and a clear lead; after the wait, the leader
            runner_up = float(np.partition(track.probs, -2)[-2])
            if track.scores < self.cfg.first_event_scores or age < self.cfg.first_event_wait_s and (
                    age < self.cfg.smoothing_s or score - runner_up < self.cfg.hysteresis):
                return None
        elif score - float(track.probs[self.labels.index(track.emotion)]) < self.cfg.hysteresis:
            return None
        previous, track.emotion = track.emotion, label
        return Event(track.face_id, label, previous, score,
                     {k: round(float(v), 4) for k, v in zip(self.labels, track.probs)},
                     track.box, wall, ts)

    def state(self) -> State:
        return State([FaceState(t.face_id, t.emotion, self._confidence(t), t.box, face_mood(t.probs, self.labels),
                                tuple(t.probs.tolist())) for t in self.tracks if t.probs is not None])

    def _confidence(self, track: Track) -> float:
        """The smoothed probability of the face's published emotion, which hysteresis may hold while
        another class leads by less than its margin; the leader's before the first event."""
        top = track.probs.argmax() if track.emotion is None else self.labels.index(track.emotion)
        return float(track.probs[top])
