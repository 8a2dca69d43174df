"""Time int8 models side by side on one thread with LiteRT: the median and p95 of one face's call
(with flip TTA baked in, the face and its mirror image), the models interleaved so that they share
whatever else loads the machine.

Usage (from the repo root): .venv/bin/python benchmarks/model-speed.py A.tflite B.tflite [--calls 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--calls", type=int, default=500)
    args = p.parse_args()
    runs = []
    for path in args.models:
        it = Interpreter(model_path=path, num_threads=1)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        x = np.random.default_rng(0).integers(-128, 128, inp["shape"], dtype=np.int8)
        runs.append((path, it, inp["index"], x, []))
    for call in range(args.calls + 50):  # the first 50 calls warm up
        for _, it, index, x, times in runs:
            t = time.perf_counter()
            it.set_tensor(index, x)
            it.invoke()
            if call >= 50:
                times.append((time.perf_counter() - t) * 1e3)
    for path, *_, times in runs:
        print(f"{path}: median {np.median(times):.3f} ms, p95 {np.percentile(times, 95):.3f} ms a call, 1 thread")


if __name__ == "__main__":
    main()
