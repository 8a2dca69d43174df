"""Mood: one number from -100 (clearly negative) to +100 (clearly positive) for the faces in view.

Each emotion sits on the valence (pleasant-unpleasant) axis of Russell's circumplex model of
affect; a face's mood is the expectation of that valence under its smoothed class probabilities,
and the room's mood is the mean over the faces, scaled to -100..100 and rounded:

    mood = round(100 * mean_faces( sum_k p_k * VALENCE[k] ))
"""

from __future__ import annotations

import numpy as np

VALENCE: dict[str, float] = {
    "happy": 1.0,
    "surprise": 0.25,  # high arousal, mildly pleasant on average (startle reads either way)
    "neutral": 0.0,
    "fear": -0.6,
    "sad": -0.75,
    "angry": -0.8,
    "disgust": -0.8,
}


def face_mood(probs: np.ndarray, labels: tuple[str, ...]) -> float:
    """Expected valence of one face, -1..1 (a label not in VALENCE counts as 0)."""
    return float(sum(p * VALENCE.get(label, 0.0) for p, label in zip(probs, labels)))


def room_mood(face_moods: list[float]) -> int | None:
    """The faces' mean valence as -100..100, or None with no face in view."""
    return round(100 * sum(face_moods) / len(face_moods)) if face_moods else None
