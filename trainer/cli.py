"""``python -m trainer``: train and export the next model version (the default), or ``export-png``.

    python -m trainer [--params config/model.json] [--epochs N]
    python -m trainer export-png [--split testing] [--out mnist_png] [--data DIR] [--no-download]

A mistake in parameters or data is one line on stderr, ``error: <message>``, and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from inferq.settings import Settings
from trainer import data, mnist_files, params
from trainer.errors import TrainerError

DEFAULT_PARAMS = "config/model.json"
EXIT_ERROR = 2  # argparse's status for a bad command line; a bad parameter file is the same kind of error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer",
        description="Train the MNIST MLP and export it as the next SavedModel version under save_path "
        "(MODEL_DIR).",
    )
    parser.add_argument(
        "--params", default=DEFAULT_PARAMS, help=f"JSON file of training parameters (default {DEFAULT_PARAMS})"
    )
    parser.add_argument("--epochs", type=int, help="override the file's epochs")
    commands = parser.add_subparsers(dest="command", metavar="{export-png}")
    png = commands.add_parser(
        "export-png", help="write MNIST as an mnist_png tree: <out>/<split>/<label>/<index>.png"
    )
    png.add_argument("--split", choices=mnist_files.SPLITS, default="testing", help="default: testing")
    png.add_argument("--out", type=Path, default=Path("mnist_png"), help="default: mnist_png")
    png.add_argument(
        "--data", type=Path, help="directory of the IDX files (default: MNIST_DATA_DIR, else data/mnist)"
    )
    png.add_argument("--no-download", action="store_true", help="fail rather than fetch missing IDX files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "export-png":
            return _export_png(args)
        return _train(args)
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _train(args: argparse.Namespace) -> int:
    loaded = params.load_params(args.params, os.environ)
    if "MNIST_DATA_DIR" not in os.environ:
        loaded = dataclasses.replace(loaded, data_path=str(mnist_files.locate(Path(loaded.data_path))))
    if args.epochs is not None:
        try:
            loaded = dataclasses.replace(loaded, epochs=args.epochs)
        except TrainerError as exc:
            raise TrainerError(f"--epochs: {exc}") from None
    from trainer.train import train_and_export  # imports TensorFlow, so only once the parameters are good

    train_and_export(loaded)
    return 0


def _export_png(args: argparse.Namespace) -> int:
    data_dir = args.data or mnist_files.locate(Path(Settings.from_env(_data_dir_env()).mnist_data_dir))
    split = data.load_idx_split(data_dir, args.split, download_missing=not args.no_download)
    try:
        from trainer.png_export import write_png_tree

        split_dir = write_png_tree(split, args.split, args.out)
    except OSError as exc:
        raise TrainerError(f"cannot write the PNG tree under {args.out}: {exc}") from None
    example = next(split_dir.glob("*/0.png"))
    print(f"Wrote {len(split.labels)} PNG files under {split_dir} (e.g. {example})")
    return 0


def _data_dir_env() -> dict[str, str]:
    # Only MNIST_DATA_DIR is read, so an unrelated bad setting cannot stop this command.
    value = os.environ.get("MNIST_DATA_DIR", "")
    return {"MNIST_DATA_DIR": value} if value else {}
