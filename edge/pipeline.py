"""The run loop: latest frame -> pacer -> schedule -> detect -> classify -> track -> publish."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from edge.annotate import annotate, to_jpeg
from edge.classifier import Classifier, crop_faces
from edge.config import Config
from edge.detector import BackgroundSearch, FaceDetector, iou
from edge.history import HistoryStore
from edge.metrics import Metrics
from edge.pacer import Pacer
from edge.publish import Publisher
from edge.publish.payloads import event_payload, face_jpeg, state_payload
from edge.records import Frame, State
from edge.schedule import FaceSchedule
from edge.sources import Grabber
from edge.stats import Stats, cpu_temperature
from edge.tracker import Tracker
from edge.visits import day_start, next_day

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, cfg: Config, grabber: Grabber, detector: FaceDetector, classifier: Classifier,
                 publishers: list[Publisher], history: HistoryStore | None = None, metrics: Metrics | None = None):
        self.cfg, self.grabber, self.detector, self.classifier = cfg, grabber, detector, classifier
        self.publishers, self.history = publishers, history
        self.tracker = Tracker(cfg.tracker, classifier.labels)
        self.search = BackgroundSearch(FaceDetector(cfg.detector))  # a cascade of its own for its thread
        self.pacer = Pacer(cfg.pacer.fps, cfg.detector.full_every, cfg.pacer.shed_load)
        self.schedule = FaceSchedule(cfg.detector.redetect_every, cfg.pacer.classify_hz,
                                     cfg.detector.redetect_per_frame)
        self.stats = Stats(metrics=metrics)
        if metrics:
            metrics.bind(self.live_metrics)
        self.seq = 0
        self._day = (0.0, 0.0)  # the local day visits_today counts, [start, end)
        self.visits_today = 0
        self._state_key: tuple | None = None
        self._camera_lost = False
        self._searched_full = False  # the source's first frame gets a full search in the loop
        self._next_image = 0.0
        self._stats_every = min([cfg.mqtt.stats_interval_s] + [cfg.http.stats_interval_s] * cfg.http.enabled)
        self._next_stats = time.monotonic()  # the first right away: the page and /api/stats have something
        self._warm_up()

    def _warm_up(self) -> None:
        """Run the detectors and the model once on a blank frame, so that the first real frame does not
        pay for the libraries' first-call set-up (allocations, the interpreter's weight packing)."""
        blank = np.zeros((180, 320), np.uint8)
        for detector in (self.detector, self.search.detector):
            detector.detect(blank)
            detector.redetect(blank, [(110, 40, 100, 100)])
        self.detector.detect(blank, quick=True)
        self.classifier.classify(np.zeros((1, *self.classifier.input_size), np.uint8))

    def process(self, frame: Frame) -> int:
        """Run one frame through every stage; returns the number of faces classified on it."""
        c0, t0 = time.thread_time(), time.perf_counter()
        known = self.tracker.tracks
        new = [b for b in self.search.poll() or [] if all(iou(b, t.box) < 0.3 for t in known)]
        search = self.pacer.search_due(bool(known))  # a full-frame search beside the loop, for faces not yet known
        due = self.schedule.redetect(known, self.pacer.stretch)
        searched = len(due) + len(new)
        first = not self._searched_full
        if known or new:  # the faces due on this frame, and new ones, each searched in its own region
            boxes = self.detector.redetect(frame.image, [t.box for t in due] + new) if searched else []
        elif first:  # a source's first frame is searched in full in the loop: a group in view is found at once
            boxes, searched, search = self.detector.detect(frame.image), 1, False
        else:  # nobody tracked: a coarse search in the loop finds a face that comes close at once
            boxes = []
            if self.pacer.quick_due():
                boxes = self.detector.detect(frame.image, quick=True)
                self.pacer.record_quick_cost(time.perf_counter() - t0)
                searched = 1
        self._searched_full = True
        started = self.tracker.observe(boxes, due, frame.ts) if searched else []
        self._publish_visits(frame.wall)
        found = self.tracker.found()
        scored = self.schedule.classify(found, started, self.pacer.rate)
        c1, t1 = time.thread_time(), time.perf_counter()
        faces = crop_faces(frame.image, [t.box for t in scored], self.classifier.input_size,
                           self.cfg.detector.crop_margin)
        t_crop = time.perf_counter()
        probs = self.classifier.classify(faces)
        c2, t2 = time.thread_time(), time.perf_counter()
        events = self.tracker.score(scored, probs, frame.ts, frame.wall)
        state = self.tracker.state()
        c3, t3 = time.thread_time(), time.perf_counter()
        device = self.cfg.mqtt.device_id
        for event in events:
            self.seq += 1
            payload = event_payload(event, self.seq, device)
            if self.cfg.mqtt.publish_images:
                payload["face_jpeg_b64"] = face_jpeg(frame.image, event.box)
            for p in self.publishers:
                p.event(payload)
            self.stats.event_published(event.capture_ts)
        self._camera_lost = False
        self._publish_state(state, frame.wall, frame.image)
        for p in self.publishers:
            p.frame(frame.image, state)
        if search:  # started once this frame's work is done, so as not to slow it down
            self.search.submit(frame.image, self.tracker.boxes())
        c4, t4 = time.thread_time(), time.perf_counter()
        self.pacer.done(frame.ts, self.grabber.dropped)
        if searched:  # frames where no search ran have no detect time
            self.stats.add("detect", t1 - t0, c1 - c0, searched)
        self.stats.add("classify", t2 - t1, c2 - c1, len(scored))
        self.stats.add("track", t3 - t2, c3 - c2, len(self.tracker.tracks))
        self.stats.add("publish", t4 - t3, c4 - c3)
        self.stats.frame_done(len(found), len(self.tracker.tracks), len(scored), t_crop - t1,
                              searched=bool(searched))
        return len(scored)

    def publish_starting(self) -> None:
        """The state before the first frame (`camera: starting`, no faces), so that it exists from the start."""
        self._publish_state(State(camera="starting"), time.time())

    def _count_today(self, wall: float) -> None:
        """Roll visits_today over at local midnight (seeded from the history, if there is one)."""
        if self._day[0] <= wall < self._day[1]:
            return
        start = day_start(wall)
        self._day = (start, next_day(start))
        self.visits_today = self.history.count(*self._day) if self.history and self.history.ok else 0

    def _publish_visits(self, wall: float) -> None:
        """The visits of the faces that left: to the publishers and the history."""
        self._count_today(wall)
        for track in self.tracker.pop_ended():
            payload = track.visit.summary(track.face_id, self.cfg.mqtt.device_id)
            for p in self.publishers:
                p.visit(payload)
            if self.history:
                self.history.add(track.visit, payload)
            self.stats.visits += 1
            self.visits_today += self._day[0] <= track.visit.start < self._day[1]

    def _publish_state(self, state: State, wall: float, image: np.ndarray | None = None) -> None:
        self._count_today(wall)
        if (state.key(), self.visits_today) == self._state_key:
            return
        self._state_key = (state.key(), self.visits_today)
        payload = state_payload(state, self.cfg.mqtt.device_id, wall, self.visits_today)
        for p in self.publishers:
            p.state(payload)
        now = time.monotonic()
        if self.cfg.mqtt.publish_images and image is not None and now >= self._next_image:  # opt-in only
            self._next_image = now + self.cfg.mqtt.image_interval_s
            jpeg = to_jpeg(annotate(image, state, self.classifier.labels))
            for p in self.publishers:
                p.image(jpeg)

    def _check_camera(self) -> None:
        """Once the grabber has lost a live source, forget its faces and say so in the state."""
        if not self.grabber.connected and not self._camera_lost:
            self._camera_lost, self._searched_full = True, False
            self.tracker.end_all()
            self._publish_visits(time.time())
            self._publish_state(State(camera="lost"), time.time())

    def snapshot(self) -> dict:
        snap = self.stats.snapshot(self.pacer.skipped, self.grabber.dropped, list(self.grabber.read_ms),
                                   self.grabber.cpu_s, self.search.cpu_s)
        snap["frames_shed"] = self.pacer.shed_frames
        snap["fps_target"] = self.cfg.pacer.fps
        snap["device_id"] = self.cfg.mqtt.device_id
        snap["cpu_temp_c"] = cpu_temperature()
        snap["camera"] = "ok" if self.grabber.connected else "lost"
        snap["camera_reconnects"] = self.grabber.reconnects
        snap.update({"buffer_depth": 0, "events_dropped": 0})
        for p in self.publishers:
            snap.update(p.status())
        return snap

    def live_metrics(self) -> dict:
        """The counters and gauges a /metrics scrape reads (edge.metrics.LIVE); plain reads, no locks."""
        status: dict = {}
        for p in self.publishers:
            status.update(p.status())
        return {"frames_processed": self.stats.processed, "frames_skipped": self.pacer.skipped + self.grabber.dropped,
                "events_published": self.stats.events, "visits_published": self.stats.visits,
                "mqtt_reconnects": status.get("mqtt_reconnects"), "events_dropped": status.get("events_dropped"),
                "buffer_depth": status.get("buffer_depth"), "camera_reconnects": self.grabber.reconnects,
                "faces_in_view": len(self.tracker.tracks),
                "camera_up": int(self.grabber.connected and self.stats.processed > 0),
                "cpu_temperature_celsius": cpu_temperature()}

    def close(self) -> None:
        """End the faces' visits (published) and stop the pipeline's own thread (the background search);
        the grabber and publishers are the caller's."""
        self.tracker.end_all()
        self._publish_visits(time.time())
        self.search.close()

    def run(self, stop: threading.Event, max_frames: int | None = None, duration: float | None = None,
            tick: Callable[[], None] | None = None) -> str:
        """Loop until stopped, the source ends, or a bound is reached; returns why it ended."""
        deadline = time.monotonic() + duration if duration else None
        while not stop.is_set():
            if tick:
                tick()
            if deadline and time.monotonic() >= deadline:
                return "duration"
            if max_frames is not None and self.stats.processed >= max_frames:
                return "max-frames"
            self._maybe_stats()
            frame = self.grabber.get(timeout=0.5)
            if frame is None:
                if self.grabber.ended:
                    return "source-ended"
                self._check_camera()
                continue
            if self.pacer.take(frame.ts):
                self.process(frame)
        return "stopped"

    def _maybe_stats(self) -> None:
        now = time.monotonic()
        if now < self._next_stats:
            return
        self._next_stats = now + self._stats_every
        snap = self.snapshot()
        for p in self.publishers:
            p.stats(snap)
