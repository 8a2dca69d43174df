"""The typed schema of config.yaml: defaults, documentation and one-line validation errors.

Every field is documented here and in the commented reference config.yaml at the repo root.
Unknown keys and wrong types are errors naming the file and the key path.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPO_MODEL = Path(__file__).resolve().parent.parent / "models" / "fer_int8.tflite"
PASSWORD_ENV = "FER_EDGE_MQTT_PASSWORD"


class ConfigError(Exception):
    """A config that cannot be used, with a one-line message naming the file and key."""


def sanitize_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "fer-edge"


def _existing_file(v: Path | None) -> Path | None:
    if v is not None and not v.is_file():
        raise ValueError(f"{v} does not exist or is not a file")
    return v


ExistingFile = Annotated[Path | None, AfterValidator(_existing_file)]


def read_secret(path: Path | None, env: str) -> str | None:
    """A password or token: the file's first line if a file is configured, else the environment variable."""
    if path is not None:
        return path.read_text().strip() or None
    return os.environ.get(env) or None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(_Section):
    kind: Literal["auto", "opencv", "picamera2"] = Field(
        "auto", description="auto: picamera2 when uri is 'picamera', else OpenCV")
    uri: str = Field("0", description="camera index, /dev/videoN, video file, rtsp:// or http:// URL, or 'picamera'")
    loop: bool = Field(False, description="restart a video file at its end instead of stopping")
    realtime: bool = Field(True, description="play a video file at its own FPS, like a camera (false: as fast as possible)")
    playback_fps: float | None = Field(None, gt=0.0, description="play a video file at this rate instead of its own (realtime only)")
    width: int | None = Field(None, gt=0, description="requested capture width (cameras)")
    height: int | None = Field(None, gt=0, description="requested capture height (cameras)")
    reopen_backoff_s: tuple[float, float] = Field((0.5, 5.0), description="first and longest delay between reopen attempts of a lost camera (doubling, with jitter)")
    timeout_s: float = Field(10.0, gt=0.0, description="a stream URL that sends nothing this long fails to open, or is lost and reopened")


class ModelSection(_Section):
    path: Path = Field(REPO_MODEL, description="int8 .tflite; its card is the .json beside it")
    num_threads: int = Field(1, ge=1, le=16, description="interpreter threads")


class DetectorConfig(_Section):
    cascade: Path | None = Field(None, description="Haar cascade XML (default: OpenCV's haarcascade_frontalface_default.xml)")
    detect_width: int = Field(400, ge=80, description="frames are downscaled to this width for the full-frame search, which finds faces of 24 px and more at this width")
    quick_width: int = Field(128, ge=48, description="with no face tracked, the loop itself searches frames downscaled to this width (it finds faces of 24 px and more at this width, in a fraction of a full search's time), beside the full search")
    min_face: int = Field(48, ge=16, description="smallest face, in pixels of the original frame")
    scale_factor: float = Field(1.15, gt=1.0, le=2.0)
    min_neighbors: int = Field(5, ge=1, description="Haar confidence for full-frame detection (higher: fewer false faces)")
    roi_min_neighbors: int = Field(3, ge=1, description="Haar confidence for re-detection near a known face, where a false face is unlikely")
    roi_margin: float = Field(0.2, ge=0.0, le=2.0, description="search margin around a known face for cheap re-detection, as a fraction of its size")
    crop_margin: float = Field(0.0, ge=0.0, le=0.5, description="margin added around the Haar box before the crop (the model expects none)")
    full_every: int = Field(30, ge=2, description="while faces are tracked, a full-frame search for new faces (beside the loop) every this many processed frames; twice as often with none tracked")
    redetect_every: int = Field(4, ge=1, le=10, description="each known face is re-detected every this many processed frames, a group's faces in turn (a share of them on each frame); in between they are classified at their last boxes, so that what is published does not turn on which frames were detected")
    redetect_per_frame: float = Field(1.5, ge=0.0, le=10.0, description="a group larger than redetect_every x this has each face re-detected every faces / this frames instead (nine faces: every 6th), so that a frame re-detects this many faces on average; 0 = no limit")


class TrackerConfig(_Section):
    iou_match: float = Field(0.3, gt=0.0, lt=1.0, description="IoU needed to continue a track")
    expire_s: float = Field(1.0, gt=0.0, description="a track unseen this long is dropped")
    smoothing_s: float = Field(0.5, ge=0.0, description="time constant of the probability EMA")
    hysteresis: float = Field(0.25, ge=0.0, le=1.0, description="a new emotion must beat the current one by this margin")
    min_confidence: float = Field(0.35, ge=0.0, le=1.0, description="smoothed score an emotion needs to be reported")
    first_event_scores: int = Field(2, ge=1, le=30, description="a new face's first emotion is published from this many scores on, their mean (so a face seen on one frame only is no event)")
    first_event_wait_s: float = Field(1.0, ge=0.0, le=10.0, description="and waits, at most this long after the face was found, until its scores span `smoothing_s` and it leads the runner-up by `hysteresis` (a face that appears between two expressions is not first published as the one it is leaving); 0 = no wait")


class PacerConfig(_Section):
    fps: float = Field(30.0, ge=0.0, description="processed frames per second to aim for; 0 = as fast as possible")
    classify_hz: float = Field(10.0, ge=0.0, le=60.0, description="with several faces known, each is classified at least this often, the ones scored longest ago first (one face: every frame), so a group costs less than a face per frame each; 0 = every face on every frame")
    shed_load: bool = Field(True, description="when the loop cannot hold the fps target (below 97 % of it over its last 30 frames while the grabber drops frames), re-detect each face and search the full frame half as often, trying the full schedule again after 300 frames at the target (faces are still classified classify_hz times a second); false: never")


def _pem_error(e: OSError) -> str:
    """ssl's reason ('NO_CERTIFICATE_OR_CRL_FOUND') or the OS error, for a one-line message."""
    return getattr(e, "reason", None) or e.strerror or str(e)


class TLSConfig(_Section):
    ca: ExistingFile = Field(None, description="CA certificate file, PEM (enables TLS)")
    cert: ExistingFile = Field(None, description="client certificate, PEM")
    key: ExistingFile = Field(None, description="client key, PEM")
    insecure: bool = Field(False, description="skip hostname verification (testing only)")

    @field_validator("ca")
    @classmethod
    def _ca_parses(cls, v: Path | None) -> Path | None:
        if v is not None:
            try:
                ssl.create_default_context().load_verify_locations(cafile=str(v))
            except OSError as e:  # ssl.SSLError is an OSError
                raise ValueError(f"{v} is not a readable PEM CA certificate ({_pem_error(e)})") from None
        return v

    @model_validator(mode="after")
    def _cert_and_key_match(self) -> "TLSConfig":
        if self.cert is not None and self.key is not None:
            try:
                ssl.create_default_context().load_cert_chain(str(self.cert), str(self.key))
            except OSError as e:
                raise ValueError(f"{self.cert} and {self.key} are not a readable PEM client certificate and "
                                 f"its key ({_pem_error(e)})") from None
        return self


class DiscoveryConfig(_Section):
    enabled: bool = Field(True, description="publish Home Assistant MQTT discovery")
    prefix: str = Field("homeassistant", description="Home Assistant discovery prefix")
    remove: bool = Field(False, description="publish empty retained configs so Home Assistant removes the entities (and announce none)")
    settle_s: float = Field(1.0, ge=0.0, le=30.0, description="events wait this long after an announcement, so Home Assistant has subscribed to a new entity's topic")
    support_url: str | None = Field(None, description="link shown in Home Assistant's discovery logs for this device (origin.support_url)")


class MQTTConfig(_Section):
    enabled: bool = Field(False, description="publish to an MQTT broker")
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("fer-edge", pattern=r"^[^#+]+$")
    device_id: str = Field(default_factory=lambda: sanitize_id(socket.gethostname()), pattern=r"^[A-Za-z0-9_-]+$")
    qos: Literal[0, 1, 2] = 1
    keepalive: int = Field(30, ge=5, le=3600)
    username: str | None = None
    password_file: ExistingFile = Field(None, description=f"file holding the password (or set ${PASSWORD_ENV})")
    tls: TLSConfig = TLSConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    buffer_size: int = Field(1000, ge=1, description="events queued until the broker acknowledges them (oldest dropped)")
    reconnect_max_s: float = Field(5.0, ge=1.0, le=300.0, description="longest wait between reconnect attempts (1 s, doubling up to this)")
    stats_interval_s: float = Field(30.0, gt=0.0)
    publish_images: bool = Field(False, description="attach face crops to events and publish the annotated frame as a Home Assistant camera (off: no image data leaves the device)")
    image_interval_s: float = Field(1.0, ge=0.1, description="with publish_images: at most one annotated frame per this many seconds, sent when the state changes")

    def password(self) -> str | None:
        return read_secret(self.password_file, PASSWORD_ENV)


TOKEN_ENV = "FER_EDGE_HTTP_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class HTTPConfig(_Section):
    enabled: bool = Field(True, description="serve the live page and the HTTP API")
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs a token")
    port: int = Field(8080, ge=1, le=65535)
    token_file: ExistingFile = Field(None, description=f"file holding the access token (or set ${TOKEN_ENV}); "
                                    "every request then needs it")
    preview: bool | None = Field(None, description="serve annotated camera frames; null: only when bound to loopback")
    preview_fps: float = Field(10.0, gt=0.0, le=30.0, description="most preview frames per second")
    preview_width: int = Field(640, ge=160, le=1920, description="preview frames are scaled down to this width")
    max_clients: int = Field(4, ge=1, le=64, description="streaming clients (event stream and preview) at once")
    max_upload_mb: float = Field(10.0, gt=0.0, le=100.0, description="largest photo POST /predict accepts")
    max_upload_pixels: int = Field(25_000_000, ge=1, le=100_000_000,
                                   description="most pixels a photo may have, read from its header before decoding")
    upload_timeout_s: float = Field(30.0, gt=0.0, le=600.0, description="longest a photo's upload may take (then 408)")
    max_predict_queue: int = Field(2, ge=0, le=16, description="photos that may wait while one is read (more get 503)")
    stats_interval_s: float = Field(2.0, gt=0.0, description="how often stats reach the page and the event stream")

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK or self.host.startswith("127.")

    def token(self) -> str | None:
        return read_secret(self.token_file, TOKEN_ENV)

    @property
    def preview_on(self) -> bool:
        return self.loopback if self.preview is None else self.preview


STATE_DIR = Path("/var/lib/fer-edge")  # the unit's StateDirectory=; systemd also says so in $STATE_DIRECTORY


class HistoryConfig(_Section):
    enabled: bool = Field(True, description="keep visits and an hourly roll-up of emotion time and mood on this device (no images, no face data)")
    path: Path | None = Field(None, description="the SQLite file; null: history.db in $STATE_DIRECTORY, else /var/lib/fer-edge")
    retention_days: float = Field(365.0, gt=0.0, description="visits and hours older than this are deleted")
    max_mb: float = Field(50.0, ge=1.0, description="the oldest visits are deleted while the data outgrows this")
    flush_interval_s: float = Field(600.0, ge=0.05, le=3600.0, description="finished visits are written together this often (and at shutdown): a crash or power cut loses at most this much, and the SD card sees one small write each time")

    def database(self) -> Path:
        if self.path is not None:
            return self.path
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return (Path(state) if state else STATE_DIR) / "history.db"


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ServiceConfig(_Section):
    max_failures: int = Field(5, ge=1, description="consecutive fatal loop errors before exiting non-zero")
    status_interval_s: float = Field(5.0, gt=0.0, description="how often systemd STATUS= is refreshed")


class Config(_Section):
    source: SourceConfig = SourceConfig()
    model: ModelSection = ModelSection()
    detector: DetectorConfig = DetectorConfig()
    tracker: TrackerConfig = TrackerConfig()
    pacer: PacerConfig = PacerConfig()
    mqtt: MQTTConfig = MQTTConfig()
    http: HTTPConfig = HTTPConfig()
    history: HistoryConfig = HistoryConfig()
    logging: LoggingConfig = LoggingConfig()
    service: ServiceConfig = ServiceConfig()

    @model_validator(mode="after")
    def _tls_pair(self) -> "Config":
        tls = self.mqtt.tls
        if (tls.cert is None) != (tls.key is None):
            raise ValueError("mqtt.tls.cert and mqtt.tls.key go together")
        if self.http.enabled and not self.http.loopback and not self.http.token():
            raise ValueError(f"http.host {self.http.host} is reachable from other machines: set http.token_file "
                             f"or ${TOKEN_ENV}")
        return self


def load_config(path: Path | None) -> Config:
    """Read and validate a YAML config; `None` gives the defaults. Relative paths are kept as given."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return validate(data, str(path))


def validate(data: dict, origin: str) -> Config:
    """Validate a config mapping; errors name `origin` (a file, or the command line) and the key."""
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ConfigError(f"{origin}: {where}: {msg}{more}") from None
