"""``inferq``: score a data set into a file, or recognise a few images, from the command line; and
``inferq tune``, which measures a model on the host that will serve it (``worker.tune``)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import orjson

from inferq.client.client import DEFAULT_MAX_IMAGES, Client
from inferq.client.errors import ClientError, JobLost
from inferq.client.http import RetryPolicy
from inferq.client.job import Job
from inferq.client.run import Summary, score_file
from inferq.client.state import StateFile, state_path

#: Exit statuses: every image answered; some images failed (listed); the run could not go on.
OK, SOME_FAILED, ERROR, INTERRUPTED = 0, 1, 2, 130


#: ``inferq tune``: run where the workers' side (TensorFlow) is installed, in a process of its own, so
#: that the client never imports it.
TUNE_COMMAND = "import sys; from worker.tune import main; sys.exit(main(sys.argv[1:]))"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tune"]:
        return tune(argv[1:])
    args = _parser().parse_args(argv)
    client = Client(args.url, args.api_key, retry=RetryPolicy(patience_s=args.patience))
    try:
        return args.command(client, args)
    except KeyboardInterrupt:
        client.stop()
        print(f"\ninferq: interrupted{_resume_hint(args)}", file=sys.stderr)
        if args.command is score:
            _offer_to_cancel(args)
        return INTERRUPTED
    except ClientError as exc:
        client.stop()
        print(f"inferq: {exc}{_resume_hint(args)}", file=sys.stderr)
        return ERROR
    except (ValueError, TypeError, OSError) as exc:  # what the client was given: the input, the output
        client.stop()
        print(f"inferq: {exc}", file=sys.stderr)
        return ERROR


def score(client: Client, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    bars: list[tqdm] = []
    client.transport.on_retry = lambda problem: bars and bars[0].set_postfix_str(f"retrying: {problem[:70]}",
                                                                                 refresh=False)

    def started(total: int, done: int) -> None:
        bars.append(tqdm(total=total, initial=done, unit="img", file=sys.stderr, disable=args.quiet,
                         dynamic_ncols=True, desc="scoring", smoothing=0.1))

    def chunk_done(chunk) -> None:
        bars[0].set_postfix_str("", refresh=False)
        bars[0].update(len(chunk.names))

    try:
        summary = score_file(client, args.input, args.out, model=args.model, chunk=args.chunk,
                             concurrency=args.concurrency, resume=args.resume, on_start=started, on_chunk=chunk_done,
                             callback=args.callback)
    finally:
        for bar in bars:
            bar.close()
    _report(summary, Path(args.out))
    return SOME_FAILED if summary.failures else OK


def tune(argv: list[str]) -> int:
    missing = [name for name in ("worker", "tensorflow") if importlib.util.find_spec(name) is None]
    if missing:
        print(f"inferq tune: runs where the workers run, with TensorFlow: {' and '.join(missing)} not installed "
              "here (pip install 'inferq[cpu]')", file=sys.stderr)
        return ERROR
    try:
        return subprocess.run([sys.executable, "-c", TUNE_COMMAND, *argv], check=False).returncode
    except KeyboardInterrupt:
        print("\ninferq tune: interrupted; nothing written", file=sys.stderr)
        return INTERRUPTED


def recognize(client: Client, args: argparse.Namespace) -> int:
    for answer in client.recognize(args.files, model=args.model):
        sys.stdout.write(orjson.dumps(answer.to_dict()).decode() + "\n")
    return OK


def _report(summary: Summary, output: Path) -> None:
    lines = [f"scored {summary.scored} images in {summary.seconds:.2f} s ({summary.rate:,.0f} images/s) into "
             f"{output}; {summary.failed_images} failed"]
    if summary.resumed:
        lines.append(f"{summary.resumed} images were written by an earlier run and not sent again")
    for failure in summary.failures:
        lines.append(f"FAILED images {failure['start']}..{failure['stop'] - 1} ({failure['first']} .. "
                     f"{failure['last']}): {failure['error']}")
    if summary.failures:
        lines.append(f"{summary.failed_images} of {summary.images} images have no answer (rows with an error in "
                     f"the output); {summary.state_file} lists them; run again without --resume to retry them")
    print("\n".join(lines), file=sys.stderr)


def _offer_to_cancel(args: argparse.Namespace) -> None:
    """After Ctrl-C: cancel the jobs the run sent and has not written, if ``--cancel-on-interrupt``
    says so or the user answers yes on a terminal; else they go on, for ``--resume`` to collect."""
    path = state_path(Path(args.out))
    try:
        state = StateFile.load(path)
    except ValueError:
        return
    if state is None or not state.jobs:
        return
    count = len(state.jobs)
    cancel = args.cancel_on_interrupt
    if not cancel and sys.stdin.isatty() and sys.stderr.isatty():
        try:
            cancel = input(f"inferq: cancel the {count} jobs this run has on the service? [y/N] ").strip().lower() \
                in ("y", "yes")
        except (EOFError, KeyboardInterrupt):
            cancel = False
    if not cancel:
        print(f"inferq: {count} jobs are left running on the service; --resume collects their answers "
              "(--cancel-on-interrupt cancels them instead)", file=sys.stderr)
        return
    client = Client(args.url, args.api_key, retry=RetryPolicy(patience_s=min(args.patience, 10.0)))
    cancelled = []
    for index, location in state.jobs.items():
        try:
            if Job.at(client.transport, location).cancel():
                cancelled.append(index)
        except JobLost:
            cancelled.append(index)
        except ClientError as exc:
            print(f"inferq: could not cancel {location}: {exc}", file=sys.stderr)
    StateFile(path, state).jobs_cancelled(cancelled)
    print(f"inferq: cancelled {len(cancelled)} of {count} jobs; --resume sends their images again", file=sys.stderr)


def _resume_hint(args: argparse.Namespace) -> str:
    if args.command is not score:
        return ""
    return f"; what is written to {args.out} is kept: run the same command with --resume to go on"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inferq", description="A client of an inferq service.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", metavar="URL", default=os.environ.get("INFERQ_URL", "http://localhost:8080"),
                        help="the service (default: $INFERQ_URL or http://localhost:8080)")
    common.add_argument("--model", metavar="NAME",
                        help="a model by name (/models/NAME/...); default: the service's own")
    common.add_argument("--api-key", metavar="KEY", default=os.environ.get("INFERQ_API_KEY"),
                        help="the service's API_KEY (default: $INFERQ_API_KEY)")
    common.add_argument("--patience", metavar="SECONDS", type=float, default=RetryPolicy.patience_s,
                        help="how long to keep asking a busy or unreachable service (default %(default)g)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("score", parents=[common], help="score a whole data set into a file")
    run.add_argument("input", metavar="INPUT",
                     help="a .npy or IDX file of uint8 images (gzipped or not), or a directory of images")
    run.add_argument("--out", metavar="OUTPUT", required=True, help="OUTPUT.jsonl, OUTPUT.csv or OUTPUT.npy (labels)")
    run.add_argument("--concurrency", metavar="N", type=_positive, default=4,
                     help="chunks in flight at once (default 4)")
    run.add_argument("--chunk", metavar="N", type=_positive, default=DEFAULT_MAX_IMAGES,
                     help=f"images per request (default and most: {DEFAULT_MAX_IMAGES})")
    run.add_argument("--resume", action="store_true", help="go on from where a stopped run left OUTPUT")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--cancel-on-interrupt", action="store_true",
                     help="on Ctrl-C, cancel the jobs sent and not yet written, without asking (on a terminal "
                          "the run asks; otherwise they are left running for --resume)")
    run.add_argument("--callback", metavar="URL",
                     help="a URL the service POSTs each chunk's job to when it ends (one it allows)")
    run.set_defaults(command=score)

    one = commands.add_parser("recognize", parents=[common], help="print the answer for each image file")
    one.add_argument("files", metavar="FILE", nargs="+",
                     help="image files (PNG, JPEG, ...), or .npy / IDX files of many")
    one.set_defaults(command=recognize)

    # Parsed by ``worker.tune`` (main sends ``tune`` there first): here for the list of commands.
    commands.add_parser("tune", add_help=False, help="measure a model on this host and propose its batch, "
                        "thread and worker settings (inferq tune --help)")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
