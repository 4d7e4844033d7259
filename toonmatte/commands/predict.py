"""``python -m toonmatte predict INPUT... --out DIR``: matte files, folders and globs in a batch.

Each image gives ``<stem>.png`` (8-bit alpha) and ``<stem>_rgba.png`` (the cut-out). A bad
file is reported in one line and the batch goes on; the exit status is 1 if any failed.
Under ``accelerate launch -m toonmatte predict ...`` each process mattes its own share of the
files (every n-th, in order) on its own device and writes that share's outputs.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tqdm import tqdm

from toonmatte.errors import BadImageError, ToonmatteError
from toonmatte.imaging.foreground import cutout
from toonmatte.imaging.imageio import LoadedImage, collect_inputs, load_image, prepare_folder, write_png_atomic
from toonmatte.launch import own_device, process_count, process_index
from toonmatte.model.zoo import DEFAULT_MODEL, ZOO
from toonmatte.preannotate import PreAnnotations

if TYPE_CHECKING:
    from toonmatte.pipeline import Matte, Matter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"which model to run: {', '.join(ZOO)}, 'fallback' (classical, no weights) or the path "
                             f"of a checkpoint or fine-tune run folder (default {DEFAULT_MODEL})")
    parser.add_argument("--weights", help="checkpoint file to use instead of the Hugging Face Hub "
                                          "(.pth or .safetensors, or with --backend onnx an exported .onnx; "
                                          "also $TOONMATTE_WEIGHTS)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="auto = bf16 on CUDA and on CPUs with bf16 instructions, else fp32 "
                             "(always fp32 with --backend onnx)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                        help="torch, or onnx: ONNX Runtime on the model's ONNX export (made once into the "
                             "toonmatte cache unless --weights is an .onnx file)")
    parser.add_argument("--foreground", action=argparse.BooleanOptionalAction, default=True,
                        help="decontaminate edge colours of the cut-out (blur-fusion foreground estimation)")
    parser.add_argument("--skip-existing", action="store_true", help="skip images whose outputs already exist")
    parser.add_argument("--for-studio", action="store_true",
                        help="also record each source's hash, the model version and the matte's uncertainty, so "
                             "that the studio started with --predictions OUT opens these images without the model")
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


def writer_threads() -> int:
    """Threads that cut out and write finished mattes while the model runs the next batch."""
    return max(1, min(4, os.cpu_count() or 1))


def load_chunk(chunk: list[tuple[Path, str]], background: tuple[int, int, int]
               ) -> tuple[list[tuple[LoadedImage, str]], list[BadImageError]]:
    """Decode a batch's files; the ones that cannot be read come back as errors, not raised."""
    loaded, errors = [], []
    for path, stem in chunk:
        try:
            loaded.append((load_image(path, background=background), stem))
        except BadImageError as error:
            errors.append(error)
    return loaded, errors


def save_outputs(out: Path, stem: str, matte: Matte, foreground: bool,
                 note: Callable[[Path, Matte], None] | None = None) -> None:
    """Write ``<stem>.png`` (the alpha) and ``<stem>_rgba.png`` (the cut-out), then ``note(alpha path,
    matte)`` when given; raises ToonmatteError."""
    alpha_path, rgba_path = output_paths(out, stem)
    write_png_atomic(alpha_path, matte.alpha)
    write_png_atomic(rgba_path, cutout(matte.image, matte.alpha, foreground=foreground))
    if note is not None:
        note(alpha_path, matte)


def run(args: argparse.Namespace) -> int:
    from toonmatte.pipeline import Matter  # imports torch: not needed for --help

    paths = collect_inputs(args.inputs, recursive=args.recursive)
    if not paths:
        print("error: no images found in the given inputs; pass image files, "
              "folders or glob patterns.", file=sys.stderr)
        return 1
    jobs = list(zip(paths, unique_stems(paths)))
    rank, processes = process_index(), process_count()
    if processes > 1:  # launched as several processes: this one's share, decided before any output exists
        jobs = jobs[rank::processes]
        if args.device == "auto":
            args.device = own_device()
    mine = len(jobs)
    if args.skip_existing:
        jobs = [(p, s) for p, s in jobs if not all(o.exists() for o in output_paths(args.out, s))]
    prepare_folder(args.out, "The output folder")  # before the model loads: a bad --out costs nothing
    matter = Matter(args.model, weights=args.weights, device=args.device, precision=args.precision,
                    backend=args.backend)
    failed = matte_files(matter, jobs, args.out, batch_size=args.batch_size, foreground=args.foreground,
                         notes=studio_notes(matter, jobs, args.out, rank) if args.for_studio else None)
    done = len(jobs) - failed
    share = f"process {rank + 1} of {processes}: " if processes > 1 else ""
    print(f"{share}{done} of {len(jobs)} image(s) matted with {matter.title} into {args.out}"
          + (f"; {failed} failed" if failed else "") + (f"; {mine - len(jobs)} skipped" if mine > len(jobs) else ""))
    return 1 if failed else 0


def studio_notes(matter: Matter, jobs: list[tuple[Path, str]], out: Path, process: int
                 ) -> Callable[[str], Callable[[Path, Matte], None]]:
    """For ``--for-studio``: a stem -> the note that records its written alpha in ``out``'s studio index."""
    index = PreAnnotations(out, process)
    sources = {stem: path for path, stem in jobs}
    version = str(getattr(matter, "version", matter.engine))

    def note_for(stem: str) -> Callable[[Path, Matte], None]:
        return lambda alpha_path, matte: index.record(sources[stem], alpha_path, matte.alpha, matte.engine, version)
    return note_for


class BatchMatter(Protocol):
    """What :func:`matte_files` uses of a ``Matter`` (the bench passes a stand-in without a model)."""

    @property
    def title(self) -> str: ...

    @property
    def background(self) -> tuple[int, int, int]: ...

    def predict_batch(self, images: list[LoadedImage], batch_size: int = 1) -> list[Matte]: ...


def matte_files(matter: BatchMatter, jobs: list[tuple[Path, str]], out: Path, batch_size: int = 1,
                foreground: bool = True, notes: Callable[[str], Callable[[Path, Matte], None]] | None = None) -> int:
    """Matte (path, stem) jobs into ``out`` in batches; returns how many failed (each reported in one line).
    ``notes(stem)``, when given, is told of each written alpha (``save_outputs``' ``note``).

    Three stages overlap: a thread decodes the next batch and a few threads cut out and write the
    last one (foreground estimation and PNG compression release the GIL) while the model runs. On a
    GPU the model is the shortest stage; one after another, these CPU stages would set the pace.
    """
    prepare_folder(out, "The output folder")
    chunks = [jobs[start:start + batch_size] for start in range(0, len(jobs), batch_size)]
    threads, failed = writer_threads(), 0
    with tqdm(total=len(jobs), desc=f"matting ({matter.title})", unit="image", disable=None) as progress, \
            ThreadPoolExecutor(1, thread_name_prefix="toonmatte-load") as loader, \
            ThreadPoolExecutor(threads, thread_name_prefix="toonmatte-write") as writers:

        def finished(error: BaseException | None) -> None:
            nonlocal failed
            if error is not None:  # a bad file is reported alone; the rest of its batch goes on
                if not isinstance(error, ToonmatteError):
                    raise error
                failed += 1
                tqdm.write(f"error: {error}", file=sys.stderr)
            progress.update(1)

        writing: deque[Future] = deque()
        upcoming = loader.submit(load_chunk, chunks[0], matter.background) if chunks else None
        for index in range(len(chunks)):
            assert upcoming is not None  # submitted before the loop and on every pass but the last
            loaded, errors = upcoming.result()
            if index + 1 < len(chunks):
                upcoming = loader.submit(load_chunk, chunks[index + 1], matter.background)
            for error in errors:
                finished(error)
            mattes = matter.predict_batch([item for item, _ in loaded], batch_size=batch_size)
            for (_, stem), matte in zip(loaded, mattes):
                writing.append(writers.submit(save_outputs, out, stem, matte, foreground,
                                              None if notes is None else notes(stem)))
            while len(writing) > 2 * threads:  # bounds the mattes held in memory
                finished(writing.popleft().exception())
        while writing:
            finished(writing.popleft().exception())
    return failed
