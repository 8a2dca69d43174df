"""One Keras training pass per image, by architecture and precision (batch 128, no augmentation).

    .venv/bin/python benchmarks/train-speed.py ARCH WIDTH float32|mixed_bfloat16

Builds the net under the policy, trains one warm-up epoch over 1,024 random images, then times two
more; prints the ms per image. Run the variants back to back to compare them on one machine.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from trainer.models import ARCHITECTURES  # noqa: E402

arch, width, policy = sys.argv[1], float(sys.argv[2]), sys.argv[3]
keras.mixed_precision.set_global_policy(policy)
model = ARCHITECTURES[arch](width=width)
model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
x = np.random.default_rng(0).random((1024, 48, 48, 1), np.float32) * 255
y = keras.utils.to_categorical(np.random.default_rng(1).integers(0, 7, 1024), 7)
model.fit(x, y, batch_size=128, epochs=1, verbose=0)
started = time.perf_counter()
model.fit(x, y, batch_size=128, epochs=2, verbose=0)
ms = (time.perf_counter() - started) / 2048 * 1e3
print(f"{arch} width {width:g} {policy}: {model.count_params():,} params, {ms:.2f} ms an image")
