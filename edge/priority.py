"""Thread priorities: the frame loop first, the threads that feed or help it after it."""

from __future__ import annotations

import os
import threading


def lower_this_thread(by: int) -> None:
    """Make the calling thread yield to the frame loop when they share a core: its nice value goes up
    `by` (Linux: per-thread); a no-op where the OS has no per-thread priority."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + by)
    except (AttributeError, OSError):
        pass
