"""The studio's logic without a browser: load, edit with strokes, save, resume, browse, reopen, previews, endpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotate import editing, preview
from annotate.access import Access
from annotate.engine import Engine
from annotate.strokes import BACKGROUND_COLOR, FOREGROUND_COLOR
from annotate.studio import Studio
from conftest import draw_toon
from toonmatte.dataset import DatasetStore
from toonmatte.errors import BadImageError, ToonmatteError


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The classical engine, on purpose: deterministic and fast, no weights needed."""
    return Engine(model="fallback").start()


def write_toons(folder: Path, count: int, size: int = 64) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"toon{i}.png"
        Image.fromarray(draw_toon(size, size, seed=i)[0]).save(path)
        paths.append(path)
    return paths


def make_studio(root: Path, engine: Engine, **kwargs) -> Studio:
    return Studio(DatasetStore(root, generation="g1"), engine, access=Access(local_annotator="tester"), **kwargs)


def layer_with(shape: tuple[int, int], box: tuple[slice, slice], colour: tuple[int, int, int]) -> np.ndarray:
    layer = np.zeros((*shape, 4), np.uint8)
    layer[box] = (*colour, 255)
    return layer


def test_load_paint_save_next_and_resume(tmp_path: Path, engine: Engine) -> None:
    uploads = tmp_path / "uploads"
    junk = uploads / "broken.png"
    paths = write_toons(uploads, 2)
    junk.write_bytes(b"not a png at all")
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        step = studio.desk().load([junk, *paths], None)
        assert step.item is not None and step.item.stem == "toon0"
        assert len(step.warnings) == 1 and "broken.png" in step.warnings[0]  # skipped, queue still usable
        assert studio.store.get("broken").status == "skipped"
        assert "Image 2 of 3" in studio.desk().progress_line(step.item)
        item = step.item
        assert np.array_equal(item.alpha, item.predicted) and item.engine == "fallback"

        fg_box = (slice(0, 6), slice(0, 10))  # backdrop corner -> subject
        bg_box = (slice(50, 58), slice(28, 36))  # the body -> backdrop
        assert (item.predicted[fg_box] == 0).all() and (item.predicted[bg_box] == 255).all()
        layers = [layer_with(item.alpha.shape, fg_box, FOREGROUND_COLOR),
                  layer_with(item.alpha.shape, bg_box, BACKGROUND_COLOR)]
        step = studio.desk().save_and_next(item, {"background": None, "layers": layers, "composite": None})
        assert step.item is not None and step.item.stem == "toon1" and step.info == "Saved toon0."

        im, gt, an = studio.store.load_triple("toon0")
        expected = item.predicted.copy()
        expected[fg_box] = 255
        expected[bg_box] = 0
        assert np.array_equal(gt, expected)  # painted pixels changed, every other pixel kept bit for bit
        assert np.array_equal(im, item.image) and np.array_equal(an[..., 3], gt)
        record = studio.store.get("toon0")
        assert record.status == "corrected" and record.annotator == "tester" and record.model == "fallback"
        assert record.changed_fraction == pytest.approx((60 + 64) / gt.size)
        assert studio.desk().queue.progress() == (1, 3)
    finally:
        studio.close()

    resumed = make_studio(tmp_path / "dataset", engine)
    try:
        step = resumed.desk().current()
        assert step.item is not None and step.item.stem == "toon1"  # where the last session left off
        back = resumed.desk().move("previous")
        assert back.item.stem == "toon0"
        assert np.array_equal(back.item.alpha, expected)  # a saved item reopens with its saved alpha...
        assert not np.array_equal(back.item.predicted, expected)  # ...and the model's prediction to reset to
        assert resumed.desk().move("previous").item.stem == "toon0"  # the unreadable first item is skipped again
    finally:
        resumed.close()


def test_apply_snap_reset_and_empty_strokes(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        item = studio.desk().load(write_toons(tmp_path / "in", 1), None).item
        same, painted = studio.desk().apply(item, {"background": None, "layers": [], "composite": None}, "apply")
        assert not painted and same is item
        box = (slice(0, 5), slice(0, 5))
        layer = layer_with(item.alpha.shape, box, FOREGROUND_COLOR)
        applied, painted = studio.desk().apply(item, {"layers": [layer]}, "apply")
        assert painted and (applied.alpha[box] == 255).all() and not np.array_equal(applied.alpha, item.alpha)
        changed = np.count_nonzero(applied.alpha != item.alpha) / item.alpha.size
        assert f"unsaved changes ({changed:.2%} of pixels)" in studio.desk().progress_line(applied)
        assert "unsaved" not in studio.desk().progress_line(item)
        assert "unsaved" not in studio.desk().progress_line(applied.saved())
        snapped, painted = studio.desk().apply(item, {"layers": [layer]}, "snap")
        assert painted and (snapped.alpha[box] == 255).all()
        reset = applied.with_alpha(applied.predicted)
        assert np.array_equal(reset.alpha, item.predicted) and np.array_equal(reset.cutout()[..., 3], item.predicted)
        with pytest.raises(ToonmatteError):
            studio.desk().apply(None, {"layers": [layer]}, "apply")
        # the tint marks the backdrop: pixels made foreground show the image itself
        assert np.array_equal(applied.tint()[box], item.image[box])
    finally:
        studio.close()


def test_queue_end_and_start_messages(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        with pytest.raises(ToonmatteError, match="No images are loaded"):
            studio.desk().move("next")
        studio.desk().load(write_toons(tmp_path / "in", 2), None)
        assert studio.desk().move("previous").info == "This is the first image."
        assert studio.desk().move("skip").item.stem == "toon1"
        end = studio.desk().move("next")
        assert end.item is None and "last image" in end.info
        assert studio.store.get("toon0").status == "skipped"
    finally:
        studio.close()


def test_server_folders_and_empty_loads(tmp_path: Path, engine: Engine) -> None:
    write_toons(tmp_path / "folder", 2)
    local = make_studio(tmp_path / "dataset", engine)
    try:
        assert local.desk().load(None, str(tmp_path / "folder")).item.stem == "toon0"
        with pytest.raises(ToonmatteError, match="Choose images"):
            local.desk().load([], "  ")
        (tmp_path / "empty").mkdir()
        with pytest.raises(BadImageError, match="no image files"):
            local.desk().load(None, str(tmp_path / "empty"))
        assert local.desk().queue is not None and len(local.desk().queue) == 2  # a failed load keeps the old queue
    finally:
        local.close()
    shared = make_studio(tmp_path / "dataset2", engine, allow_server_paths=False)
    try:
        with pytest.raises(ToonmatteError, match="disabled"):
            shared.desk().load(None, str(tmp_path / "folder"))
    finally:
        shared.close()


def test_browse_filter_and_reopen(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        item = studio.desk().load(write_toons(tmp_path / "in", 3), None).item
        edited = item.with_alpha(np.full_like(item.alpha, 255))
        studio.desk().save(edited, None)
        entries, stems = studio.browse("all", studio.desk())
        assert set(stems) == {"toon0", "toon1", "toon2"}
        assert all(thumb.ndim == 3 and thumb.shape[2] == 3 for thumb, _ in entries)
        corrected, stems = studio.browse("corrected", studio.desk())
        changed = np.count_nonzero(edited.alpha != item.predicted) / item.alpha.size
        assert stems == ["toon0"] and corrected[0][1] == f"toon0 · corrected ({changed:.1%} changed)"
        studio.desk().move("next")
        studio.desk().save(studio.desk().current().item, None)  # saved as the model predicted it
        labels = dict(zip(studio.browse("corrected", studio.desk())[1],
                          (label for _, label in studio.browse("corrected", studio.desk())[0])))
        assert labels["toon1"] == "toon1 · saved untouched"
        studio.desk().move("previous")
        with pytest.raises(ToonmatteError, match="Unknown status"):
            studio.browse("done")
        studio.desk().move("next")
        reopened = studio.desk().reopen("toon0")
        assert np.array_equal(reopened.alpha, edited.alpha) and np.array_equal(reopened.predicted, item.predicted)
        assert "editing saved item **toon0**" in studio.desk().progress_line(reopened)
        step = studio.desk().save_and_next(reopened, None)  # saving a reopened item returns to the queue
        assert step.item.stem == "toon1" and len(studio.store.history("toon0")) == 1
        assert studio.desk().reopen("toon2").stem == "toon2"  # never saved: opened from the queue
        with pytest.raises(ToonmatteError, match="not in the dataset index"):
            studio.desk().reopen("ghost")
    finally:
        studio.close()


def test_endpoints(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        rgb, alpha = draw_toon(48, 40, seed=4)
        source = tmp_path / "shot.png"
        Image.fromarray(rgb).save(source)
        cut, mask = studio.matte_endpoint(str(source))
        assert Path(cut).name == "shot.png" and Path(mask).name == "shot_mask.png"
        mask_path = tmp_path / "mask.png"
        Image.fromarray(alpha).save(mask_path)
        assert studio.save_endpoint(str(source), str(mask_path)) == ("shot", [])
        assert np.array_equal(studio.store.load_triple("shot")[1], alpha)
        assert studio.store.get("shot").annotator == "tester"
        with pytest.raises(BadImageError):
            studio.matte_endpoint(None)
        with pytest.raises(BadImageError):
            studio.save_endpoint(str(source), None)
    finally:
        studio.close()


def test_preview_views(toon) -> None:
    rgb, alpha = toon
    rgba = preview.cutout_rgba(rgb, alpha, decontaminate=False)
    assert np.array_equal(rgba[..., :3], rgb) and np.array_equal(rgba[..., 3], alpha)
    views = {choice: preview.view(rgba, choice, "#ff0000")
             for choice in preview.BACKGROUNDS if choice not in preview.OVERLAYS}
    assert all(view.shape == rgb.shape and view.dtype == np.uint8 for view in views.values())
    clear, solid = alpha == 0, alpha == 255
    assert (views[preview.WHITE][clear] == 255).all() and (views[preview.BLACK][clear] == 0).all()
    assert (views[preview.GRAY][clear] == 128).all()
    assert (views[preview.CUSTOM][clear] == (255, 0, 0)).all()
    assert preview.custom_colour("rgba(58, 123, 213, 1)") == preview.custom_colour("#3a7bd5") == (58, 123, 213)
    assert np.array_equal(views[preview.ALPHA][..., 0], alpha)
    assert all(np.array_equal(views[c][solid], rgb[solid]) for c in (preview.WHITE, preview.BLACK,
                                                                     preview.CHECKERBOARD))
    board = preview.checkerboard(*alpha.shape)
    assert set(np.unique(board)) == {preview.CHECKER_DARK, preview.CHECKER_LIGHT}
    assert np.array_equal(views[preview.CHECKERBOARD][clear], board[clear])
    decontaminated = preview.cutout_rgba(rgb, alpha, decontaminate=True)
    edge = (alpha > 0) & (alpha < 255)
    assert np.array_equal(decontaminated[..., 3], alpha) and not np.array_equal(decontaminated[edge], rgba[edge])
    assert preview.thumbnail(rgb, 64).shape == (64, 64, 3)
    with pytest.raises(ValueError):
        preview.view(rgba, "plaid")


def test_moving_on_keeps_applied_unsaved_changes(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        item = studio.desk().load(write_toons(tmp_path / "in", 3), None).item
        box = (slice(0, 5), slice(0, 5))
        applied, _ = studio.desk().apply(item,
                                         {"layers": [layer_with(item.alpha.shape, box, FOREGROUND_COLOR)]}, "apply")
        assert applied.unsaved and studio.desk().leave(item) == []  # nothing applied: nothing to keep
        step = studio.desk().move("next", applied)
        assert step.item.stem == "toon1" and len(step.warnings) == 1 and "toon0" in step.warnings[0]
        back = studio.desk().move("previous", step.item)
        assert back.warnings == [] and back.info == "Restored the unsaved changes applied to toon0."
        assert np.array_equal(back.item.alpha, applied.alpha) and back.item.unsaved
        assert np.array_equal(back.item.predicted, item.predicted)  # reset still goes to the prediction
        saved, _ = studio.desk().save(back.item, None)
        assert not saved.unsaved
        assert studio.desk().move("next", saved).warnings == []  # saved: nothing to warn about or keep
        assert studio.desk().move("previous", None).info is None
        reloaded = studio.desk().load(write_toons(tmp_path / "in2", 1), None, applied)
        assert any("toon0" in warning for warning in reloaded.warnings)
    finally:
        studio.close()


def test_a_load_with_nothing_readable_keeps_the_open_queue(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        item = studio.desk().load(write_toons(tmp_path / "in", 2), None).item
        fake = tmp_path / "upload" / "notes.png"  # a text file renamed .png
        fake.parent.mkdir()
        fake.write_text("not an image")
        with pytest.raises(BadImageError) as raised:
            studio.desk().load([fake], None, item)
        message = str(raised.value)
        assert message.startswith("Cannot read notes.png: it is not an image format")
        assert "Nothing was loaded" in message
        assert str(tmp_path) not in message  # the file as uploaded, not its copy on the server
        assert studio.desk().current().item.stem == "toon0" and len(studio.desk().queue) == 2
        studio.close()
        studio = make_studio(tmp_path / "dataset", engine)  # the kept queue is also what a restart resumes
        assert studio.desk().current().item.stem == "toon0" and len(studio.desk().queue) == 2
    finally:
        studio.close()

    fresh = make_studio(tmp_path / "fresh", engine)
    try:
        with pytest.raises(BadImageError, match="notes.png"):
            fresh.desk().load([fake], None)
        assert fresh.desk().queue is None and fresh.desk().current().item is None
        fresh.close()
        fresh = make_studio(tmp_path / "fresh", engine)
        assert fresh.desk().queue is None
    finally:
        fresh.close()


def test_each_signed_in_person_has_their_own_queue_uploads_and_browse(tmp_path: Path, engine: Engine) -> None:
    from annotate.access import Person

    store = DatasetStore(tmp_path / "dataset", generation="g1")
    access = Access(sign_in=True, annotators=frozenset({"alice", "bob"}))
    studio = Studio(store, engine, access=access, allow_server_paths=False)
    alice, bob = Person("alice"), Person("bob")
    try:
        a_files = write_toons(tmp_path / "a", 2)
        b_files = write_toons(tmp_path / "b", 3, size=48)
        assert studio.desk(alice).load([str(p) for p in a_files], None).item is not None
        step = studio.desk(bob).load([str(p) for p in b_files], None)
        # one person's Load keeps the other's queue
        assert len(studio.desk(alice).queue) == 2 and len(studio.desk(bob).queue) == 3
        assert studio.desk(alice).work_dir != studio.desk(bob).work_dir
        studio.desk(bob).save_and_next(step.item, None)
        assert store.get(step.item.stem).annotator == "bob"
        alice_stems = {item.stem for item in studio.desk(alice).queue.items}
        _, alice_sees = studio.browse("all", studio.desk(alice))
        bob_pending = {item.stem for item in studio.desk(bob).queue.items} - {step.item.stem}
        assert alice_stems <= set(alice_sees) and not bob_pending & (set(alice_sees) - alice_stems)
        assert step.item.stem in alice_sees  # the team's saved items are everyone's
        with pytest.raises(ToonmatteError, match="carol is not on this studio's list"):
            studio.desk(Person("carol"))
        with pytest.raises(ToonmatteError, match="sign in"):
            studio.desk(Person(None))
        with pytest.raises(ToonmatteError, match="carol is not on this studio's list"):
            studio.save_endpoint(str(a_files[0]), str(a_files[0]), Person("carol"))
    finally:
        studio.close()
    again = Studio(DatasetStore(tmp_path / "dataset", generation="g1"), engine, access=access)
    try:  # after a restart each person's queue resumes where they were
        assert len(again.desk(alice).queue) == 2 and len(again.desk(bob).queue) == 3
        assert again.desk(bob).queue.index == 1
    finally:
        again.close()


def test_a_reviewer_approves_or_sends_back_and_the_annotator_sees_why(tmp_path: Path, engine: Engine) -> None:
    from annotate.access import Person

    store = DatasetStore(tmp_path / "dataset", generation="g1")
    access = Access(sign_in=True, annotators=frozenset({"alice"}), reviewers=frozenset({"rita"}))
    studio = Studio(store, engine, access=access)
    alice, rita = Person("alice"), Person("rita")
    try:
        files = write_toons(tmp_path / "in", 2)
        desk = studio.desk(alice)
        first = desk.load([str(p) for p in files], None).item
        second = desk.save_and_next(first, None).item
        desk.save(second, None)
        with pytest.raises(ToonmatteError, match="Only the studio's reviewers"):
            studio.review(alice, first, True, "")
        assert studio.review(rita, first, True, "") == "Approved toon0."
        with pytest.raises(ToonmatteError, match="Say what to fix"):
            studio.review(rita, second, False, "  ")
        assert studio.review(rita, second, False, "the hair tips are cut off") == \
            "Sent toon1 back: the hair tips are cut off"
        assert store.get("toon0").status == "reviewed" and store.get("toon1").status == "returned"
        assert store.last_review("toon1")[:3] == ("rita", "returned", "the hair tips are cut off")
        reopened = desk.reopen("toon1")
        assert "sent back by rita**: the hair tips are cut off" in desk.progress_line(reopened)
        _, returned = studio.browse("returned", desk)
        assert returned == ["toon1"]
        desk.save(reopened, None)  # corrected again: back to "corrected", the review log keeps the history
        assert store.get("toon1").status == "corrected" and "sent back" not in desk.progress_line(reopened)
        with pytest.raises(ToonmatteError, match="no saved version to review"):
            store.review("never-saved", "rita", True, "")
    finally:
        studio.close()


def test_the_progress_line_names_the_model_that_made_the_prediction(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        item = studio.desk().load([str(p) for p in write_toons(tmp_path / "in", 1)], None).item
        assert f"prediction by fallback ({item.version[:12]})" in studio.desk().progress_line(item)
        studio.desk().save(item, None)
        assert studio.store.get(item.stem).model == "fallback"  # and every save records it
    finally:
        studio.close()


def test_overlays_mark_where_the_matte_left_the_model_and_where_the_model_hesitates(toon) -> None:
    rgb, alpha = toon
    predicted = alpha.copy()
    predicted[:10, :10] = 255  # a mistake the person fixed
    predicted[-10:, -10:] = 128  # where the model hesitated
    item = editing.Item("toon", rgb, predicted, alpha, "fallback", "v")
    differs, unsure = (item.view(choice, None) for choice in preview.OVERLAYS)
    red = np.all(differs == (255, 0, 0), axis=-1)
    assert red[:10, :10].all() and red[-10:, -10:].all() and red.sum() == 200  # |delta| 255 and 127 > 10
    yellow = np.all(unsure == (255, 220, 0), axis=-1)
    assert yellow[-10:, -10:].all() and not yellow[:10, :10].any()
    assert np.array_equal(differs[~red], rgb[~red].astype(int) * 2 // 5)  # the rest is the dimmed image
    with pytest.raises(ValueError):
        preview.overlay(rgb, predicted, alpha, "sparkles")


def test_saving_an_item_someone_else_saved_meanwhile_says_so(tmp_path: Path, engine: Engine) -> None:
    from annotate.access import Person

    store = DatasetStore(tmp_path / "dataset", generation="g1")
    studio = Studio(store, engine, access=Access(sign_in=True, annotators=frozenset({"alice", "bob"})))
    try:
        files = write_toons(tmp_path / "in", 1)
        alice, bob = studio.desk(Person("alice")), studio.desk(Person("bob"))
        first = alice.load([str(p) for p in files], None).item
        alice.save(first, None)
        mine, theirs = bob.reopen(first.stem), alice.reopen(first.stem)  # both open the saved item
        assert bob.overlap_warning(mine) is None
        alice.save(theirs, None)
        step = bob.save_and_next(mine, None)
        assert step.warnings[0].startswith("alice saved toon0 while you had it open")
        assert store.get("toon0").annotator == "bob" and len(store.history("toon0")) == 2
    finally:
        studio.close()


class RevisionMatter:
    """A stand-in engine whose model version differs from its name, as a pinned ToonOut's does
    (the fallback's version is its name, so it cannot tell the two apart); alpha = red channel > 127."""

    engine, title, version, backend = "toonout", "ToonOut", "rev-1234abcd", "torch"
    is_fallback, fallback_reason, background = False, None, (128, 128, 128)

    def __init__(self) -> None:
        import torch

        self.device = torch.device("cpu")

    def predict_batch(self, images):
        from toonmatte.pipeline import Matte

        return [Matte(np.where(image.rgb[..., 0] > 127, 255, 0).astype(np.uint8), image.rgb, self.engine)
                for image in images]


def test_the_engine_and_its_mattes_satisfy_the_studio_protocols(toon) -> None:
    from annotate.protocols import MatteResult, MattingEngine
    from toonmatte.pipeline import Matte, Matter

    matter = Matter(model="fallback", device="cpu")
    assert isinstance(matter, MattingEngine) and isinstance(RevisionMatter(), MattingEngine)
    matte = matter.predict(toon[0])
    assert isinstance(matte, Matte) and isinstance(matte, MatteResult)
    engine = Engine(loader=lambda *_: matter).start()
    assert isinstance(engine.get(), MattingEngine) and isinstance(engine.predict(toon[0]), MatteResult)
    assert not isinstance(object(), MattingEngine)  # the check does look at the members

    class NoVersion:  # what a getattr default used to paper over
        engine, title, is_fallback, fallback_reason, device, backend, background = (
            "x", "X", False, None, "cpu", "torch", (0, 0, 0))

        def predict_batch(self, images):
            return []

    assert not isinstance(NoVersion(), MattingEngine)


def test_a_reopened_item_records_the_model_version_a_queue_item_does(tmp_path: Path) -> None:
    engine = Engine(loader=lambda *_: RevisionMatter()).start()
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        desk = studio.desk()
        item = desk.load(write_toons(tmp_path / "uploads", 1), None).item
        assert (item.engine, item.version) == ("toonout", "rev-1234abcd")
        desk.save(item, None)
        queued = studio.store.get(item.stem)
        assert (queued.model, queued.model_version) == ("toonout", "rev-1234abcd")

        reopened = desk.reopen(item.stem)
        assert (reopened.engine, reopened.version) == ("toonout", "rev-1234abcd")
        desk.save(reopened.with_alpha(255 - reopened.alpha), None)
        record = studio.store.get(item.stem)
        assert record.versions == 2 and (record.model, record.model_version) == (queued.model, queued.model_version)
        assert f"prediction by toonout ({'rev-1234abcd'[:12]})" in desk.progress_line(reopened)
    finally:
        studio.close()


def test_an_upload_is_hashed_once_from_upload_to_save_and_not_again_after_a_restart(tmp_path: Path, engine: Engine,
                                                                                      monkeypatch) -> None:
    import sys

    from toonmatte.dataset import hash_file

    hashed: list[str] = []

    def counting(path):
        hashed.append(Path(path).name)
        return hash_file(path)

    for name, module in list(sys.modules.items()):  # every studio and dataset module that hashes files
        if name.startswith(("annotate", "toonmatte.dataset")) and getattr(module, "hash_file", None) is hash_file:
            monkeypatch.setattr(module, "hash_file", counting)
    upload = write_toons(tmp_path / "uploads", 1)[0]
    studio = make_studio(tmp_path / "dataset", engine, stored={"0" * 64: None})  # stored: its lookup needs the hash
    try:
        item = studio.desk().load([upload], None).item
        studio.desk().save(item, None)
        assert hashed == ["toon0.png"]
        assert studio.store.get(item.stem).source_hash == hash_file(upload) == item.source_hash
    finally:
        studio.close()
    restarted = make_studio(tmp_path / "dataset", engine)
    try:
        item = restarted.desk().current().item
        assert item.source_hash == hash_file(upload) and hashed == ["toon0.png"]  # kept with the queue's state
    finally:
        restarted.close()


def test_the_steps_the_page_shows_for_paint_reset_save_and_reopen(tmp_path: Path, engine: Engine) -> None:
    studio = make_studio(tmp_path / "dataset", engine)
    try:
        desk = studio.desk()
        item = desk.load(write_toons(tmp_path / "uploads", 2), None).item
        nothing = desk.paint(item, None, "apply")
        assert nothing.item is None and "Nothing is painted yet" in nothing.warnings[0]
        box = (slice(0, 6), slice(0, 10))
        painted = desk.paint(item, {"background": None, "layers": [layer_with(item.alpha.shape, box, FOREGROUND_COLOR)],
                                    "composite": None}, "apply").item
        assert (painted.alpha[box] == 255).all() and painted.unsaved
        assert np.array_equal(desk.reset(painted).item.alpha, item.predicted)
        with pytest.raises(ToonmatteError, match="no image to reset"):
            desk.reset(None)
        saved = desk.save_here(item.with_alpha(np.zeros_like(item.alpha)), None)
        assert saved.info == f"Saved {item.stem}." and not saved.item.unsaved
        assert len(saved.warnings) == 1 and "all background" in saved.warnings[0]
        other = desk.move("next", saved.item).item
        edited = other.with_alpha(255 - other.alpha)
        back = desk.open_saved(item.stem, edited)
        assert back.item.stem == item.stem and (back.item.alpha == 0).all()
        assert len(back.warnings) == 1 and other.stem in back.warnings[0]  # the edits left behind are kept
    finally:
        studio.close()


def test_a_stored_prediction_is_used_only_for_the_running_model_version(tmp_path: Path) -> None:
    from annotate.queue import QueueItem
    from annotate.stored import predictor
    from toonmatte.dataset import hash_file
    from toonmatte.evaluation.uncertainty import uncertainty
    from toonmatte.preannotate import StoredPrediction

    engine = Engine(loader=lambda *_: RevisionMatter()).start()
    source = write_toons(tmp_path / "uploads", 1)[0]
    stored_alpha = np.zeros((64, 64), np.uint8)
    stored_alpha[8:24, 8:24] = 255
    Image.fromarray(stored_alpha).save(tmp_path / "stored.png")
    item = QueueItem("toon0", source, hash_file(source))
    for version, used in (("rev-1234abcd", True), ("toonout", False)):  # the engine's name is not its version
        hit = StoredPrediction(tmp_path / "stored.png", "toonout", version, uncertainty(stored_alpha), "earlier")
        prediction = predictor(engine, {item.source_hash: hit})(item)
        assert np.array_equal(prediction.alpha, stored_alpha) is used and (prediction.stored == "earlier") is used
        assert prediction.version == "rev-1234abcd"
