"""The FPS budget: which frames to process, and how often a full-frame detection fits."""

from __future__ import annotations


class Pacer:
    """Processes at most `fps` frames a second and spreads full detections to fit the budget.

    Frames that arrive before the next slot are skipped (and counted). Full detection runs every
    `full_every` frames while faces are tracked, more often while none is (`full_detection_due`).
    """

    def __init__(self, fps: float, full_every: int):
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.full_every = full_every
        self.skipped = 0
        self._next_due = 0.0
        self._since_full = full_every  # the first frame gets a full detection
        self._full_cost = 0.0

    def take(self, ts: float) -> bool:
        """Whether to process the frame captured at `ts` (monotonic seconds)."""
        if not self.period:
            return True
        if ts + self.period / 4 < self._next_due:  # a frame a little early (capture jitter) still counts
            self.skipped += 1
            return False
        # The next slot follows this one; if we fell behind, restart the grid from now.
        self._next_due = max(self._next_due + self.period, ts + self.period / 2)
        return True

    def full_detection_due(self, tracking: bool) -> bool:
        """While faces are tracked (re-detected cheaply near their boxes), a full-frame search for new
        faces runs every `full_every` frames; with none tracked, as often as fits a quarter of the
        frame budget, and at least every `full_every // 2` frames."""
        self._since_full += 1
        interval = self.full_every
        if not tracking:
            interval = max(1, self.full_every // 2)
            if self.period and self._full_cost:
                interval = min(interval, max(1, round(self._full_cost / (0.25 * self.period))))
        if self._since_full >= interval:
            self._since_full = 0
            return True
        return False

    def redetect_due(self, every: int) -> bool:
        """Whether known faces are re-detected on this frame (every `every`-th frame between full searches)."""
        return self._since_full % every == 0

    def record_full_cost(self, seconds: float) -> None:
        self._full_cost = seconds if not self._full_cost else 0.8 * self._full_cost + 0.2 * seconds
