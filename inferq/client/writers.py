"""Output files, chosen by extension, written a chunk at a time in input order.

``.jsonl``: a line per image, ``{"name", "labels", "probabilities", "model_version"}``, or
``{"name", "error"}`` for an image whose job failed. ``.csv``: ``name,label,probability,
model_version,error`` (the probability of the label). ``.npy``: int64 labels, -1 where failed.
Each can be reopened where a stopped run left it: ``commit()`` makes what was written durable and
says where to continue from.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import orjson

from inferq.client.scoring import Chunk

FORMATS = (".jsonl", ".csv", ".npy")


class LineWriter:
    """A text file of rows, reopened by truncating it to the last committed byte."""

    header = b""

    def __init__(self, path: Path, total: int, resume_at: int | None = None) -> None:
        if resume_at is None:
            self.file = open(path, "wb")  # noqa: SIM115 - held open for the run, closed in close()
            self.file.write(self.header)
        else:
            self.file = open(path, "r+b")  # noqa: SIM115
            self.file.truncate(resume_at)
            self.file.seek(resume_at)

    def write(self, chunk: Chunk) -> None:
        self.file.write(self.rows(chunk))

    def rows(self, chunk: Chunk) -> bytes:
        raise NotImplementedError

    def commit(self) -> int:
        self.file.flush()
        os.fsync(self.file.fileno())
        return self.file.tell()

    def close(self) -> None:
        self.file.close()


class JsonlWriter(LineWriter):
    def rows(self, chunk: Chunk) -> bytes:
        if chunk.answers is None:
            return b"".join(orjson.dumps({"name": name, "error": chunk.error}) + b"\n" for name in chunk.names)
        return b"".join(
            orjson.dumps({"name": name, "labels": [answer.label], "probabilities": answer.probabilities,
                          "model_version": answer.model_version}) + b"\n"
            for name, answer in zip(chunk.names, chunk.answers, strict=True))


class CsvWriter(LineWriter):
    header = b"name,label,probability,model_version,error\r\n"

    def rows(self, chunk: Chunk) -> bytes:
        text = io.StringIO()
        rows = csv.writer(text)
        if chunk.answers is None:
            rows.writerows([name, "", "", "", chunk.error] for name in chunk.names)
        else:
            rows.writerows([name, answer.label, answer.probabilities[answer.label], answer.model_version, ""]
                           for name, answer in zip(chunk.names, chunk.answers, strict=True))
        return text.getvalue().encode()


class NpyWriter:
    """Labels in a ``.npy`` made at full size up front, filled in place: a stopped run's file is valid."""

    def __init__(self, path: Path, total: int, resume_at: int | None = None) -> None:
        mode = "w+" if resume_at is None else "r+"
        shape = (total,) if mode == "w+" else None
        self.labels = np.lib.format.open_memmap(path, mode=mode, dtype=np.int64, shape=shape)
        if resume_at is None:
            self.labels[:] = -1
        elif self.labels.shape != (total,):
            raise ValueError(f"{path} holds {self.labels.shape} labels, the input {total} images: not this run's")

    def write(self, chunk: Chunk) -> None:
        self.labels[chunk.start:chunk.stop] = chunk.labels

    def commit(self) -> int:
        self.labels.flush()
        return 0

    def close(self) -> None:
        self.labels.flush()
        del self.labels


def check_format(path: Path) -> str:
    """The output format ``path`` asks for, or a ValueError that lists the ones there are."""
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: the output's extension says its format: one of {', '.join(FORMATS)}")
    return path.suffix.lower()


def writer_for(path: Path, total: int, resume_at: int | None = None) -> LineWriter | NpyWriter:
    kinds = {".jsonl": JsonlWriter, ".csv": CsvWriter, ".npy": NpyWriter}
    return kinds[check_format(path)](path, total, resume_at)
