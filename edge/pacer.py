"""The FPS budget: which frames to process, and on which of them each kind of face search runs."""

from __future__ import annotations

from collections import deque


class Pacer:
    """Processes at most `fps` frames a second and spreads the face searches over them.

    Frames beyond that rate are skipped (and counted). The full-frame search runs beside
    the loop every `full_every` processed frames, twice as often with no face tracked (`search_due`);
    with no face tracked, the loop's own quick search runs as often as fits a quarter of the frame
    budget (`quick_due`). Which known faces are re-detected on a frame is `FaceSchedule`'s.

    Load shedding (`shed`): when over its last WINDOW processed frames the loop ran below SHED_BELOW of
    the target while the source offered frames it had no time for (the grabber dropped some), the
    board cannot hold the target; `stretch` becomes 2, which halves how often the searches run (the
    full search here, each face's re-detection in `FaceSchedule`). It is tried back at 1 after
    SHED_HOLD frames that hold the target without a drop.
    """

    BURST = 2.0  # frames of credit a stall can build up
    WINDOW = 30  # frames over which the source's own rate and the processed rate are measured
    SHED_BELOW = 0.97  # of the target rate, with frames dropped: the loop cannot hold the target
    SHED_HOLD = 300  # processed frames at stretch 2, holding the target, before it is tried at 1 again

    def __init__(self, fps: float, full_every: int, shed: bool = True):
        self.period = 1.0 / fps if fps > 0 else 0.0
        self.full_every = full_every
        self.shed = shed and fps > 0  # as fast as possible is always fully busy: nothing to shed for
        self.skipped = 0
        self.shed_frames = 0  # processed frames on which the load was being shed
        self.stretch = 1  # how many times less often than configured the searches run
        self._done: deque[tuple[float, int]] = deque(maxlen=self.WINDOW)  # (capture ts, grabber drops so far)
        self._held = 0  # processed frames at stretch 2 that held the target
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
        if self._since_search >= self.stretch * (self.full_every if tracking else max(1, self.full_every // 2)):
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

    def done(self, ts: float, dropped: int) -> None:
        """A processed frame, captured at `ts`, and the grabber's count of dropped frames after it:
        updates the processed rate and whether to shed load (`stretch`)."""
        self._done.append((ts, dropped))
        self.shed_frames += self.stretch > 1
        if not self.shed or len(self._done) < self.WINDOW:
            return
        behind = self._done[-1][1] > self._done[0][1] and self.rate < self.SHED_BELOW / self.period
        if behind:
            self.stretch, self._held = 2, 0
        elif self.stretch > 1:
            self._held = self._held + 1 if self.rate >= self.SHED_BELOW / self.period else 0
            if self._held >= self.SHED_HOLD:
                self.stretch = 1
                self._done.clear()

    @property
    def rate(self) -> float:
        """Processed frames a second over the last WINDOW (by capture time); the target until measured."""
        if len(self._done) >= 2 and self._done[-1][0] > self._done[0][0]:
            return (len(self._done) - 1) / (self._done[-1][0] - self._done[0][0])
        return 1.0 / self.period if self.period else 0.0
