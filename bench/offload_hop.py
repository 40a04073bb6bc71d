"""What handing an image's decode to a native thread costs under gevent: ``python -m bench.offload_hop``.

Decodes one MNIST digit (28 x 28) and one 252 x 252 image, each in place and through
``api.images.offload`` (gevent's ThreadPool: a hand-off to a native thread and a wake-up of the hub
back), in turn, in a process patched as gunicorn's gevent worker patches itself: what
``api.images.uploads.INLINE_PIXELS`` weighs.
"""

from gevent import monkey

monkey.patch_all()

import io  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from api.images import offload  # noqa: E402
from bench.bodies import png, test_digits  # noqa: E402
from inferq.settings import Settings  # noqa: E402
from trainer import mnist_files  # noqa: E402

ROUNDS = 3000


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32)


def main() -> int:
    images, _ = test_digits(mnist_files.locate(Path(Settings.from_env().mnist_data_dir)))
    for name, data in (("28x28", png(images[0])), ("252x252", png(np.tile(images[0], (9, 9))))):
        samples: dict[str, list[float]] = {"in place": [], "handed off": []}
        steps = {"in place": lambda data=data: decode(data), "handed off": lambda data=data: offload.run(decode, data)}
        for _ in range(ROUNDS):
            for way, step in steps.items():
                started = time.perf_counter()
                step()
                samples[way].append(time.perf_counter() - started)
        print(name, ", ".join(f"{way}: median {statistics.median(taken) * 1e6:.0f} us, "
                              f"p99 {sorted(taken)[int(0.99 * ROUNDS)] * 1e6:.0f} us"
                              for way, taken in samples.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
