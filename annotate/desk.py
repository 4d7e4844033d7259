"""One person's work in the studio: their queue, the item they correct and their unsaved edits.

A ``Desk`` belongs to one signed-in person (or to the one ``LOCAL`` person of a studio without
sign-in). Its queue is saved in the store's state under the person's own key, so it survives a
restart; uploads go to the person's own folder. Moving on from an item with applied but unsaved
changes keeps its matte in memory (with a warning) and restores it on return (``leave``).
Methods return plain values plus messages for the person; errors a person can cause raise
``ToonmatteError`` subclasses with one sentence.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from annotate import editing
from annotate.claims import TeamQueue
from annotate.editing import Item
from annotate.engine import Engine
from annotate.queue import (
    Budget,
    ImportResult,
    Predictor,
    WorkQueue,
    folder_images,
    import_uploads,
    prune_uploads,
    skip_unreadable,
)
from toonmatte.dataset import DatasetStore, uniform_alpha_warning
from toonmatte.errors import BadImageError, ToonmatteError
from toonmatte.evaluation.uncertainty import Uncertainty
from toonmatte.preannotate import StoredPrediction

log = logging.getLogger(__name__)

ORDERS = ("upload order", "name", "most unsure first")
"""How a person may order their queue."""
KEPT_EDITS = 32
"""Applied but unsaved mattes kept in memory when the person moves on (the oldest are dropped)."""


@dataclass(frozen=True)
class UploadLimits:
    """What one person's uploads may take (bytes, files), and how long an upload folder whose images
    are no longer queued is kept (seconds); a public Space's disk must not be fillable by one visitor."""

    bytes: int = 4 << 30
    files: int = 10_000
    max_age: float = 14 * 24 * 3600.0


def _digest(image: np.ndarray) -> bytes:
    """A fingerprint of an image's pixels (kept edits belong to the exact image they were made on)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.digest()


@dataclass
class Step:
    """The outcome of a queue action: the item to show (None: nothing to show) and messages to warn about."""

    item: Item | None
    warnings: list[str] = field(default_factory=list)
    info: str | None = None


class Desk:
    """One person's queue and edits over the shared store and engine.

    ``name`` is the desk's owner (as claims know them); ``annotator`` is recorded with every save;
    ``state_key`` names the queue's saved state; ``team`` is the team queue work is taken from, if any;
    ``predictor`` makes the queue's predictions (by default the engine's);
    ``work_dir`` holds the person's uploads, within ``limits`` (old upload folders whose images are
    no longer queued are deleted when the desk opens); ``allow_server_paths`` allows loading a server folder.
    """

    def __init__(self, store: DatasetStore, engine: Engine, *, name: str, annotator: str | None, state_key: str,
                 work_dir: Path, allow_server_paths: bool, limits: UploadLimits = UploadLimits(),
                 team: TeamQueue | None = None, predictor: Predictor | None = None,
                 stored: dict[str, StoredPrediction] | None = None) -> None:
        self.name = name
        self.stored = stored
        self.predictor = predictor or engine.predict_item
        self.team = team
        self.store = store
        self.engine = engine
        self.annotator = annotator
        self.state_key = state_key
        self.work_dir = work_dir
        self.allow_server_paths = allow_server_paths
        self._lock = threading.RLock()
        self._kept: OrderedDict[str, tuple[bytes, np.ndarray]] = OrderedDict()  # stem -> (image digest, alpha)
        self.limits = limits
        self.queue: WorkQueue | None = WorkQueue.resume(store, self.predictor, state_key)
        queued = [] if self.queue is None else [item.path for item in self.queue.items]
        if prune_uploads(work_dir, queued, limits.max_age):
            log.info("removed old upload folders of %s", state_key)

    # ------------------------------------------------------------------ queue
    def load(self, uploads: Iterable[str] | None, folder: str | None, current: Item | None = None) -> Step:
        """Replace the work queue with uploaded files/zips and/or a server folder, and show its first image
        (``current``, the item being left, keeps its applied changes: see ``leave``)."""
        uploads = [str(path) for path in (uploads or [])]
        folder = (folder or "").strip()
        if folder and not self.allow_server_paths:
            raise ToonmatteError("Loading a folder from the server is disabled here (shared or non-local studio); "
                                 "upload the images or a zip instead.")
        if not uploads and not folder:
            raise ToonmatteError("Choose images or a zip to upload (or type a server folder), then press Load.")
        found = ImportResult()
        if uploads:
            budget = Budget.left_in(self.work_dir, self.limits.bytes, self.limits.files)
            imported = import_uploads(uploads, self.work_dir, budget)
            found.paths += imported.paths
            found.skipped += imported.skipped
            found.hashes.update(imported.hashes)
        if folder:
            listed = folder_images(folder)
            found.paths += listed.paths
            found.skipped += listed.skipped
        if not found.paths:
            raise BadImageError(" ".join(found.skipped)
                                or "No images were found; upload PNG, JPEG or WebP files or a zip of them.")
        source = folder or ", ".join(Path(path).name for path in uploads[:3])
        with self._lock:
            previous = self.queue
            self.queue = WorkQueue.from_paths(self.store, self.predictor, found.paths, source, self.state_key,
                                              found.hashes)
        step = self.current()
        if step.item is None:  # nothing new could be read: the person keeps the queue and image they had
            with self._lock:
                self.queue.close()
                self.queue = previous
                if previous is not None:
                    previous.save_state()
                else:
                    self.store.set_state(self.state_key, {})
            raise BadImageError(" ".join([*found.skipped, *step.warnings]) + " Nothing was loaded.")
        if previous is not None:
            previous.close()
        step.warnings[:0] = self.leave(current) + found.skipped
        step.info = f"Loaded {len(self.queue)} images from {source}."
        return step

    def take_team_work(self, count: int, current: Item | None = None) -> Step:
        """Replace the queue with the next ``count`` images of the team queue, claimed for this person."""
        if self.team is None:
            raise ToonmatteError("This studio has no team queue; load images or a zip instead.")
        paths = self.team.take(self.name, count)
        if not paths:
            raise ToonmatteError("The team queue has nothing left for you: every image is saved or claimed by "
                                 "someone else.")
        with self._lock:
            previous, self.queue = self.queue, WorkQueue.from_paths(
                self.store, self.predictor, paths, "the team queue", self.state_key,
                {path: self.team.digest(path) for path in paths})
        if previous is not None:
            previous.close()
        step = self.current()
        step.warnings[:0] = self.leave(current)
        step.info = f"Took {len(paths)} images from the team queue; they are yours for the next few hours."
        return step

    def order(self, by: str, leave_out_sure: bool = False, current: Item | None = None) -> Step:
        """Reorder the queue: ``by`` one of ``ORDERS``; with ``leave_out_sure``, drop the images the model is
        sure of ("probably fine"). Scores come from pre-annotations and the predictions made so far;
        images without one keep their place after the scored ones when ranking by uncertainty."""
        queue = self._queue()
        if by not in ORDERS:
            raise ToonmatteError(f"Unknown order {by!r}; choose one of: {', '.join(ORDERS)}.")
        scores = [self._known_uncertainty(queue, index) for index in range(len(queue))]
        order = list(range(len(queue)))
        if by == "upload order":
            position = {stem: place for place, stem in enumerate(queue.loaded)}
            order.sort(key=lambda index: position.get(queue.items[index].stem, len(position)))
        elif by == "name":
            order.sort(key=lambda index: queue.items[index].stem)
        elif by == "most unsure first":
            order.sort(key=lambda index: ((score := scores[index]) is None, -(score.score if score else 0.0)))
        if leave_out_sure:
            order = [index for index in order if (score := scores[index]) is None or score.badge != "probably fine"]
        if not order:
            raise ToonmatteError("The model is sure of every image in the queue, so nothing would be left; "
                                 "untick 'Leave out what the model is sure of' or load more images.")
        left_out = len(queue) - len(order)
        queue.reorder(order)
        unscored = sum(score is None for score in scores)
        info = f"Sorted {len(queue)} images by {by}"
        if left_out:
            info += f", leaving out {left_out} the model is sure of"
        if unscored and (by == "most unsure first" or leave_out_sure):
            info += (f"; {unscored} have no score yet (they get one when predicted: pre-annotate with "
                     "predict --for-studio to rank every image)")
        step = self.current() if current is None or current.stem != queue.item.stem else Step(None)
        step.warnings[:0] = self.leave(current) if step.item is not None else []
        step.info = info + "."
        return step

    def _known_uncertainty(self, queue: WorkQueue, index: int) -> Uncertainty | None:
        made = queue.known(index)
        if made is not None:
            return made.uncertainty
        hit = self.stored.get(queue.items[index].digest()) if self.stored else None
        return None if hit is None else hit.uncertainty

    def _queue(self) -> WorkQueue:
        if self.queue is None:
            raise ToonmatteError("No images are loaded; upload images or a zip (or type a server folder) "
                                 "and press Load.")
        return self.queue

    def current(self) -> Step:
        """The queue's current image (skipping unreadable files with a warning each); empty if no queue."""
        if self.queue is None:
            return Step(None)
        prediction, warnings = skip_unreadable(self.queue, BadImageError)
        if prediction is None:
            return Step(None, warnings,
                        "No readable image is left at the end of the queue; press Previous or load more images.")
        item, restored = self._restore(editing.from_prediction(self.store, prediction))
        return Step(item, warnings, restored)

    def move(self, action: str, current: Item | None = None) -> Step:
        """``action`` is "next", "previous" or "skip"; returns the image now under the cursor.

        ``current`` is the item being left: its applied, unsaved changes are kept (see ``leave``).
        """
        queue = self._queue()
        if action == "previous":
            if queue.index == 0:
                return Step(None, info="This is the first image.")
            left = self.leave(current)
            queue.previous()
        elif action in ("next", "skip"):
            if queue.at_end():
                if action == "skip":
                    queue.skip()
                return Step(None, info=self.finished_line())
            left = self.leave(current)
            queue.skip() if action == "skip" else queue.next()
        else:
            raise ValueError(f"unknown queue action {action!r}")
        step = self.current()
        step.warnings[:0] = left
        return step

    def leave(self, item: Item | None) -> list[str]:
        """Keep ``item``'s applied but unsaved matte in memory, so that coming back to it restores it;
        returns the warning to show (none when nothing is unsaved)."""
        if item is None or not item.unsaved:
            return []
        with self._lock:
            self._kept[item.stem] = (_digest(item.image), item.alpha)
            self._kept.move_to_end(item.stem)
            while len(self._kept) > KEPT_EDITS:
                self._kept.popitem(last=False)
        return [f"The changes applied to {item.stem} are not saved: they are kept until the studio stops; "
                f"go back to it and press Save to store them."]

    def _restore(self, item: Item) -> tuple[Item, str | None]:
        """``item`` with the unsaved matte kept for it by ``leave``, if any (and a message saying so)."""
        with self._lock:
            kept = self._kept.get(item.stem)
        if kept is None or kept[0] != _digest(item.image):
            return item, None
        return item.with_alpha(kept[1]), f"Restored the unsaved changes applied to {item.stem}."

    def finished_line(self) -> str:
        done, total = self._queue().progress()
        return f"That was the last image: {done} of {total} corrected."

    def progress_line(self, item: Item | None) -> str:
        """Markdown: where the queue is, how much is done, and what is being edited."""
        if self.queue is None:
            return "No images loaded yet: upload images or a zip (or type a server folder) and press **Load**."
        line = self.queue.describe()
        if item is None:
            return line
        if item.stem != self.queue.item.stem:
            line += f" · editing saved item **{item.stem}** (from Browse)"
        made = f"pre-annotated at {item.stored} by" if item.stored else "prediction by"
        line += f" · {made} {item.engine} ({item.version[:12]})"
        if item.uncertainty is not None:
            line += f" · model: *{item.uncertainty.badge}* ({item.uncertainty.score:.2f})"
        if item.unsaved:
            changed = np.count_nonzero(item.alpha != item.origin) / item.alpha.size
            line += f" · *unsaved changes ({changed:.2%} of pixels)*"
        record = self.store.get(item.stem)
        review = self.store.last_review(item.stem) if record is not None and record.status == "returned" else None
        if review is not None:  # sent back and not saved again since
            line += f" · **sent back by {review[0]}**: {review[2]}"
        return line

    # ---------------------------------------------------------------- editing
    def apply(self, item: Item | None, editor_value: dict | None, how: str) -> tuple[Item, bool]:
        """Apply (or snap) the editor's strokes to ``item``'s alpha."""
        if item is None:
            raise ToonmatteError("There is no image to edit; load images first.")
        return editing.apply_editor(item, editor_value, how)

    def paint(self, item: Item | None, editor_value: dict | None, how: str) -> Step:
        """``apply`` as a step to show: the updated item, or a warning (and nothing new) when nothing is painted."""
        item, painted = self.apply(item, editor_value, how)
        if not painted:
            return Step(None, ["Nothing is painted yet: pick a brush (F, B or E) and paint on the image first."])
        return Step(item)

    def reset(self, item: Item | None) -> Step:
        """``item`` back at the model's prediction (applied, not saved)."""
        if item is None:
            raise ToonmatteError("There is no image to reset; load images first.")
        return Step(item.with_alpha(item.predicted))

    def save(self, item: Item | None, editor_value: dict | None) -> tuple[Item, str]:
        """Apply pending strokes, then store the triple; returns the saved item and its stem."""
        item, _ = self.apply(item, editor_value, "apply")
        if self.team is not None:
            self.team.claims.check(item.stem, self.name)
        stem = editing.save(self.store, item, self.annotator)
        if self.team is not None:
            self.team.claims.release(stem, self.name)
        with self._lock:
            self._kept.pop(item.stem, None)
        log.info("saved %s (changed %.4f of pixels)", stem, float(np.mean(item.alpha != item.predicted)))
        return item.saved(), stem

    def overlap_warning(self, item: Item | None) -> str | None:
        """A sentence when someone else saved ``item`` while this person had it open: their save goes
        to the history when this one lands, so they should know."""
        if item is None:
            return None
        record = self.store.get(item.stem)
        if record is None or record.versions == 0 or record.annotator == self.annotator:
            return None
        saved = datetime.fromisoformat(record.updated_at).timestamp()
        if saved <= item.opened_at:
            return None
        return (f"{record.annotator or 'Someone'} saved {item.stem} while you had it open; your save is its newest "
                "version now and theirs is in the history (Browse shows both).")

    def save_here(self, item: Item | None, editor_value: dict | None) -> Step:
        """Save and stay on the item (the Save button), with the warnings ``save_and_next`` gives."""
        overlap = self.overlap_warning(item)
        saved, stem = self.save(item, editor_value)
        warnings = [message for message in (overlap, uniform_alpha_warning(saved.alpha)) if message is not None]
        return Step(saved, warnings, f"Saved {stem}.")

    def save_and_next(self, item: Item | None, editor_value: dict | None) -> Step:
        """Save, then show the next queue image (or, after a reopened item, the queue's current one)."""
        overlap = self.overlap_warning(item)
        item, stem = self.save(item, editor_value)
        warning = uniform_alpha_warning(item.alpha)
        queue = self.queue
        if queue is None or queue.item.stem != stem:
            step = self.current() if queue is not None else Step(item)
            step.info = f"Saved {stem}."
        elif queue.at_end():
            step = Step(item, info=f"Saved {stem}. {self.finished_line()}")
        else:
            queue.next()
            step = self.current()
            step.info = f"Saved {stem}."
        step.warnings[:0] = [message for message in (overlap, warning) if message is not None]
        return step

    def reopen(self, stem: str) -> Item:
        """Open an item from the browse gallery: its saved triple, or its queue image if never saved
        (with the unsaved changes kept for it by ``leave``, if any)."""
        record = self.store.get(stem)
        if record is None:
            raise ToonmatteError(f"{stem} is not in the dataset index; refresh the gallery.")
        if record.versions > 0:
            return self._restore(editing.from_store(self.store, stem, self.engine))[0]
        queue = self._queue()
        index = queue.locate(stem)
        if index is None:
            raise ToonmatteError(f"{stem} has no saved triple and is not in the current queue; "
                                 "load its image to correct it.")
        queue.go(index)
        step = self.current()
        if step.item is None:
            raise BadImageError(" ".join(step.warnings) or f"{stem} could not be read.")
        return step.item

    def open_saved(self, stem: str, current: Item | None) -> Step:
        """``reopen`` as a step to show, leaving ``current`` (its unsaved changes are kept: see ``leave``)."""
        left = self.leave(current) if current is not None and current.stem != stem else []
        item = self.reopen(stem)
        restored = f"Restored the unsaved changes applied to {item.stem}." if item.unsaved else None
        return Step(item, left, restored)

    def close(self) -> None:
        if self.queue is not None:
            self.queue.close()
