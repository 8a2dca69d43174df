"""The int8 TFLite emotion model and its card: face crops in, class probabilities out.

The card (`fer_int8.json` beside the .tflite) is the contract with the trainer: labels in output
order and the input size. The model takes raw 0-255 gray pixels, quantized with the input
tensor's own scale and zero point; any normalization lives inside the model.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ModelError(Exception):
    """A model or card that cannot be used, with a one-line message."""


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what the runtime's C++ side writes to stderr (its "INFO: Created TensorFlow Lite XNNPACK
    delegate" line); it has no Python switch. Its errors still surface as exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _input_table(dtype: type, scale: float, zero: int) -> np.ndarray:
    """Pixel value 0..255 -> input tensor value: the tensor's quantization as a 256-entry lookup."""
    x = np.arange(256, dtype=np.float32)
    if scale:
        info = np.iinfo(dtype)
        x = np.clip(np.round(x / scale + zero), info.min, info.max)
    return x.astype(dtype)


@dataclass(frozen=True)
class ModelCard:
    labels: tuple[str, ...]
    input_size: tuple[int, int]
    raw: dict

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        try:
            raw = json.loads(Path(path).read_text())
            labels = tuple(str(label) for label in raw["labels"])
            size = raw["input"]["size"]
            input_size = (int(size[0]), int(size[1]))
        except FileNotFoundError:
            raise ModelError(f"model card not found: {path}") from None
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise ModelError(f"model card {path} is not valid ({type(e).__name__}: {e}); "
                             "expected JSON with 'labels' and 'input.size'") from None
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ModelError(f"model card {path}: 'labels' must be at least 2 distinct names")
        return cls(labels, input_size, raw)


def card_path_for(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


class Classifier:
    """Runs the int8 model on batches of gray face crops (already resized to the input size)."""

    def __init__(self, model_path: Path, card_path: Path | None = None, num_threads: int = 1):
        model_path = Path(model_path)
        self.card = ModelCard.load(card_path or card_path_for(model_path))
        if not model_path.is_file():
            raise ModelError(f"model not found: {model_path}")
        try:
            self._interp = _interpreter_class()(model_path=str(model_path), num_threads=num_threads)
            with _native_stderr_silenced():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load TFLite model {model_path}: {str(e).splitlines()[0]}") from None
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        shape = tuple(inp["shape"])
        if len(shape) != 4 or shape[1:3] != self.card.input_size or shape[3] != 1:
            raise ModelError(f"model input {shape} does not match the card's {self.card.input_size} gray input")
        if out["shape"][-1] != len(self.card.labels):
            raise ModelError(f"model has {out['shape'][-1]} outputs but the card lists {len(self.card.labels)} labels")
        self._in_index, self._out_index = inp["index"], out["index"]
        self._to_input = _input_table(inp["dtype"], *inp["quantization"])
        self._out_scale, self._out_zero = out["quantization"]
        self._batch = shape[0]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def input_size(self) -> tuple[int, int]:
        return self.card.input_size

    @property
    def tensor_details(self) -> tuple[dict, dict]:
        """The interpreter's input and output tensor details (dtype, shape, quantization)."""
        return self._interp.get_input_details()[0], self._interp.get_output_details()[0]

    def latency_ms(self, faces: np.ndarray, runs: int = 200, between: Callable[[], object] | None = None) -> float:
        """Median milliseconds of one invoke on `faces`, after a warm-up run; `between` runs untimed before each."""
        self.logits(faces)
        times = []
        for _ in range(runs):
            if between:
                between()
            t0 = time.perf_counter()
            self.logits(faces)
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1000)

    MAX_BATCH = 256  # a whole dataset goes through in batches of this many, not one tensor of its size

    def logits(self, faces: np.ndarray) -> np.ndarray:
        """Raw model outputs, dequantized, for uint8 faces (N, H, W)."""
        n = len(faces)
        if n == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if n > self.MAX_BATCH:
            return np.concatenate([self.logits(faces[i:i + self.MAX_BATCH]) for i in range(0, n, self.MAX_BATCH)])
        if n != self._batch:
            self._interp.resize_tensor_input(self._in_index, [n, *self.input_size, 1])
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._in_index, self._to_input[faces][..., None])
        self._interp.invoke()
        y = self._interp.get_tensor(self._out_index).astype(np.float32)
        if self._out_scale:
            y = (y - self._out_zero) * self._out_scale
        return y

    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Class probabilities (N, len(labels)) for uint8 faces (N, H, W)."""
        z = self.logits(faces)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


def crop_faces(gray: np.ndarray, boxes: list, size: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Square crops centred on each box (side = longer edge * (1 + 2*margin)), resized to `size`.

    Parts of a crop outside the frame repeat the border pixels.
    """
    import cv2

    crops = np.empty((len(boxes), size[1], size[0]), np.uint8)
    fh, fw = gray.shape
    for i, (x, y, w, h) in enumerate(boxes):
        side = int(round(max(w, h) * (1 + 2 * margin)))
        x0, y0 = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
        patch = gray[max(0, y0):min(fh, y0 + side), max(0, x0):min(fw, x0 + side)]
        if patch.shape != (side, side):
            patch = cv2.copyMakeBorder(patch, max(0, -y0), max(0, y0 + side - fh), max(0, -x0),
                                       max(0, x0 + side - fw), cv2.BORDER_REPLICATE)
        crops[i] = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    return crops
