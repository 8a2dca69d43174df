"""TensorFlow without its chatter: start-up, device probing and the TFLite converter's C++ logs.

TensorFlow's C++ side writes to the process's stdout and stderr directly, some of it before any
logging switch applies, so the only reliable switch is the file descriptors themselves. Real
failures still surface: as Python exceptions, which carry the message.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout


@contextmanager
def output_silenced() -> Iterator[None]:
    """Send everything written inside the block, by Python or by C++ code, to /dev/null."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    try:
        with open(os.devnull, "w") as null, redirect_stdout(null), redirect_stderr(null):
            for fd in (1, 2):
                os.dup2(null.fileno(), fd)
            yield
    finally:
        for stream in (sys.stdout, sys.stderr):  # what the real streams buffered inside the block
            stream.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def import_tensorflow(prog: str) -> None:
    """Import TensorFlow and probe the devices once, quietly; later imports are silent.

    Without TensorFlow (an edge-only install) the command `prog` ends with one line and exit code 2.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with output_silenced():
            import tensorflow as tf

            tf.config.list_logical_devices()  # the CUDA probe, which logs an error on CPU-only machines
    except ImportError as e:
        print(f"{prog}: error: {e}; the trainer needs the [train] extra: "
              "pip install -e '.[train]'", file=sys.stderr)
        raise SystemExit(2) from None
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
