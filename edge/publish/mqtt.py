"""MQTT publisher: availability with a Last Will, events buffered across outages, retained state,
periodic stats and Home Assistant discovery (topics documented in the README, schemas/ hold the
payload schemas). paho-mqtt 2.x runs the network thread and reconnects with exponential backoff.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections import deque

import paho.mqtt.client as mqtt

from edge.config import MQTTConfig
from edge.publish.discovery import discovery_configs, encode

log = logging.getLogger("fer-edge.mqtt")


class MQTTPublisher:
    def __init__(self, cfg: MQTTConfig, labels: tuple[str, ...]):
        self.cfg = cfg
        self.base = f"{cfg.topic_prefix}/{cfg.device_id}"
        self._discovery = discovery_configs(cfg.discovery.prefix, self.base, cfg.device_id, labels)
        self._lock = threading.Lock()
        self._buffer: deque[str] = deque()
        self._state: str | None = None
        self._state_sent = True
        self.dropped = 0
        self.connected = False
        self._last_error: str | None = None
        self._closing = False

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fer-edge-{cfg.device_id}")
        c.will_set(f"{self.base}/availability", "offline", qos=1, retain=True)
        c.reconnect_delay_set(min_delay=1, max_delay=60)
        if cfg.username:
            c.username_pw_set(cfg.username, cfg.password())
        if cfg.tls.ca or cfg.tls.cert:
            c.tls_set(ca_certs=str(cfg.tls.ca) if cfg.tls.ca else None,
                      certfile=str(cfg.tls.cert) if cfg.tls.cert else None,
                      keyfile=str(cfg.tls.key) if cfg.tls.key else None, cert_reqs=ssl.CERT_REQUIRED)
            c.tls_insecure_set(cfg.tls.insecure)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
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
        """Flush what is buffered, publish `stopped` and disconnect (within `timeout` seconds)."""
        self._closing = True
        infos = []
        with self._lock:
            if self.connected:
                infos = self._flush_locked()
                infos.append(self.client.publish(f"{self.base}/availability", "stopped", qos=1, retain=True))
        for info in infos:
            try:
                info.wait_for_publish(timeout / max(len(infos), 1))
            except (RuntimeError, ValueError):
                break
        if self._buffer:
            log.warning("MQTT: %d buffered event(s) not delivered at shutdown", len(self._buffer))
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
            self._flush_locked()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self.connected = self.connected, False
        if was_connected and not self._closing:
            self._report(f"MQTT disconnected from {self.cfg.host}:{self.cfg.port} ({reason_code}); "
                         f"buffering up to {self.cfg.buffer_size} events and reconnecting")

    def _on_connect_fail(self, client, userdata) -> None:
        tls = " or the TLS handshake failed" if self.cfg.tls.ca or self.cfg.tls.cert else ""
        self._report(f"MQTT connection to {self.cfg.host}:{self.cfg.port} failed (broker unreachable{tls}); retrying")

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.cfg.discovery.prefix}/status" and msg.payload == b"online":
            self._publish_discovery()

    def _report(self, message: str) -> None:
        """Log a connection problem once, not on every retry."""
        if message != self._last_error:
            self._last_error = message
            log.warning(message)

    # -- publishing --------------------------------------------------------------------------
    def _publish_discovery(self) -> None:
        for topic, payload in self._discovery.items():
            self.client.publish(topic, encode(payload), qos=1, retain=True)

    def remove_discovery(self) -> list[mqtt.MQTTMessageInfo]:
        """Empty retained configs: Home Assistant removes the entities."""
        return [self.client.publish(topic, b"", qos=1, retain=True) for topic in self._discovery]

    def _flush_locked(self) -> list[mqtt.MQTTMessageInfo]:
        """Send buffered events in order, then the latest state; stop at the first refusal."""
        infos = []
        while self._buffer:
            info = self.client.publish(f"{self.base}/event", self._buffer[0], qos=self.cfg.qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return infos
            infos.append(info)
            self._buffer.popleft()
        if not self._state_sent and self._state is not None:
            info = self.client.publish(f"{self.base}/state", self._state, qos=1, retain=True)
            self._state_sent = info.rc == mqtt.MQTT_ERR_SUCCESS
            infos.append(info)
        return infos

    def event(self, payload: dict) -> None:
        with self._lock:
            if len(self._buffer) >= self.cfg.buffer_size:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(encode(payload))
            if self.connected:
                self._flush_locked()

    def state(self, payload: dict) -> None:
        with self._lock:
            self._state, self._state_sent = encode(payload), False
            if self.connected:
                self._flush_locked()

    def stats(self, payload: dict) -> None:
        with self._lock:
            extra = {"buffer_depth": len(self._buffer), "events_dropped": self.dropped,
                     "mqtt_connected": self.connected}
            if self.connected:
                self.client.publish(f"{self.base}/stats", encode({**payload, **extra}), qos=0)
