"""The studio's entry point: ``toonmatte-studio`` (installed) and ``python app.py`` (a checkout, and the
Hugging Face Space's ``app_file``, docs/space.md) both run :func:`main`.

It serves on http://127.0.0.1:7860 with the dataset in ``./dataset`` (or ``$TOONMATTE_DATASET``); ``--help``
lists the options. The model loads after the server is up (on a background thread; on ZeroGPU in the main
thread), so the page is served at once; with no weights available it runs on the classical fallback and says
so in a banner.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

MAX_FILE_SIZE = "200mb"
"""Largest upload accepted (a zip of a folder of large PNGs fits; a single image is far smaller)."""
DEFAULT_CONCURRENCY = 2
"""Events without their own limit (applying strokes, saving, previews) run at most this many at once,
unless $GRADIO_DEFAULT_CONCURRENCY_LIMIT says otherwise; events that may run the model are limited
to one at a time (see annotate.web.events.ENGINE)."""
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The studio's options; ``--help`` names the command as it was started (app.py or toonmatte-studio)."""
    from toonmatte.dataset.hub import default_dataset_root

    parser = argparse.ArgumentParser(
        description="toonmatte studio: correct anime mattes and grow an im/gt/an dataset.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to serve on (default $GRADIO_SERVER_NAME or 127.0.0.1; "
                             "0.0.0.0 for all interfaces)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
                        help="port (default $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--dataset-root", default=str(default_dataset_root()),
                        help="dataset folder (default $TOONMATTE_DATASET, else /data/dataset on a Space with "
                             "persistent storage, else ./dataset); $TOONMATTE_HUB_DATASET=owner/name with $HF_TOKEN "
                             "also keeps it in that Hub dataset repo (docs/dataset.md, Sync)")
    parser.add_argument("--split", default="train", help="split new items are saved under (default train)")
    parser.add_argument("--generation", default=None,
                        help="generation folder new items are saved under (default <today>_studio)")
    parser.add_argument("--model", default="toonout",
                        help="zoo model name, or 'fallback' for the classical engine (default toonout)")
    parser.add_argument("--weights", default=None,
                        help="path to a checkpoint (.pth or .safetensors) instead of the hub cache")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA when available)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"],
                        help="torch (default), or onnx: ONNX Runtime on the model's export, made once into the "
                             "toonmatte cache (fp32; slower than torch on the CPUs measured, see docs/performance.md)")
    parser.add_argument("--share", action="store_true", help="also serve through a public Gradio share link")
    parser.add_argument("--annotator", default=os.environ.get("TOONMATTE_ANNOTATOR"),
                        help="name recorded with every save without sign-in (default $TOONMATTE_ANNOTATOR)")
    parser.add_argument("--auth-file", default=os.environ.get("TOONMATTE_AUTH_FILE"),
                        help="turn sign-in on: a file of user:password lines (default $TOONMATTE_AUTH_FILE)")
    parser.add_argument("--annotators", default=os.environ.get("TOONMATTE_ANNOTATORS"),
                        help="comma-separated users (and Hugging Face organisations) who may save; others get the "
                             "read-only Try it mode (default $TOONMATTE_ANNOTATORS)")
    parser.add_argument("--predictions", default=os.environ.get("TOONMATTE_PREDICTIONS"),
                        help="the --out folder of predict --for-studio: images pre-annotated there by the same "
                             "model version open without running it (default $TOONMATTE_PREDICTIONS)")
    parser.add_argument("--team-queue", default=os.environ.get("TOONMATTE_TEAM_QUEUE"),
                        help="a folder of images the team annotates: each person takes a few at a time, claimed "
                             "for two hours (default $TOONMATTE_TEAM_QUEUE)")
    parser.add_argument("--reviewers", default=os.environ.get("TOONMATTE_REVIEWERS"),
                        help="comma-separated users who may approve saved items or send them back "
                             "(default $TOONMATTE_REVIEWERS)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve the studio until Ctrl-C (or SIGTERM on a Space); 2 when the dataset or a settings file is unusable."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from annotate.web.server_log import quiet_client_disconnects

    quiet_client_disconnects()
    # Gradio reads this when the Blocks are built: calling demo.queue(default_concurrency_limit=...)
    # instead rebuilds the whole server app once more at start-up.
    os.environ.setdefault("GRADIO_DEFAULT_CONCURRENCY_LIMIT", str(DEFAULT_CONCURRENCY))
    from annotate.web.gradio_import import skip_stub_writing

    skip_stub_writing()  # before Gradio is first imported (by annotate.web.ui)
    from annotate import zerogpu
    from annotate.access import Access, read_auth_file
    from annotate.claims import TeamQueue
    from annotate.engine import Engine
    from annotate.studio import Studio
    from annotate.web.ui import build_app, launch_kwargs
    from toonmatte.dataset import DatasetStore
    from toonmatte.dataset.hub import start_hub_sync
    from toonmatte.errors import ToonmatteError
    from toonmatte.preannotate import load_predictions

    try:
        logins = read_auth_file(args.auth_file) if args.auth_file else None
        store = DatasetStore(Path(args.dataset_root), split=args.split, generation=args.generation)
        sync = start_hub_sync(store)  # None unless $TOONMATTE_HUB_DATASET is set; restores an empty dataset
    except ToonmatteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # keep_freed_memory: the studio is a long-lived server, where glibc handing freed memory back and
    # faulting it in again at every prediction costs time (toonmatte.model.runtime)
    engine = Engine(args.model, args.weights, args.device, backend=args.backend, keep_freed_memory=True)
    access = Access.from_settings(auth_file=logins is not None, annotators=args.annotators,
                                  reviewers=args.reviewers, local_annotator=args.annotator)
    local = args.host in LOOPBACK and not args.share and not access.sign_in
    try:
        team = TeamQueue.open(Path(args.team_queue), store) if args.team_queue else None
        stored = load_predictions(Path(args.predictions)) if args.predictions else None
    except ToonmatteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    studio = Studio(store, engine, access=access, allow_server_paths=local, team=team,
                    sync_line=None if sync is None else sync.status_line, stored=stored)
    demo = build_app(studio)
    if zerogpu.active():
        demo.queue(max_size=zerogpu.QUEUE_SIZE)
    print(f"dataset: {store.root} (new items go to {store.split}/{store.generation})", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                max_file_size=MAX_FILE_SIZE, auth=logins,
                blocked_paths=[str(store.root)], show_error=True, prevent_thread_lock=True, **launch_kwargs())
    engine.start()  # after the server is up: importing torch and loading weights must not delay serving
    # (on ZeroGPU the load runs here, in the main thread, where spaces intercepts the move to "cuda")
    if sync is not None:  # a Space restarts with SIGTERM: stop as on Ctrl-C, so the last saves are pushed
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        demo.block_thread()
    finally:
        studio.close()
        if sync is not None:
            sync.close()
    return 0

