"""A model soup: the mean of the weights of runs fine-tuned from one another, as a run of its own."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from trainer import teachers
from trainer.data import DataError
from trainer.records import run_config


def soup(sources: list[Path]) -> keras.Model:
    """The first model with each weight replaced by its mean over all `sources` (runs, .keras or
    teacher files of one architecture; weights of unrelated runs average to noise, so use runs of
    one line, each fine-tuned from another)."""
    if len(sources) < 2:
        raise DataError("soup: give two or more runs to average")
    models = [teachers.load_model(s) for s in sources]
    first = models[0]
    for src, m in zip(sources[1:], models[1:]):
        if m.name != first.name or [w.shape for w in m.weights] != [w.shape for w in first.weights]:
            raise DataError(f"soup: {src} is {m.name}, {sources[0]} is {first.name}: "
                            "only models of one architecture can be averaged")
    first.set_weights([np.mean(ws, axis=0) for ws in zip(*(m.get_weights() for m in models))])
    return first


def write_soup(run: Path, sources: list[Path]) -> keras.Model:
    """Write the soup as a run folder (best.keras; config.json naming its sources for the card); a
    folder that holds a trained run, not a soup, is refused rather than overwritten."""
    if (run / "best.keras").exists() and "soup_of" not in (run_config(run) or {}):
        raise DataError(f"soup: {run} holds a trained run; give the soup a folder of its own")
    model = soup(sources)
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({"soup_of": [str(s) for s in sources]}, indent=2))
    return model

