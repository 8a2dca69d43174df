"""The three test sets every model is judged on, side by side.

- `fer2013`: PublicTest with FER-2013's own labels (what the field reports);
- `ferplus`: PublicTest against the FER+ majority of ten crowd votes (what people see), ties and
  contempt/unknown/not-a-face majorities left out;
- `diffusionfer`: generated faces of another domain, whole images as faces; a cross-domain check,
  never used to train or select.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data import Split, load_folder
from trainer.ferplus import load_votes, majority, votes_for

DEFAULT_VOTES = "../shared/data/ferplus/votes.csv"
DEFAULT_DIFFUSIONFER = "../shared/data/diffusionfer"


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    x: np.ndarray  # (N, 48, 48) uint8
    y: np.ndarray  # (N,) labels in LABELS order
    excluded: int = 0  # images of the source left out (FER+: no clear majority among the seven)
    rows: np.ndarray | None = None  # which PublicTest images these are (None: another source)


def publictest(test: Split) -> Benchmark:
    return Benchmark("fer2013", "PublicTest, FER-2013 labels", test.x, test.y, rows=np.arange(len(test)))


def ferplus_majority(test: Split, votes: dict[str, np.ndarray]) -> Benchmark:
    labels = majority(votes_for(test, votes))
    clear = labels >= 0
    return Benchmark("ferplus", "PublicTest, FER+ majority", test.x[clear], labels[clear], int((~clear).sum()),
                     np.flatnonzero(clear))


def diffusionfer(folder: Path) -> Benchmark:
    split = load_folder(Path(folder))
    return Benchmark("diffusionfer", "DiffusionFER (other domain)", split.x, split.y)


def all_benchmarks(test: Split, votes_path: str | Path | None = DEFAULT_VOTES,
                   diffusion_path: str | Path | None = DEFAULT_DIFFUSIONFER) -> list[Benchmark]:
    """PublicTest on FER-2013 labels, plus FER+ and DiffusionFER where their data is at hand."""
    out = [publictest(test)]
    if votes_path and Path(votes_path).is_file() and test.paths:
        ferplus = ferplus_majority(test, load_votes(Path(votes_path)))
        if len(ferplus.y):  # votes for other images than these give no score
            out.append(ferplus)
    if diffusion_path and Path(diffusion_path).is_dir():
        out.append(diffusionfer(Path(diffusion_path)))
    return out
