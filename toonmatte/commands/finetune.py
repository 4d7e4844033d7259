"""``python -m toonmatte finetune --data ROOT --out RUN``: fine-tune BiRefNet on a dataset's train split.

Runs on one process as it is, and on several GPUs or nodes under ``accelerate launch -m toonmatte
finetune ...``. Running the same command again resumes from the run folder's last saved state.
See docs/training.md for the recipe and where to run it.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path

CONFIG_NAMES = ("toonout", "tiny")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="dataset root laid out as <split>/<generation>/{im,gt,an}/<stem>.png (train and val)")
    parser.add_argument("--out", type=Path, required=True, help="run folder: best.safetensors, card.json, "
                        "metrics.csv, curves.png and the resumable state (an existing run is resumed)")
    parser.add_argument("--init", default="toonout", help="weights to start from: random, a zoo model (toonout, "
                        "birefnet, ...) or a checkpoint file (default toonout)")
    parser.add_argument("--config", choices=CONFIG_NAMES, help="architecture for --init random (default toonout; "
                        "tiny is a small model for tests)")
    parser.add_argument("--size", type=square_size, default=1024, help="training and validation size in pixels, "
                        "a multiple of 32 (default 1024, as ToonOut)")
    parser.add_argument("--epochs", type=positive_int, default=100, help="epochs (default 100, as ToonOut)")
    parser.add_argument("--batch-size", type=positive_int, default=2, help="images per process and micro-batch "
                        "(default 2, as ToonOut; 1 keeps BatchNorm statistics fixed)")
    parser.add_argument("--grad-accum", type=positive_int, default=1,
                        help="micro-batches per optimizer step (default 1)")
    parser.add_argument("--max-steps", type=non_negative_int, help="stop after this many optimizer steps in all "
                        "(validating and saving first); the same command with a larger value goes on")
    parser.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (default 1e-5, as ToonOut); "
                        "halved after each fifth of the epochs")
    parser.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default 1e-2)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto = bf16 mixed precision on CUDA, fp32 on the CPU (fp16 is "
                             "not offered: NaN gradients)")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="recompute the backbone in the backward pass: much less GPU memory, slower steps")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                        help="flip, colour, rotation and pepper-noise augmentation (default on, as ToonOut)")
    parser.add_argument("--recomposite", type=probability, default=0.0, help="share of training samples "
                        "re-composited from their an cut-out onto a new background (default 0: off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data order, augmentation and a random init")
    parser.add_argument("--workers", type=non_negative_int, help="data-loading processes per training process")
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=0, help="also save a resumable "
                        "state every this many optimizer steps (default 0: at the end of each epoch only)")
    parser.add_argument("--log-with", help="also log to an experiment tracker that accelerate supports "
                        "(tensorboard, wandb, ...); optional")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def square_size(text: str) -> int:
    value = positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"{text} is not a multiple of 32 (BiRefNet halves the size five times)")
    return value


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return int(text)


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability between 0 and 1")
    return value


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from toonmatte.training.loop import WEIGHTS, Settings, finetune

    signal.signal(signal.SIGTERM, _stop)  # a machine or job being stopped: say where the run will resume
    if not args.verbose:
        logging.getLogger("accelerate").setLevel(logging.WARNING)  # a line per file of every saved state
    settings = Settings(data=args.data, out=args.out, init=args.init, config=args.config, size=args.size,
                        epochs=args.epochs, batch_size=args.batch_size, grad_accum=args.grad_accum,
                        max_steps=args.max_steps, lr=args.lr, weight_decay=args.weight_decay,
                        precision=args.precision, gradient_checkpointing=args.gradient_checkpointing,
                        augment=args.augment, recomposite=args.recomposite, seed=args.seed, workers=args.workers,
                        checkpoint_every=args.checkpoint_every, log_with=args.log_with)
    progress = finetune(settings)
    best = progress["best"]
    if os.environ.get("RANK", "0") == "0":  # one line, not one per process under accelerate launch
        print(f"best val PA {best['val_pa']:.4f} (epoch {best['epoch']}, step {best['step']}) in {args.out / WEIGHTS}")
    return 0
