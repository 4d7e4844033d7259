"""``python -m toonmatte``: a thin command-line layer over the library.

Each sub-command lives in ``toonmatte/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int`` (the exit status).
Modules are imported only when their command runs, so ``--help`` stays fast.
Before a command that runs the model, on the CPU, ``main`` opts the process into glibc's
keep-freed-memory setting (``toonmatte.model.runtime.keep_freed_memory``): a process-wide
choice that belongs to an entry point, not to the library.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from toonmatte.errors import ToonmatteError

COMMANDS: dict[str, str] = {
    "predict": "Matte images: writes <stem>.png (alpha) and <stem>_rgba.png (cut-out).",
    "bench": "Benchmark the model forward pass, GEMM throughput and foreground estimation.",
    "evaluate": "Score predicted mattes against ground truth with ToonOut's metrics.",
    "split": "Shuffle a dataset's items into train/val/test as ToonOut did.",
    "report": "Write a self-contained HTML quality report for a dataset.",
    "export": "Export the model's inference graph to ONNX (export onnx), or publish a dataset on the Hugging Face Hub "
              "(export ROOT --to-hub OWNER/NAME).",
    "finetune": "Fine-tune the model on a dataset's train split, validating on val (accelerate launch for many GPUs).",
}


MODEL_COMMANDS = ("predict", "bench", "evaluate", "report", "export")  # commands that may run the model


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    launched_as = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = "toonmatte" if launched_as == "toonmatte" else "python -m toonmatte"  # the console script, or -m
    parser = argparse.ArgumentParser(prog=prog, description="Anime background removal (ToonOut).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = {name: sub.add_parser(name, help=text, description=text) for name, text in COMMANDS.items()}
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, commands = build_parser()
    name = next((arg for arg in argv if arg in COMMANDS), None)
    if name is None:
        parser.parse_args(argv)  # prints usage or help and exits
        return 2
    module = importlib.import_module(f"toonmatte.commands.{name}")
    module.add_arguments(commands[name])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s")
    if name in MODEL_COMMANDS:
        from toonmatte.model import runtime

        runtime.keep_freed_memory_on_cpu(getattr(args, "device", "cpu"))
    try:
        return int(module.run(args) or 0)
    except ToonmatteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
