"""A contact sheet of a clip for labelling it by eye: a frame every STEP seconds, each with its time.

Usage: .venv/bin/python benchmarks/contact-sheet.py CLIP OUT.png [--step 0.5] [--width 200] [--cols 8]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip")
    p.add_argument("out")
    p.add_argument("--step", type=float, default=0.5)
    p.add_argument("--width", type=int, default=200)
    p.add_argument("--cols", type=int, default=8)
    args = p.parse_args()
    cap = cv2.VideoCapture(args.clip)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    tiles, i, next_t = [], 0, 0.0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = i / fps
        if t + 1e-6 >= next_t:
            h = round(frame.shape[0] * args.width / frame.shape[1])
            tile = cv2.resize(frame, (args.width, h), interpolation=cv2.INTER_AREA)
            cv2.rectangle(tile, (0, 0), (62, 18), (0, 0, 0), -1)
            cv2.putText(tile, f"{t:.1f}s", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
            next_t += args.step
        i += 1
    h = max(t.shape[0] for t in tiles)
    tiles = [cv2.copyMakeBorder(t, 0, h - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in tiles]
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % args.cols)
    rows = [np.hstack(tiles[r:r + args.cols]) for r in range(0, len(tiles), args.cols)]
    cv2.imwrite(args.out, np.vstack(rows))


if __name__ == "__main__":
    main()
