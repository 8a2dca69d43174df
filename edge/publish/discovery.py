"""Home Assistant MQTT discovery: one device, two sensors and an event entity."""

from __future__ import annotations

import json

from edge import __version__


def discovery_configs(prefix: str, base: str, device_id: str, labels: tuple[str, ...]) -> dict[str, dict]:
    """Config topic -> payload for each entity; availability follows `<base>/availability`."""
    device = {"identifiers": [f"fer-edge_{device_id}"], "name": f"fer-edge {device_id}",
              "manufacturer": "fer-edge", "model": "Facial emotion recognition", "sw_version": __version__}
    common = {
        "device": device,
        "availability": [{"topic": f"{base}/availability",
                          "value_template": "{{ 'online' if value == 'online' else 'offline' }}"}],
    }

    def entity(component: str, key: str, name: str, **extra) -> tuple[str, dict]:
        unique = f"{device_id}_{key}"
        return (f"{prefix}/{component}/{device_id}/{key}/config",
                {"name": name, "unique_id": unique, "default_entity_id": f"{component}.{unique}", **common, **extra})

    return dict([
        entity("sensor", "dominant_emotion", "Dominant emotion", state_topic=f"{base}/state",
               value_template="{{ value_json.dominant if value_json.dominant else 'none' }}", icon="mdi:emoticon"),
        entity("sensor", "face_count", "Faces", state_topic=f"{base}/state",
               value_template="{{ value_json.face_count }}", state_class="measurement", icon="mdi:account-group"),
        entity("event", "emotion", "Emotion change", state_topic=f"{base}/event", event_types=list(labels),
               value_template='{{ {"event_type": value_json.emotion, "face_id": value_json.face_id, '
                              '"confidence": value_json.confidence} | tojson }}'),
    ])


def encode(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"))
