"""`fer-edge install-service`: the systemd unit, the default config and the model, then enable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "fer-edge.service"
CONFIG = REPO / "config.yaml"
MODELS = REPO / "models"


def install_service(root: Path, enable: bool = True) -> int:
    """Install into `root` (normally /); keeps an existing /etc/fer-edge/config.yaml."""
    etc, share = root / "etc" / "fer-edge", root / "usr" / "local" / "share" / "fer-edge"
    unit_dir = root / "etc" / "systemd" / "system"
    for d in (etc, share, unit_dir):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("fer_int8.tflite", "fer_int8.json"):
        shutil.copy2(MODELS / name, share / name)
    config = etc / "config.yaml"
    if not config.exists():
        on_target = Path("/") / share.relative_to(root) / "fer_int8.tflite"
        config.write_text(CONFIG.read_text().replace("path: models/fer_int8.tflite", f"path: {on_target}"))
    unit = UNIT.read_text().replace("/usr/local/bin/fer-edge", str(Path(sys.executable).parent / "fer-edge"))
    (unit_dir / "fer-edge.service").write_text(unit)
    print(f"installed {unit_dir / 'fer-edge.service'}, {config}, model in {share}")
    if enable and root == Path("/"):
        subprocess.run(["systemctl", "daemon-reload"], check=False)
        return subprocess.run(["systemctl", "enable", "--now", "fer-edge"], check=False).returncode
    return 0
