"""What a run folder records about itself: the command that made it and its config.json."""

from __future__ import annotations

import json
from pathlib import Path


def run_config(run: Path) -> dict | None:
    """The run's config.json, or None where it is missing or not readable JSON."""
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def run_record(src: Path) -> dict:
    """The command and config of the run a model file (or run folder) belongs to; None where not at hand."""
    run = src if src.is_dir() else src.parent
    command = run / "command.txt"
    return {"command": command.read_text().strip() if command.is_file() else None, "config": run_config(run)}
