"""A data set scored into an output file, resumable: what ``inferq score`` does, callable from Python."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from inferq.client.client import Client
from inferq.client.dataset import open_dataset
from inferq.client.scoring import Chunk, score_chunks
from inferq.client.state import RunState, StateFile, state_path
from inferq.client.writers import check_format, writer_for


@dataclasses.dataclass
class Summary:
    images: int
    #: Images answered by this run, and images a resumed run found already written.
    scored: int
    resumed: int
    #: One entry per failed chunk: its images (start, stop, first and last name) and the error.
    failures: list[dict]
    seconds: float
    state_file: Path

    @property
    def failed_images(self) -> int:
        return sum(failure["stop"] - failure["start"] for failure in self.failures)

    @property
    def rate(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


def score_file(client: Client, source: str | Path, output: str | Path, *, model: str | None = None,
               chunk: int = 1024, concurrency: int = 4, resume: bool = False,
               on_start: Callable[[int, int], None] | None = None,
               on_chunk: Callable[[Chunk], None] | None = None, callback: str | None = None) -> Summary:
    """Scores ``source`` into ``output``. Ctrl-C or an error stops the run (and ``client``) resumably:
    the state file records what is written and which jobs are out; ``resume=True`` goes on from there."""
    output = Path(output)
    check_format(output)
    dataset = open_dataset(source)
    chunk = min(chunk, client.max_images)
    fresh = RunState(dataset.identity(), chunk, model)
    path = state_path(output)
    earlier = StateFile.load(path) if resume else None
    if earlier is not None:
        problem = earlier.mismatch(fresh)
        if problem is not None:
            raise ValueError(f"cannot resume from {path}: {problem}; run without --resume to start over")
        if earlier.done_chunks and not output.exists():
            raise ValueError(f"cannot resume: {output} is gone; run without --resume to start over")
    state = StateFile(path, earlier or fresh)
    state.save()  # from the start, so that a run stopped before its first chunk resumes too
    resume_at = state.state.output_bytes if earlier is not None and earlier.done_chunks else None
    writer = writer_for(output, len(dataset), resume_at)
    done_images = min(state.state.done_chunks * chunk, len(dataset))
    if on_start is not None:
        on_start(len(dataset), done_images)
    started = time.perf_counter()
    scored = 0
    chunks = score_chunks(client.transport, dataset, model=model, chunk=chunk, concurrency=concurrency,
                          first_chunk=state.state.done_chunks,
                          known_jobs={int(index): location for index, location in state.state.jobs.items()},
                          on_submit=state.job_sent, callback=callback, run_id=state.state.run_id)
    try:
        for scored_chunk in chunks:
            writer.write(scored_chunk)
            failure = None if scored_chunk.error is None else _failure(scored_chunk)
            state.chunk_written(scored_chunk.index, writer.commit(), failure)
            scored += len(scored_chunk.names) if failure is None else 0
            if on_chunk is not None:
                on_chunk(scored_chunk)
    except BaseException:
        client.stop()
        raise
    finally:
        # Requests on the wire get a moment to end, so that a job sent just now is recorded and a
        # resumed run collects it rather than sending its images again.
        chunks.close()
        state.close()
        writer.close()
    summary = Summary(len(dataset), scored, done_images, list(state.state.failed), time.perf_counter() - started,
                      path)
    if not summary.failures:
        state.remove()
    return summary


def _failure(chunk: Chunk) -> dict:
    return {"chunk": chunk.index, "start": chunk.start, "stop": chunk.stop, "first": chunk.names[0],
            "last": chunk.names[-1], "error": chunk.error}
