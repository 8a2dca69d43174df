"""Where events, state and stats go: one small interface; stdout, MQTT and HTTP publishers."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edge.records import State


class Publisher(Protocol):
    def start(self) -> None: ...
    def event(self, payload: dict) -> None: ...
    def state(self, payload: dict) -> None: ...
    def visit(self, payload: dict) -> None: ...  # a tracked face left: its visit summary
    def stats(self, payload: dict) -> None: ...
    def image(self, jpeg: bytes) -> None: ...  # the annotated frame, with mqtt.publish_images
    def frame(self, image: np.ndarray, state: State) -> None: ...  # every processed frame; keep a reference at most
    def status(self) -> dict: ...  # fields this publisher adds to every stats payload
    def close(self) -> None: ...


class HTTPServerError(Exception):
    """The HTTP server cannot start (e.g. the port is taken), with a one-line message."""
