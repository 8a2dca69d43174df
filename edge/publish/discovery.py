"""Home Assistant MQTT discovery: one device and its entities (keys as in HA's MQTT docs).

Entities (object ids `<device id, lowercase, underscores>_<key>`):
- sensor `dominant_emotion` (enum: the labels and "none"), sensor `faces`, sensor `mood` (-100..100);
- event `emotion` (one event per emotion change, event_type = the emotion), sensor `visits_today`,
  event `visit` (a face left: its duration, dominant emotion and mood);
- diagnostics: binary_sensor `camera` (connectivity), sensors `fps`, `cpu_temperature`,
  `events_dropped`;
- camera `preview`, the latest annotated frame, only with `mqtt.publish_images`.
"""

from __future__ import annotations

import json
import re

from edge import __version__



def object_id(device_id: str) -> str:
    """A valid Home Assistant object id: lowercase letters, digits and single inner underscores."""
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]", "_", device_id.lower())).strip("_") or "fer_edge"


def discovery_configs(prefix: str, base: str, device_id: str, labels: tuple[str, ...],
                      images: bool = False, support_url: str | None = None) -> dict[str, dict]:
    """Config topic -> payload for each entity; availability follows `<base>/availability`."""
    origin = {"name": "fer-edge", "sw_version": __version__, **({"support_url": support_url} if support_url else {})}
    device = {"identifiers": [f"fer-edge_{device_id}"], "name": f"fer-edge {device_id}",
              "manufacturer": "fer-edge", "model": "Facial emotion recognition", "sw_version": __version__}
    common = {
        "device": device,
        "origin": origin,
        "availability": [{"topic": f"{base}/availability",
                          "value_template": "{{ 'online' if value == 'online' else 'offline' }}"}],
    }
    oid = object_id(device_id)
    diagnostic = {"entity_category": "diagnostic"}
    stats = {"state_topic": f"{base}/stats", **diagnostic}

    def entity(component: str, key: str, name: str, **extra) -> tuple[str, dict]:
        return (f"{prefix}/{component}/{device_id}/{key}/config",
                {"name": name, "unique_id": f"{device_id}_{key}", "default_entity_id": f"{component}.{oid}_{key}",
                 **common, **extra})

    entities = [
        entity("sensor", "dominant_emotion", "Dominant emotion", state_topic=f"{base}/state",
               device_class="enum", options=[*labels, "none"],
               value_template="{{ value_json.dominant if value_json.dominant else 'none' }}", icon="mdi:emoticon"),
        entity("sensor", "face_count", "Faces", state_topic=f"{base}/state",
               value_template="{{ value_json.face_count }}", state_class="measurement", icon="mdi:account-group"),
        entity("sensor", "mood", "Mood", state_topic=f"{base}/state", state_class="measurement",
               value_template="{{ value_json.mood if value_json.mood is not none else 'None' }}",
               icon="mdi:emoticon-outline"),
        entity("event", "emotion", "Emotion change", state_topic=f"{base}/event", event_types=list(labels),
               value_template='{{ {"event_type": value_json.emotion, "face_id": value_json.face_id, '
                              '"confidence": value_json.confidence} | tojson }}'),
        entity("sensor", "visits_today", "Visits today", state_topic=f"{base}/state",
               value_template="{{ value_json.visits_today }}", state_class="total_increasing", icon="mdi:account-clock"),
        entity("event", "visit", "Visit", state_topic=f"{base}/visit", event_types=["visit"],
               value_template='{{ {"event_type": "visit", "face_id": value_json.face_id, '
                              '"duration_s": value_json.duration_s, "dominant": value_json.dominant, '
                              '"mood_mean": value_json.mood_mean} | tojson }}', icon="mdi:account-arrow-right"),
        entity("binary_sensor", "camera", "Camera", state_topic=f"{base}/state", device_class="connectivity",
               value_template="{{ 'ON' if value_json.camera == 'ok' else 'OFF' }}", **diagnostic),
        entity("sensor", "fps", "Processed FPS", value_template="{{ value_json.fps_processed }}",
               state_class="measurement", unit_of_measurement="fps", suggested_display_precision=1,
               icon="mdi:speedometer", **stats),
        entity("sensor", "cpu_temperature", "CPU temperature", device_class="temperature",
               unit_of_measurement="°C", state_class="measurement",
               value_template="{{ value_json.cpu_temp_c if value_json.cpu_temp_c is not none else 'None' }}", **stats),
        entity("sensor", "events_dropped", "Events dropped", value_template="{{ value_json.events_dropped }}",
               state_class="total_increasing", icon="mdi:message-alert", **stats),
    ]
    if images:
        entities.append(entity("camera", "preview", "Preview", topic=f"{base}/image"))
    return dict(entities)


def encode(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))
