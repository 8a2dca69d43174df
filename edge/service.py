"""The daemon's lifecycle: build the stages, signals, systemd notify, reload, failure handling."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge.classifier import Classifier, ModelError
from edge.config import Config, ConfigError, load_config, validate
from edge.detector import DetectorError, FaceDetector
from edge.history import HistoryStore
from edge.metrics import Metrics
from edge.notify import Notifier
from edge.pipeline import Pipeline
from edge.publish import HTTPServerError, Publisher
from edge.publish.stdout import StdoutPublisher
from edge.sources import Grabber, SourceError, open_source

log = logging.getLogger("fer-edge")

SETUP_ERRORS = (ConfigError, ModelError, DetectorError, SourceError, HTTPServerError)


@dataclass
class RunOptions:
    config_path: Path | None
    overrides: dict = field(default_factory=dict)  # dotted key -> value, applied after the file
    print_events: bool = False
    max_frames: int | None = None
    duration: float | None = None


def resolve_config(opts: RunOptions) -> Config:
    """The file's config with CLI/environment overrides applied, validated."""
    cfg = load_config(opts.config_path)
    data = cfg.model_dump()
    for dotted, value in opts.overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return validate(data, "command line") if opts.overrides else cfg


def make_publishers(cfg: Config, print_events: bool, labels: tuple[str, ...],
                    on_stdout_closed: Callable[[], None] | None = None, http: bool = True,
                    history: HistoryStore | None = None, metrics: Metrics | None = None) -> list[Publisher]:
    publishers: list[Publisher] = [StdoutPublisher(on_closed=on_stdout_closed)] if print_events else []
    if cfg.mqtt.enabled:
        from edge.publish.mqtt import MQTTPublisher

        publishers.append(MQTTPublisher(cfg.mqtt, labels))
    if cfg.http.enabled and http:
        from edge.publish.http import HTTPPublisher  # aiohttp is imported only when the page is on

        def predictor() -> tuple[Classifier, FaceDetector]:  # POST /predict's own interpreter
            return Classifier(cfg.model.path, num_threads=1), FaceDetector(cfg.detector)

        publishers.append(HTTPPublisher(cfg, labels, predictor, history, metrics))
    return publishers


class Daemon:
    def __init__(self, opts: RunOptions, notifier: Notifier | None = None):
        self.opts = opts
        self.notifier = notifier or Notifier()
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.metrics = Metrics()  # for the daemon's life: counters survive a reload
        self.history: HistoryStore | None = None  # opened in run(), kept across reloads

    def _signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        signal.signal(signal.SIGHUP, lambda *_: (self.reload.set(), self.stop.set()))

    def run(self) -> int:
        """Run until stopped; 0 on a clean stop, 1 after repeated failures. Setup errors raise."""
        self._signals()  # first: a stop during setup (once MQTT says online) must still end cleanly
        cfg = resolve_config(self.opts)
        logging.getLogger().setLevel(cfg.logging.level)
        classifier = Classifier(cfg.model.path, num_threads=cfg.model.num_threads)
        detector = FaceDetector(cfg.detector)
        self.history = HistoryStore(cfg.history) if cfg.history.enabled else None
        publishers = make_publishers(cfg, self.opts.print_events, classifier.labels, self.stop.set,
                                     history=self.history, metrics=self.metrics)
        grabber = self._start_grabber(cfg)  # first: a missing camera is the likeliest error
        started: list[Publisher] = []
        try:
            for p in publishers:
                p.start()
                started.append(p)
        except SETUP_ERRORS:  # e.g. the page's port is taken: nothing keeps running behind the error
            for p in started:
                p.close()
            grabber.stop()
            raise
        if self.history:
            self.history.start()
        pipeline = Pipeline(cfg, grabber, detector, classifier, publishers, self.history, self.metrics)
        pipeline.publish_starting()
        log.info("running: source %s, model %s, %s fps target%s", cfg.source.uri, cfg.model.path,
                 cfg.pacer.fps or "max", ", MQTT " + cfg.mqtt.host if cfg.mqtt.enabled else "")
        self.notifier.ready(f"running, source {cfg.source.uri}")
        try:
            while True:
                why = self._loop(pipeline)
                if why != "reload":
                    break
                pipeline = self._reload(pipeline) or pipeline
        finally:
            self.notifier.stopping()
            pipeline.close()
            pipeline.grabber.stop()
            for p in pipeline.publishers:
                p.close()
            if self.history:
                self.history.close()
        log.info("stopped (%s) after %d frames, %d events", why, pipeline.stats.processed, pipeline.stats.events)
        return 1 if why == "failed" else 0

    def _start_grabber(self, cfg: Config) -> Grabber:
        source = open_source(cfg.source)
        grabber = Grabber(source, realtime=cfg.source.realtime, backoff=cfg.source.reopen_backoff_s)
        grabber.start()
        return grabber

    def _loop(self, pipeline: Pipeline) -> str:
        failures = 0
        next_status = 0.0
        max_failures = pipeline.cfg.service.max_failures

        def tick() -> None:
            nonlocal next_status
            self.notifier.watchdog()
            now = time.monotonic()
            if now >= next_status:
                next_status = now + pipeline.cfg.service.status_interval_s
                camera = "" if pipeline.grabber.connected else ", camera lost, reopening"
                self.notifier.status(f"{pipeline.stats.fps():.1f} fps, {len(pipeline.tracker.tracks)} face(s){camera}")

        while True:
            try:
                why = pipeline.run(self.stop, self.opts.max_frames, self.opts.duration, tick)
            except Exception as e:  # one bad frame must not kill the daemon; many in a row do
                failures += 1
                log.error("frame loop error (%d/%d): %s: %s", failures, max_failures, type(e).__name__, e)
                if failures >= max_failures:
                    return "failed"
                continue
            if why == "stopped" and self.reload.is_set():
                return "reload"
            return why

    def _reload(self, pipeline: Pipeline) -> Pipeline | None:
        """Apply a changed config on SIGHUP; keep the old pipeline if the new config is bad."""
        self.reload.clear()
        self.stop.clear()
        self.notifier.reloading()
        try:
            cfg = resolve_config(self.opts)
            classifier = pipeline.classifier
            if cfg.model != pipeline.cfg.model:
                classifier = Classifier(cfg.model.path, num_threads=cfg.model.num_threads)
            detector = FaceDetector(cfg.detector)
            grabber = pipeline.grabber
            if cfg.source != pipeline.cfg.source:
                grabber = self._start_grabber(cfg)
                pipeline.grabber.stop()
        except SETUP_ERRORS as e:
            log.error("reload rejected, keeping the running config: %s", e)
            self.notifier.ready("running (reload rejected)")
            return None
        logging.getLogger().setLevel(cfg.logging.level)
        if cfg.history != pipeline.cfg.history:
            log.warning("history: a changed history section takes effect at the next restart")
        pipeline.close()  # first: the faces' visits end through the publishers they began on
        publishers = pipeline.publishers
        if (cfg.mqtt, cfg.http) != (pipeline.cfg.mqtt, pipeline.cfg.http):
            for p in publishers:
                p.close()
            publishers = make_publishers(cfg, self.opts.print_events, classifier.labels, self.stop.set,
                                         history=self.history, metrics=self.metrics)
            for p in publishers:
                p.start()
        new = Pipeline(cfg, grabber, detector, classifier, publishers, self.history, self.metrics)
        new.seq = pipeline.seq
        log.info("config reloaded")
        self.notifier.ready("running (config reloaded)")
        return new
