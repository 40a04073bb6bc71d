"""What a stopped run leaves beside its output so that ``--resume`` can go on where it stopped.

``<output>.inferq-state.json``: which input, chunk size and model the run was for; how many chunks
are written (always a prefix: chunks are written in order) and how far the output reaches; the
chunks that failed; and the jobs sent but not yet written, so that a resumed run collects them
instead of sending their images again. Rewritten atomically at each change.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import uuid
from pathlib import Path


def state_path(output: Path) -> Path:
    return output.with_name(f"{output.name}.inferq-state.json")


@dataclasses.dataclass
class RunState:
    input: dict
    chunk: int
    model: str | None
    done_chunks: int = 0
    output_bytes: int | None = None
    failed: list[dict] = dataclasses.field(default_factory=list)
    #: chunk index (as a string, JSON's keys) -> the Location of its job
    jobs: dict[str, str] = dataclasses.field(default_factory=dict)
    #: What each chunk's Idempotency-Key is made of, with its index: a resumed run sends a chunk
    #: with the key it had, and the service answers the job it made of it, if it made one.
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    def mismatch(self, other: RunState) -> str | None:
        """Why a run for ``other`` cannot resume this one, or None."""
        for field, what in (("input", "input"), ("chunk", "--chunk"), ("model", "--model")):
            if getattr(self, field) != getattr(other, field):
                return f"the state was left by a run with another {what} ({getattr(self, field)!r})"
        return None


class StateFile:
    """A run's state on disk, safe to update from the threads that submit chunks."""

    def __init__(self, path: Path, state: RunState) -> None:
        self.path = path
        self.state = state
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def load(path: Path) -> RunState | None:
        try:
            return RunState(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a state file this client can read ({exc}); "
                             f"run without --resume to start over") from None

    def job_sent(self, index: int, location: str) -> None:
        with self._lock:
            if self._closed:  # a thread the run left behind: the run is over, its state kept
                return
            self.state.jobs[str(index)] = location
            self._save()

    def chunk_written(self, index: int, output_bytes: int, failure: dict | None) -> None:
        with self._lock:
            self.state.jobs.pop(str(index), None)
            self.state.done_chunks = index + 1
            self.state.output_bytes = output_bytes
            if failure is not None:
                self.state.failed.append(failure)
            self._save()

    def jobs_cancelled(self, indexes: list[str]) -> None:
        """Forget the jobs of these chunks, cancelled: a resumed run sends them again, under new keys
        (the old ones answer the cancelled jobs)."""
        with self._lock:
            for index in indexes:
                self.state.jobs.pop(index, None)
            self.state.run_id = uuid.uuid4().hex
            self._save()

    def save(self) -> None:
        with self._lock:
            self._save()

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _save(self) -> None:
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(staging, "w") as file:
            json.dump(dataclasses.asdict(self.state), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, self.path)
