"""What the studio does, without Gradio: the people's desks, browsing, the endpoints.

One ``Studio`` serves every browser session: they share the dataset store and the engine; each
person has their own ``Desk`` (queue, item under correction, unsaved edits: ``annotate.desk``),
and ``access`` says who may save and review. Errors a person can cause raise ``ToonmatteError``
subclasses with one sentence.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from annotate import preview
from annotate.access import LOCAL, Access, Person
from annotate.api import OutputFolder, matte_file, save_file
from annotate.claims import TeamQueue
from annotate.desk import Desk, UploadLimits
from annotate.editing import Item
from annotate.engine import Engine
from annotate.queue import STATE_KEY
from annotate.render import Renderer
from annotate.stored import predictor
from toonmatte.dataset import STATUSES, DatasetStore, ItemRecord, sanitize_stem
from toonmatte.errors import BadImageError, ToonmatteError
from toonmatte.imaging.imageio import load_image
from toonmatte.preannotate import StoredPrediction

log = logging.getLogger(__name__)

WORK_DIR = ".uploads"
"""Uploaded images and extracted zips live here, under the dataset root (hidden, so not part of the dataset),
so that a queue of uploads survives a restart."""
BROWSE_LIMIT = 200
"""The browse gallery shows at most this many items, newest first."""
def status_label(record: ItemRecord) -> str:
    """How Browse names an item's state: a save that kept the model's matte is not called a correction."""
    if record.status == "corrected" and record.changed_fraction is not None:
        if record.changed_fraction == 0:
            return "saved untouched"
        return f"corrected ({record.changed_fraction:.1%} changed)"
    return record.status


class Studio:
    """The shared state of one running studio."""

    def __init__(self, store: DatasetStore, engine: Engine, access: Access | None = None,
                 allow_server_paths: bool = True, outputs: OutputFolder | None = None,
                 renderer: Renderer | None = None, limits: UploadLimits = UploadLimits(),
                 team: TeamQueue | None = None, sync_line: Callable[[], str] | None = None,
                 stored: dict[str, StoredPrediction] | None = None) -> None:
        self.store = store
        self.stored = stored
        self.predictor = predictor(engine, stored)
        self.team = team
        self.sync_line = sync_line
        self.limits = limits
        self.engine = engine
        self.access = access or Access()
        self.allow_server_paths = allow_server_paths
        self.outputs = outputs or OutputFolder()
        self.renderer = renderer or Renderer()
        self.work_dir = store.root / WORK_DIR
        self._lock = threading.RLock()
        self._thumbs: dict[tuple[str, str, int], np.ndarray] = {}
        self._desks: dict[str, Desk] = {}

    def desk(self, person: Person = Person(None)) -> Desk:
        """``person``'s desk, made on first use (their saved queue resumes); only for people who may
        save (anyone else gets a one-sentence error, and the read-only *Try it* mode)."""
        self.access.check_save(person)  # a desk writes: its queue is indexed, its saves are triples
        name = self.access.desk_name(person)
        assert name is not None  # whoever may save is signed in, or sign-in is off
        with self._lock:
            if name not in self._desks:
                own = name == LOCAL
                self._desks[name] = Desk(
                    self.store, self.engine, name=name, team=self.team, annotator=self.access.annotator_name(person),
                    state_key=STATE_KEY if own else f"{STATE_KEY}:{name}",
                    work_dir=self.work_dir if own else self.work_dir / _folder_name(name),
                    allow_server_paths=self.allow_server_paths and own, limits=self.limits, predictor=self.predictor,
                    stored=self.stored)
            return self._desks[name]

    # ----------------------------------------------------------------- browse
    def browse(self, status: str | None, desk: Desk | None = None) -> tuple[list[tuple[np.ndarray, str]], list[str]]:
        """Gallery entries (thumbnail, "stem · status") of the team's saved items and of the items in
        ``desk``'s own queue (never another person's pending uploads), newest first, and their stems.

        Saved items show their cut-out over a checkerboard; unsaved ones their source image
        when it can still be read; items with neither are left out.
        """
        if status in (None, "", "all"):
            status = None
        elif status not in STATUSES:
            raise ToonmatteError(f"Unknown status {status!r}; choose one of: all, {', '.join(STATUSES)}.")
        queued = set() if desk is None or desk.queue is None else {item.stem for item in desk.queue.items}
        entries, stems = [], []
        records = [record for record in self.store.items(status) if record.versions > 0 or record.stem in queued]
        for record in records[:BROWSE_LIMIT]:
            thumb = self._thumbnail(record)
            if thumb is not None:
                entries.append((thumb, f"{record.stem} · {status_label(record)}"))
                stems.append(record.stem)
        return entries, stems

    def browse_for(self, person: Person, status: str | None) -> tuple[list[tuple[np.ndarray, str]], list[str]]:
        """``browse`` as ``person`` sees it: with their own queue's items when they may save."""
        return self.browse(status, self.desk(person) if self.access.may_save(person) else None)

    def _thumbnail(self, record: ItemRecord) -> np.ndarray | None:
        key = (record.stem, record.updated_at, record.versions)
        if key not in self._thumbs:
            try:
                if record.versions > 0:
                    _, _, rgba = self.store.load_triple(record.stem)
                    small = preview.thumbnail(rgba)
                    height, width = small.shape[:2]
                    image = preview.over(small, preview.checkerboard(height, width, cell=8))
                elif record.source_path and Path(record.source_path).is_file():
                    image = preview.thumbnail(load_image(record.source_path).rgb)
                else:
                    return None
            except ToonmatteError:
                return None
            self._thumbs[key] = image
        return self._thumbs[key]

    # -------------------------------------------------------------- endpoints
    def matte_endpoint(self, image_path: str | None) -> tuple[str, str]:
        """``/matte``: image file -> (RGBA cut-out PNG, 8-bit mask PNG)."""
        if not image_path:
            raise BadImageError("No image was sent; pass an image file.")
        cut, mask = matte_file(self.engine, image_path, self.outputs)
        return str(cut), str(mask)

    def save_endpoint(self, image_path: str | None, mask_path: str | None,
                      person: Person = Person(None)) -> tuple[str, list[str]]:
        """``/save``: image file + mask file -> the stored stem, and warnings about the mask. Refused,
        writing nothing, for a person who may not save; the annotator is the signed-in identity."""
        self.access.check_save(person)
        if not image_path or not mask_path:
            raise BadImageError("Both an image file and a mask file are needed; pass the two files.")
        return save_file(self.store, image_path, mask_path, self.access.annotator_name(person) or "api")

    def review(self, person: Person, item: Item | None, approved: bool, comment: str) -> str:
        """A reviewer approves the saved item on screen or sends it back with a comment; returns what happened."""
        self.access.check_review(person)
        if item is None:
            raise ToonmatteError("There is no item to review; open a saved item from Browse first.")
        if item.unsaved:
            raise ToonmatteError(f"{item.stem} has unsaved changes; save them (or reset) before reviewing.")
        self.store.review(item.stem, person.name or LOCAL, approved, comment)
        return f"Approved {item.stem}." if approved else f"Sent {item.stem} back: {comment.strip()}"

    def downloads(self, item: Item, decontaminate: bool) -> tuple[str, str]:
        """(RGBA cut-out PNG, mask PNG) files of the current alpha, for the download buttons."""
        return self.renderer.downloads(item, decontaminate)

    def close(self) -> None:
        with self._lock:
            for desk in self._desks.values():
                desk.close()
        if self.team is not None:
            self.team.close()


def _folder_name(person: str) -> str:
    """A person's uploads folder: their name made safe, plus a hash so distinct names never share one."""
    return f"{sanitize_stem(person)}-{hashlib.sha1(person.encode()).hexdigest()[:8]}"
