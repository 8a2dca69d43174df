"""JSON lines on stdout: `{"type": "event", ...}`, `{"type": "state", ...}` and `{"type": "visit", ...}`."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)


def detach_stdout() -> None:
    """Point fd 1 at /dev/null once its reader has gone, so later writes and the exit-time flush are quiet."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


class StdoutPublisher:
    """Writes each event and state change as one JSON line; `on_closed` runs once if the reader of
    stdout goes away (`fer-edge --print | head`), after which nothing more is written."""

    def __init__(self, stream=None, on_closed: Callable[[], None] | None = None):
        self._out = stream or sys.stdout
        self._on_closed = on_closed
        self._closed = False

    def start(self) -> None:
        pass

    def _write(self, kind: str, payload: dict) -> None:
        if self._closed:
            return
        try:
            self._out.write(json.dumps({"type": kind, **payload}) + "\n")
            self._out.flush()
        except BrokenPipeError:
            self._closed = True
            detach_stdout()
            log.info("stdout closed by its reader; no more JSON lines")
            if self._on_closed:
                self._on_closed()

    def event(self, payload: dict) -> None:
        self._write("event", payload)

    def state(self, payload: dict) -> None:
        self._write("state", payload)

    def visit(self, payload: dict) -> None:
        self._write("visit", payload)

    def stats(self, payload: dict) -> None:
        pass

    def image(self, jpeg: bytes) -> None:
        pass

    def frame(self, image, state) -> None:
        pass

    def status(self) -> dict:
        return {}

    def close(self) -> None:
        pass
