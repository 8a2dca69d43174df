"""FER+ crowd votes (ten per image) joined to FER-2013 images by path: soft targets and majority labels.

votes.csv columns: path, then FER+'s ten vote columns in its own order. Seven map to `LABELS`;
contempt has no FER-2013 class, unknown and not_face mark images the workers could not read.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data import DataError, Split
from trainer.labels import LABELS

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "not_face")
TO_LABEL = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
            "anger": "angry", "disgust": "disgust", "fear": "fear"}
_SEVEN = [VOTE_COLUMNS.index(c) for c in (next(k for k, v in TO_LABEL.items() if v == lab) for lab in LABELS)]
NOT_FACE = VOTE_COLUMNS.index("not_face")


def load_votes(path: Path) -> dict[str, np.ndarray]:
    """Image path (relative to the FER-2013 root) -> its ten votes in VOTE_COLUMNS order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FER+ votes not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", *VOTE_COLUMNS} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        try:
            return {row["path"]: np.array([float(row[c]) for c in VOTE_COLUMNS], np.float32) for row in reader}
        except ValueError:
            raise DataError(f"{path}:{reader.line_num}: votes must be numbers") from None


def votes_for(split: Split, votes: dict[str, np.ndarray]) -> np.ndarray:
    """(N, 10) votes aligned with `split`; rows of NaN where an image has none."""
    if not split.paths:
        raise DataError("FER+ votes are joined by image path: use the FER-2013 folder layout, not fer2013.csv")
    out = np.full((len(split), len(VOTE_COLUMNS)), np.nan, np.float32)
    for i, p in enumerate(split.paths):
        if p in votes:
            out[i] = votes[p]
    return out


def majority(votes: np.ndarray) -> np.ndarray:
    """FER+ majority label in LABELS order, or -1: no votes, a tie, or contempt/unknown/not-a-face on top."""
    v = np.nan_to_num(votes, nan=0.0)
    top = v.max(axis=1)
    clear = (top > 0) & ((v == top[:, None]).sum(axis=1) == 1)
    col = v.argmax(axis=1)
    to_label = np.full(len(VOTE_COLUMNS), -1)
    to_label[_SEVEN] = np.arange(len(LABELS))
    return np.where(clear, to_label[col], -1)


def vote_shares(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's share of FER+ votes over the seven classes (N, 10) -> (N, 7), and which images have
    any vote among them (N,); rows without are all zero."""
    seven = np.nan_to_num(votes[:, _SEVEN], nan=0.0)
    total = seven.sum(axis=1, keepdims=True)
    return np.divide(seven, total, out=np.zeros_like(seven), where=total > 0), total[:, 0] > 0


@dataclass(frozen=True)
class Targets:
    """Per-image training targets (N, 7), which images to keep, and how each label was chosen."""

    y: np.ndarray
    keep: np.ndarray
    counts: dict[str, int]


def blend_targets(split: Split, onehot: np.ndarray, votes: np.ndarray, weight: float) -> Targets:
    """(1 - weight) x FER-2013 targets + weight x the FER+ vote distribution over the seven classes.

    Images FER+ calls not-a-face (its top vote), or that have no FER+ row (mostly non-faces and
    blanks), are left out; images whose votes all fall outside the seven (contempt, unknown) keep
    their FER-2013 target alone.
    """
    dist, in_seven = vote_shares(votes)
    has_row = ~np.isnan(votes[:, 0])
    not_face = has_row & (np.nan_to_num(votes).argmax(axis=1) == NOT_FACE)
    keep = has_row & ~not_face
    usable = keep & in_seven
    y = np.where(usable[:, None], (1 - weight) * onehot + weight * dist, onehot).astype(np.float32)
    counts = {"images": len(split), "with_votes": int(usable.sum()), "fer2013_only": int((keep & ~usable).sum()),
              "left_out_no_row": int((~has_row).sum()), "left_out_not_face": int(not_face.sum())}
    return Targets(y, keep, counts)
