"""MQTT publisher: availability with a Last Will, events queued in order across outages, retained
state, periodic stats and Home Assistant discovery (topics documented in the README, schemas/ hold
the payload schemas). paho-mqtt 2.x runs the network thread and reconnects with a capped backoff.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt

from edge.config import MQTTConfig
from edge.publish.discovery import discovery_configs, encode

log = logging.getLogger("fer-edge.mqtt")
IN_FLIGHT = -1  # a slot reserved while paho is being handed the message
RECONNECT_MIN_S = 1  # paho doubles the delay after each failed attempt, up to mqtt.reconnect_max_s


def apply_credentials(client: mqtt.Client, cfg: MQTTConfig) -> None:
    """Username/password and TLS as configured (also used by `fer-edge doctor`)."""
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password())
    if cfg.tls.ca or cfg.tls.cert:
        client.tls_set(ca_certs=str(cfg.tls.ca) if cfg.tls.ca else None,
                       certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
                       keyfile=str(cfg.tls.key) if cfg.tls.key else None, cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(cfg.tls.insecure)


class MQTTPublisher:
    """Events wait in one queue that fer-edge owns and bounds (`mqtt.buffer_size`, oldest dropped).

    paho is handed one event at a time, the next only once the broker has acknowledged it (or, at
    QoS 0, once it is written), so an event sent into a half-open connection is resent by paho
    before anything newer: order holds across any outage, nothing is sent twice by fer-edge, and
    paho's own queue never holds more than that one event and the latest state.
    """

    def __init__(self, cfg: MQTTConfig, labels: tuple[str, ...]):
        self.cfg = cfg
        self.base = f"{cfg.topic_prefix}/{cfg.device_id}"
        self._discovery = discovery_configs(cfg.discovery.prefix, self.base, cfg.device_id, labels,
                                            images=cfg.publish_images, support_url=cfg.discovery.support_url)
        self._settled = threading.Event()  # set while events may go out (not right after an announcement)
        self._settled.set()
        self._lock = threading.Lock()
        self._events: deque[tuple[str, str]] = deque()  # (kind, payload) of unacknowledged events and visits,
        # oldest first; the head may be in flight
        self._event_mid: int | None = None  # paho's id of the head event while it is in flight
        self._state: str | None = None  # the latest state, until it is handed to paho
        self._state_mid: int | None = None
        self._early_acks: set[int] = set()
        self._next_stats = 0.0
        self.dropped = 0
        self._dropped_in_outage = 0
        self.connected = False
        self.connections = 0  # successful connects; all but the first are reconnects
        self._last_error: str | None = None
        self._closing = False

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fer-edge-{cfg.device_id}")
        c.will_set(f"{self.base}/availability", "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=cfg.reconnect_max_s)
        apply_credentials(c, cfg)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        c.on_publish = self._on_publish
        self.client = c

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; the daemon runs on while the broker is unreachable."""
        try:
            self.client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive)
        except (OSError, ValueError) as e:
            log.error("MQTT %s:%d: %s", self.cfg.host, self.cfg.port, e)
        self.client.loop_start()

    def close(self, timeout: float = 1.5) -> None:
        """Deliver what is queued, publish `stopped` and disconnect (within `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        pending = lambda: self._events or self._state is not None or self._state_mid is not None  # noqa: E731
        while self.connected and pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._closing = True
        if self.connected:
            info = self.client.publish(f"{self.base}/availability", "stopped", qos=1, retain=True)
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.2))
            except (RuntimeError, ValueError):
                pass
        if self._events:
            log.warning("MQTT: %d queued event(s) not delivered at shutdown", len(self._events))
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._report(f"MQTT connection to {self.cfg.host}:{self.cfg.port} refused: {reason_code}")
            return
        log.info("MQTT connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.base)
        self._last_error = None
        client.publish(f"{self.base}/availability", "online", qos=1, retain=True)
        if self.cfg.discovery.remove:
            self.remove_discovery()
        elif self.cfg.discovery.enabled:
            client.subscribe(f"{self.cfg.discovery.prefix}/status", qos=1)
            self._publish_discovery()
        with self._lock:
            self.connected = True
            self.connections += 1
            dropped, self._dropped_in_outage = self._dropped_in_outage, 0
        if dropped:
            log.warning("MQTT: %d event(s) dropped while the broker was unreachable (mqtt.buffer_size %d)",
                        dropped, self.cfg.buffer_size)
        # what paho still holds from before the outage it re-sends itself, right after this
        # callback; anything newer waits for that to be acknowledged
        self._pump()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self.connected = self.connected, False
        if was_connected and not self._closing:
            self._report(f"MQTT disconnected from {self.cfg.host}:{self.cfg.port} ({reason_code}); "
                         f"queueing up to {self.cfg.buffer_size} events and reconnecting")

    def _on_connect_fail(self, client, userdata) -> None:
        tls = " or the TLS handshake failed" if self.cfg.tls.ca or self.cfg.tls.cert else ""
        self._report(f"MQTT connection to {self.cfg.host}:{self.cfg.port} failed (broker unreachable{tls}); retrying")

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.cfg.discovery.prefix}/status" and msg.payload == b"online":
            self._publish_discovery()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            if mid == self._event_mid:
                self._events.popleft()
                self._event_mid = None
            elif mid == self._state_mid:
                self._state_mid = None
            elif IN_FLIGHT in (self._event_mid, self._state_mid):
                self._early_acks.add(mid)  # acknowledged before _pump noted its id
                return
            else:
                return
        self._pump()

    def _report(self, message: str) -> None:
        """Log a connection problem once, not on every retry."""
        if message != self._last_error:
            self._last_error = message
            log.warning(message)

    # -- publishing --------------------------------------------------------------------------
    def _publish_discovery(self) -> None:
        """Announce the entities; events wait `discovery.settle_s` (Home Assistant subscribes to a new
        entity's topic a few hundred ms after it sees the config, and events are not retained)."""
        if self.cfg.discovery.settle_s:
            self._settled.clear()
            timer = threading.Timer(self.cfg.discovery.settle_s, self._settle)
            timer.daemon = True
            timer.start()
        for topic, payload in self._discovery.items():
            self.client.publish(topic, encode(payload), qos=1, retain=True)

    def _settle(self) -> None:
        self._settled.set()
        self._pump()

    def remove_discovery(self) -> list[mqtt.MQTTMessageInfo]:
        """Empty retained configs: Home Assistant removes the entities."""
        return [self.client.publish(topic, b"", qos=1, retain=True) for topic in self._discovery]

    def _pump(self) -> None:
        """Hand paho the oldest queued event and the latest state, unless one of each is in flight.

        paho is never called with `_lock` held: it runs our callbacks under its own locks, so
        holding ours around its calls could deadlock. A slot is reserved (IN_FLIGHT) first instead.
        """
        while True:
            with self._lock:
                if not self.connected:
                    return
                if self._event_mid is None and self._events and self._settled.is_set():
                    self._event_mid, (kind, payload) = IN_FLIGHT, self._events[0]
                elif self._state_mid is None and self._state is not None:
                    self._state_mid, kind, payload, self._state = IN_FLIGHT, "state", self._state, None
                else:
                    return
            qos = self.cfg.qos if kind == "event" else 1
            info = self.client.publish(f"{self.base}/{kind}", payload, qos=qos, retain=kind == "state")
            # a QoS 1+ message paho could not write (the connection dropped before it told us) stays in
            # its queue and goes out after reconnecting: handed over, like one written
            sent = info.rc == mqtt.MQTT_ERR_SUCCESS or (info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0)
            with self._lock:
                acked = sent and info.mid in self._early_acks
                self._early_acks.discard(info.mid)
                if kind != "state":
                    self._event_mid = info.mid if sent and not acked else None
                    if acked:
                        self._events.popleft()
                else:
                    self._state_mid = info.mid if sent and not acked else None
                    if not sent and self._state is None:
                        self._state = payload
                if IN_FLIGHT not in (self._event_mid, self._state_mid):
                    self._early_acks.clear()  # the rest were other messages' (discovery, availability)
            if not sent:
                return

    def event(self, payload: dict) -> None:
        self._enqueue("event", payload)

    def visit(self, payload: dict) -> None:
        """A visit summary: at QoS 1, in the same ordered, bounded offline queue as events."""
        self._enqueue("visit", payload)

    def _enqueue(self, kind: str, payload: dict) -> None:
        with self._lock:
            if len(self._events) >= self.cfg.buffer_size:
                # the head is dropped unless paho holds it; then the oldest behind it
                del self._events[1 if self._event_mid is not None else 0]
                self.dropped += 1
                self._dropped_in_outage += 1
            self._events.append((kind, encode(payload)))
        self._pump()

    def state(self, payload: dict) -> None:
        with self._lock:
            self._state = encode(payload)
        self._pump()

    def image(self, jpeg: bytes) -> None:
        """The latest annotated frame, for the Home Assistant camera (only with mqtt.publish_images)."""
        if self.connected:
            self.client.publish(f"{self.base}/image", jpeg, qos=0)

    def frame(self, image, state) -> None:
        pass

    def status(self) -> dict:
        """What the stats payload (of every publisher) says about MQTT delivery."""
        return {"buffer_depth": len(self._events), "events_dropped": self.dropped, "mqtt_connected": self.connected,
                "mqtt_reconnects": max(self.connections - 1, 0)}

    def stats(self, payload: dict) -> None:
        now = time.monotonic()
        if self.connected and now >= self._next_stats:  # the pipeline may tick faster for the page
            self._next_stats = now + self.cfg.stats_interval_s - 0.05
            self.client.publish(f"{self.base}/stats", encode(payload), qos=0)
