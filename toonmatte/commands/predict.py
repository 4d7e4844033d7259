"""``python -m toonmatte predict INPUT... --out DIR``: matte files, folders and globs in a batch.

Each image gives ``<stem>.png`` (8-bit alpha) and ``<stem>_rgba.png`` (the cut-out). A bad
file is reported in one line and the batch goes on; the exit status is 1 if any failed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from toonmatte.errors import BadImageError
from toonmatte.zoo import DEFAULT_MODEL, ZOO


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=[*ZOO, "fallback"],
                        help=f"which model to run (default {DEFAULT_MODEL}; 'fallback' = classical, no weights)")
    parser.add_argument("--weights", help="checkpoint file to use instead of the Hugging Face Hub "
                                          "(.pth or .safetensors; also $TOONMATTE_WEIGHTS)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="auto = bf16 on CUDA and on CPUs with bf16 instructions, else fp32")
    parser.add_argument("--foreground", action=argparse.BooleanOptionalAction, default=True,
                        help="decontaminate edge colours of the cut-out (blur-fusion foreground estimation)")
    parser.add_argument("--skip-existing", action="store_true", help="skip images whose outputs already exist")
    parser.add_argument("--recursive", action="store_true", help="also look into sub-folders of folder inputs")
    parser.add_argument("--batch-size", type=positive_int, default=1,
                        help="images per forward pass (on a GPU, 4-16 raise throughput; default 1)")


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of images of at least 1")
    return int(text)


def output_paths(out: Path, stem: str) -> tuple[Path, Path]:
    return out / f"{stem}.png", out / f"{stem}_rgba.png"


def unique_stems(paths: list[Path]) -> list[str]:
    """File stems, made unique with a numeric suffix when two inputs share one (a/x.png, b/x.jpg)."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        stems.append(path.stem if count == 0 else f"{path.stem}_{count + 1}")
    return stems


def run(args: argparse.Namespace) -> int:
    from toonmatte.foreground import cutout
    from toonmatte.imageio import collect_inputs, load_image, write_png_atomic
    from toonmatte.pipeline import Matter

    paths = collect_inputs(args.inputs, recursive=args.recursive)
    if not paths:
        print("error: no images found in the given inputs; pass image files, folders or glob patterns.", file=sys.stderr)
        return 1
    jobs = list(zip(paths, unique_stems(paths)))
    if args.skip_existing:
        jobs = [(p, s) for p, s in jobs if not all(o.exists() for o in output_paths(args.out, s))]
    matter = Matter(args.model, weights=args.weights, device=args.device, precision=args.precision)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tqdm(total=len(jobs), desc=f"matting ({matter.title})", unit="image", disable=None) as progress:
        for start in range(0, len(jobs), args.batch_size):
            chunk = jobs[start:start + args.batch_size]
            loaded = []  # a bad file is reported alone; the rest of its batch goes on
            for path, stem in chunk:
                try:
                    loaded.append((load_image(path, background=matter.background), stem))
                except BadImageError as error:
                    failed += 1
                    tqdm.write(f"error: {error}", file=sys.stderr)
            mattes = matter.predict_batch([item for item, _ in loaded], batch_size=args.batch_size)
            for (_, stem), matte in zip(loaded, mattes):
                alpha_path, rgba_path = output_paths(args.out, stem)
                write_png_atomic(alpha_path, matte.alpha)
                write_png_atomic(rgba_path, cutout(matte.image, matte.alpha, foreground=args.foreground))
            progress.update(len(chunk))
    done = len(jobs) - failed
    print(f"{done} of {len(jobs)} image(s) matted with {matter.title} into {args.out}"
          + (f"; {failed} failed" if failed else "") + (f"; {len(paths) - len(jobs)} skipped" if len(paths) > len(jobs) else ""))
    return 1 if failed else 0
