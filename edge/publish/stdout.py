"""JSON lines on stdout: `{"type": "event", ...}` and `{"type": "state", ...}`."""

from __future__ import annotations

import json
import sys


class StdoutPublisher:
    def __init__(self, stream=None):
        self._out = stream or sys.stdout

    def start(self) -> None:
        pass

    def _write(self, kind: str, payload: dict) -> None:
        self._out.write(json.dumps({"type": kind, **payload}) + "\n")
        self._out.flush()

    def event(self, payload: dict) -> None:
        self._write("event", payload)

    def state(self, payload: dict) -> None:
        self._write("state", payload)

    def stats(self, payload: dict) -> None:
        pass

    def close(self) -> None:
        pass
