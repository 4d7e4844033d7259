"""The team queue: claims that expire, and no two people on one image without knowing it."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from annotate.access import Access, Person
from annotate.claims import Claims, TeamQueue
from annotate.engine import Engine
from annotate.studio import Studio
from conftest import draw_toon
from toonmatte.dataset import DatasetStore
from toonmatte.errors import ToonmatteError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_claims_hold_until_they_expire_and_only_their_holder_renews_them(tmp_path: Path) -> None:
    clock = Clock()
    claims = Claims(tmp_path / "claims.sqlite", ttl=60, clock=clock)
    assert claims.claim("a", "alice") and not claims.claim("a", "bob") and claims.claim("a", "alice")
    claims.check("a", "alice")
    with pytest.raises(ToonmatteError, match="alice is working on a .* your changes were not saved"):
        claims.check("a", "bob")
    clock.now += 61
    assert claims.holder("a") is None and claims.claim("a", "bob")  # an expired claim may be taken over
    with pytest.raises(ToonmatteError, match="bob is working on a"):
        claims.check("a", "alice")
    claims.release("a", "alice")  # only the holder's release counts
    assert claims.holder("a")[0] == "bob"
    claims.release("a", "bob")
    assert claims.holder("a") is None
    other = Claims(tmp_path / "claims.sqlite", ttl=60, clock=clock)  # another process sees the same claims
    assert claims.claim("b", "alice") and not other.claim("b", "bob")


def write_folder(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"frame{i:02d}.png")
        Image.fromarray(draw_toon(40, 40, seed=i)[0]).save(paths[-1])
    return paths


def test_people_taking_team_work_never_get_the_same_image_and_saving_releases_it(tmp_path: Path) -> None:
    write_folder(tmp_path / "to_annotate", 5)
    store = DatasetStore(tmp_path / "dataset", generation="g1")
    team = TeamQueue.open(tmp_path / "to_annotate", store)
    access = Access(sign_in=True, annotators=frozenset({"alice", "bob", "carol"}))
    studio = Studio(store, Engine(model="fallback").start(), access=access, team=team)
    alice, bob = studio.desk(Person("alice")), studio.desk(Person("bob"))
    try:
        step = alice.take_team_work(2)
        assert [item.path.name for item in alice.queue.items] == ["frame00.png", "frame01.png"]
        bob.take_team_work(2)
        assert [item.path.name for item in bob.queue.items] == ["frame02.png", "frame03.png"]
        with pytest.raises(ToonmatteError, match="alice is working on frame00"):
            bob.save(step.item, None)  # bob cannot save over alice's claim
        alice.save_and_next(step.item, None)
        assert store.get("frame00").annotator == "alice" and team.claims.holder("frame00") is None
        again = alice.take_team_work(2)  # a saved image is not handed out again; her live claim is renewed
        assert [item.path.name for item in alice.queue.items] == ["frame01.png", "frame04.png"]
        assert again.item.stem == "frame01"
        with pytest.raises(ToonmatteError, match="nothing left for you"):
            studio.desk(Person("carol")).take_team_work(2)  # every image is saved or claimed
    finally:
        studio.close()
