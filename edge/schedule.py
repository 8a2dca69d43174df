"""Which known faces a frame re-detects and which it classifies: each face's work spread over frames,
so that a group costs the same on every frame instead of all of it on one."""

from __future__ import annotations

import math

from edge.tracker import Track


class FaceSchedule:
    """Each face has a slot (the least used when it is first seen): frame k re-detects the faces of
    slot k mod slots, so every face is re-detected once in `slots` frames and a frame re-detects about
    1 / slots of the group. slots = `redetect_every`, or for a group of more than `redetect_every` x
    `redetect_per_frame` faces, faces / `redetect_per_frame` (nine faces at 1.5: every 6th frame).

    Under load (`stretch` 2) every face is re-detected half as often.

    Classification: a frame scores its new faces and, of the others, the ones scored longest ago, as
    many as keep every face scored at least `classify_hz` times a second at the `fps` frames a second
    processed: faces x classify_hz / fps a frame on average, at least one (one face: every frame; four
    at 10 Hz and 30 FPS: 1, 1, 2, 1, 1, 2, ...). `classify_hz` 0, or `fps` 0 (as fast as possible),
    scores every face on every frame."""

    def __init__(self, redetect_every: int, classify_hz: float, redetect_per_frame: float = 0.0):
        self.every, self.per_frame, self.hz = redetect_every, redetect_per_frame, classify_hz
        self.frame = -1
        self._owed = 0.0  # classifications owed by the frames so far, less those done
        self._slot: dict[int, int] = {}  # face id -> slot
        self._slots = redetect_every

    def redetect(self, tracks: list[Track], stretch: int = 1) -> list[Track]:
        """Called once per processed frame: the tracks to search for again on it."""
        self.frame += 1
        slots = self.every
        if self.per_frame and len(tracks) > self.every * self.per_frame:
            slots = math.ceil(len(tracks) / self.per_frame)
        slots *= stretch
        if slots != self._slots:  # more or fewer slots: the group spread evenly over them afresh
            self._slots = slots
            self._slot = {t.face_id: (self.frame + round(k * slots / len(tracks))) % slots
                          for k, t in enumerate(tracks)}
        alive = {t.face_id for t in tracks}
        self._slot = {i: s for i, s in self._slot.items() if i in alive}
        for t in tracks:
            if t.face_id not in self._slot:
                used = [0] * slots
                for s in self._slot.values():
                    used[s] += 1
                # the least used slot, and among those the next to come, so a new face is searched soon
                self._slot[t.face_id] = min(range(slots), key=lambda s: (used[s], (s - self.frame) % slots))
        return [t for t in tracks if self._slot[t.face_id] == self.frame % slots]

    def classify(self, found: list[Track], new: list[Track], fps: float) -> list[Track]:
        """Of the found tracks, those to score on this frame, processed at `fps`: the `new` ones (not
        yet scored) first."""
        share = self.hz / fps if self.hz and fps else 1.0  # of the faces, scored a frame
        if share >= 1.0:
            return found
        self._owed += max(1.0, len(found) * share) if found else 0.0
        quota = max(len(new), math.floor(self._owed + 1e-9))
        self._owed = max(0.0, self._owed - quota)
        rest = sorted((t for t in found if t.probs is not None), key=lambda t: t.scored)
        return (new + rest)[:quota]
