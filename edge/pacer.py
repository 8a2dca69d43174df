"""The FPS budget: which frames to process, and on which of them each kind of face search runs."""

from __future__ import annotations

from collections import deque


class Pacer:
    """Processes at most `fps` frames a second and spreads the face searches over them.

    Frames beyond that rate are skipped (and counted). The full-frame search runs beside
    the loop every `full_every` processed frames, twice as often with no face tracked (`search_due`);
    with no face tracked, the loop's own quick search runs as often as fits a quarter of the frame
    budget (`quick_due`). Which known faces are re-detected on a frame is `FaceSchedule`'s.
    """

    BURST = 2.0  # frames of credit a stall can build up
    WINDOW = 30  # frames over which the source's own rate is measured

    def __init__(self, fps: float, full_every: int):
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.full_every = full_every
        self.skipped = 0
        self._credit = 1.0  # frames that may be processed now
        self._recent: deque[float] = deque(maxlen=self.WINDOW)  # capture times of the source's last frames
        self._since_search = full_every  # the first frame starts a full search
        self._since_quick = full_every
        self._quick_cost = 0.0

    def take(self, ts: float) -> bool:
        """Whether to process the frame captured at `ts` (monotonic seconds): a token bucket that earns
        one frame per period, holds up to BURST, and lets a frame a quarter period early (capture
        jitter) borrow; so frames that arrive bunched after a stall are processed, not skipped. A source
        no faster than the target (within 10 %, over its last WINDOW frames) is not paced at all: its
        capture jitter would otherwise cost frames. Its first frames are always taken."""
        if not self.period:
            return True
        if self._recent:
            self._credit = min(self.BURST, self._credit + (ts - self._recent[-1]) / self.period)
        self._recent.append(ts)
        n, span = len(self._recent), self._recent[-1] - self._recent[0]
        if n < 3 or span >= 0.9 * self.period * (n - 1):  # its first frames, or a source no faster than the target
            self._credit = max(self._credit - 1.0, 0.0)
            return True
        if self._credit < 0.75:
            self.skipped += 1
            return False
        self._credit -= 1.0
        return True

    def search_due(self, tracking: bool) -> bool:
        """Called once per processed frame: whether this one starts a full-frame search; every
        `full_every` frames while faces are tracked, twice as often while none is."""
        self._since_search += 1
        if self._since_search >= (self.full_every if tracking else max(1, self.full_every // 2)):
            self._since_search = 0
            return True
        return False

    def quick_due(self) -> bool:
        """With no face tracked: whether the loop searches this frame itself, as often as fits a
        quarter of the frame budget (every frame at max rate) and at least every `full_every // 2`."""
        self._since_quick += 1
        interval = max(1, self.full_every // 2)
        if self.period and self._quick_cost:
            interval = min(interval, max(1, round(self._quick_cost / (0.25 * self.period))))
        if self._since_quick >= interval:
            self._since_quick = 0
            return True
        return False

    def record_quick_cost(self, seconds: float) -> None:
        self._quick_cost = seconds if not self._quick_cost else 0.8 * self._quick_cost + 0.2 * seconds
