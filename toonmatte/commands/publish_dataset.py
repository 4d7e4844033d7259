"""``python -m toonmatte export ROOT --to-hub OWNER/NAME``: publish a dataset on the Hugging Face Hub.

The ``export`` command hands a first argument other than a model format here. The complete triples
go up as plain files in ToonOut's layout with a dataset card (``toonmatte.dataset.publish``); the
token is ``$HF_TOKEN`` or the machine's saved login.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from toonmatte.errors import ToonmatteError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of publishing, added to the ``export`` command's parser."""
    parser.add_argument("--to-hub", metavar="OWNER/NAME",
                        help="with a dataset folder: publish it to this Hugging Face Hub dataset repo")
    parser.add_argument("--license", default="unknown",
                        help="with --to-hub: the dataset's licence as a Hub licence id, e.g. "
                             "cc-by-4.0 (default unknown)")
    parser.add_argument("--private", action="store_true", help="with --to-hub: create the repo private")


def run(args: argparse.Namespace, root: str) -> int:
    from toonmatte.dataset.publish import publish

    if not args.to_hub:
        raise ToonmatteError(f"To publish {root}, say where: add --to-hub OWNER/NAME (or export onnx for the model).")
    result = publish(Path(root), args.to_hub, licence=args.license, private=args.private)
    skipped = f"; skipped {result.skipped} incomplete items" if result.skipped else ""
    print(f"published {result.items} items ({result.files} files, {result.deleted} stale files removed{skipped}) "
          f"with a dataset card to https://huggingface.co/datasets/{result.repo_id}")
    return 0
