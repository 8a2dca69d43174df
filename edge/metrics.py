"""`GET /metrics`: the daemon in Prometheus' text format, from prometheus_client.

Latencies are histograms observed as frames and events pass (one bucket search each); everything
that is already counted elsewhere (frames, skips, the MQTT queue, the camera) is read when a scrape
comes, from a callable the running pipeline binds, so the frame loop does no extra work for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.stats import STAGES

STAGE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.25, 0.5, 1.0)
EVENT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# name -> (kind, help) of what the bound pipeline reports at each scrape
LIVE = {
    "frames_processed": ("counter", "Frames run through detection and classification"),
    "frames_skipped": ("counter", "Frames not processed: skipped by the pacer or dropped by the grabber"),
    "events_published": ("counter", "Emotion-change events published"),
    "visits_published": ("counter", "Visits published (a tracked face that left)"),
    "mqtt_reconnects": ("counter", "Times the MQTT connection was made again after a loss"),
    "events_dropped": ("counter", "Events and visits dropped from a full offline buffer"),
    "camera_reconnects": ("counter", "Times a lost camera was reopened"),
    "faces_in_view": ("gauge", "Faces tracked now"),
    "buffer_depth": ("gauge", "Events and visits waiting for the MQTT broker"),
    "camera_up": ("gauge", "1 while the camera delivers frames, 0 while it is starting or lost"),
    "cpu_temperature_celsius": ("gauge", "CPU temperature (absent where the board does not report one)"),
}


class _Live(Collector):
    def __init__(self, metrics: "Metrics"):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        values = self.metrics.live() if self.metrics.live else {}
        for name, (kind, text) in LIVE.items():
            value = values.get(name)
            if value is None:
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"fer_edge_{name}", text, value=float(value))


class Metrics:
    """One registry for the daemon's life (counters survive a config reload)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        stage = Histogram("fer_edge_stage_seconds", "Frame-loop time per stage and frame", ["stage"],
                          buckets=STAGE_BUCKETS, registry=self.registry)
        self._stages = {s: stage.labels(s) for s in STAGES}
        self._event = Histogram("fer_edge_capture_to_event_seconds", "From a frame's capture to its event's "
                                "hand-over to the publishers", buckets=EVENT_BUCKETS, registry=self.registry)
        self.live: Callable[[], dict] | None = None
        self.registry.register(_Live(self))

    def stage(self, name: str, seconds: float) -> None:
        self._stages[name].observe(seconds)

    def event(self, seconds: float) -> None:
        self._event.observe(seconds)

    def bind(self, live: Callable[[], dict]) -> None:
        """What the scrape reads (see LIVE): the running pipeline's counters."""
        self.live = live

    def text(self) -> bytes:
        return generate_latest(self.registry)
