"""Which known faces a frame re-detects and which it classifies: each face's work spread over frames,
so that a group costs the same on every frame instead of all of it on one."""

from __future__ import annotations

import math

from edge.tracker import Track


class FaceSchedule:
    """Each face has a slot, one of `redetect_every` (the least used when it is first seen): frame k
    re-detects the faces of slot k mod `redetect_every`, so every face is re-detected every
    `redetect_every` frames and a frame re-detects about 1 / `redetect_every` of the group.

    Classification: a frame scores its new faces and, of the others, the ones scored longest ago, as
    many as keep every face scored at least `classify_hz` times a second at `fps` frames a second
    (ceil(faces x classify_hz / fps) a frame; one face: every frame). `classify_hz` 0, or `fps` 0
    (as fast as possible), scores every face on every frame."""

    def __init__(self, redetect_every: int, classify_hz: float, fps: float):
        self.slots = redetect_every
        self.share = classify_hz / fps if classify_hz and fps else 1.0  # of the faces, scored a frame
        self.frame = -1
        self._slot: dict[int, int] = {}  # face id -> slot

    def redetect(self, tracks: list[Track]) -> list[Track]:
        """Called once per processed frame: the tracks to search for again on it."""
        self.frame += 1
        alive = {t.face_id for t in tracks}
        self._slot = {i: s for i, s in self._slot.items() if i in alive}
        for t in tracks:
            if t.face_id not in self._slot:
                used = [0] * self.slots
                for s in self._slot.values():
                    used[s] += 1
                # the least used slot, and among those the next to come, so a new face is searched soon
                self._slot[t.face_id] = min(range(self.slots), key=lambda s: (used[s], (s - self.frame - 1) % self.slots))
        now = self.frame % self.slots
        return [t for t in tracks if self._slot[t.face_id] == now]

    def classify(self, found: list[Track], new: list[Track]) -> list[Track]:
        """Of the found tracks, those to score on this frame: the `new` ones (not yet scored) first."""
        if self.share >= 1.0:
            return found
        quota = max(len(new), math.ceil(len(found) * self.share))
        rest = sorted((t for t in found if t.probs is not None), key=lambda t: t.scored)
        return (new + rest)[:quota]
