"""How a benchmark's ``main`` opens: its parser, then the run's settings, MNIST's test digits and a
work directory (:func:`setup`, or :func:`trained` where it needs the trained MLP), and the system
it measures (:func:`service`).

    parser = opening.parser("bench.mixed", __doc__)
    args = parser.parse_args(argv)
    if (found := opening.trained("bench.mixed")) is None:
        return 1
    model_dir, setup = found
    with opening.service(setup.work, model_dir) as (redis_url, running):
        ...  # setup.images, setup.labels, setup.bodies()
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench import models, systems
from bench.bodies import one_image_bodies, test_digits
from inferq.settings import Settings
from trainer import mnist_files


def parser(program: str, description: str | None) -> argparse.ArgumentParser:
    """``python -m <program>``'s parser; ``description`` (a module's docstring) is shown as written."""
    return argparse.ArgumentParser(prog=f"python -m {program}", description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a benchmark run works with: the settings it was given, MNIST's test split and where it
    lies, and a directory of its own."""

    settings: Settings
    data_dir: Path
    images: np.ndarray
    labels: np.ndarray
    work: Path

    def bodies(self, count: int = 200) -> list[Path]:
        """The first ``count`` test digits as one-image bodies (``bench.bodies.one_image_bodies``)."""
        return one_image_bodies(self.images, self.labels, count, self.work / "bodies")

    def models(self, spec: str | None, *, quick: bool) -> list[models.BenchModel]:
        """The models ``spec`` names (``bench.models.resolve``); raises ``models.BenchModelError``."""
        return models.resolve(spec, quick=quick, settings=self.settings, data_dir=self.data_dir, work=self.work)


def setup(program: str, settings: Settings | None = None) -> Setup:
    """``settings`` (default: the environment's), MNIST's test digits located (``mnist_files``) and
    read, and a new temporary directory named after ``program``."""
    settings = settings or Settings.from_env()
    data_dir = mnist_files.locate(Path(settings.mnist_data_dir))
    images, labels = test_digits(data_dir)
    work = Path(tempfile.mkdtemp(prefix=f"inferq-{program.removeprefix('bench.').replace('_', '-')}-"))
    return Setup(settings, data_dir, images, labels, work)


def trained(program: str, settings: Settings | None = None) -> tuple[Path, Setup] | None:
    """The trained MLP's model directory and :func:`setup`'s; None, having said why, where
    there is no trained model (``bench.models.trained_mnist_dir``)."""
    settings = settings or Settings.from_env()
    model_dir = models.trained_mnist_dir(settings, program)
    if model_dir is None:
        return None
    return model_dir, setup(program, settings)


@contextlib.contextmanager
def service(work: Path, model_dir: str | Path, **settings: object) -> Iterator[tuple[str, systems.Running]]:
    """Redis (``bench.systems.redis_server``) and inferq serving ``model_dir`` on it
    (``bench.systems.inferq_processes``, ``settings`` passed on): its URL and the running system."""
    with systems.redis_server(work) as redis_url, \
            systems.inferq_processes(redis_url, str(model_dir), **settings) as running:
        yield redis_url, running
