"""The client's scenario: ``inferq score`` of MNIST's test digits, to set beside the bulk scenario.

The same path the command takes (chunks of 1,024 as .npy uploads, 4 in flight, answers written to a
file in order), run in this process so that the interpreter's start is not counted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from inferq.client import Client, score_file


@dataclasses.dataclass
class ClientResult:
    images: int
    seconds: float
    images_per_s: float
    wrong_labels: int
    failed: int


def client_score(base_url: str, images: np.ndarray, labels: np.ndarray, work: Path) -> ClientResult:
    source, output = work / "t10k.npy", work / "client-labels.npy"
    np.save(source, images)
    summary = score_file(Client(base_url), source, output, chunk=1024, concurrency=4)
    answered = np.load(output)
    return ClientResult(len(images), summary.seconds, summary.rate, int((answered != labels).sum()),
                        summary.failed_images)
