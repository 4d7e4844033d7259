"""End to end: ``python app.py`` on a free port, driven through its named endpoints with gradio_client."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, draw_toon
from studio_server import GENERATION, start_app, stop_app

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory):
    """(url, dataset root, client) of a running studio."""
    from gradio_client import Client

    base = tmp_path_factory.mktemp("studio")
    process, url, log = start_app(base / "dataset", base / "hf_home")
    try:
        yield url, base / "dataset", Client(url, verbose=False, download_files=str(base / "downloads"))
    finally:
        stop_app(process)
        print(log.read_text()[-3000:])


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def read(path: Path | str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).copy()


def triple(root: Path, stem: str) -> dict[str, np.ndarray]:
    return {kind: read(root / "train" / GENERATION / kind / f"{stem}.png") for kind in ("im", "gt", "an")}


def test_help_lists_the_options() -> None:
    result = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--host", "--port", "--dataset-root", "--split", "--generation", "--model", "--weights",
                   "--device", "--share", "--annotator"):
        assert option in result.stdout


def test_app_py_runs_the_entry_point_of_the_installed_toonmatte_studio() -> None:
    import app
    from annotate.web import main as entry

    assert app.main is entry.main  # pyproject.toml's toonmatte-studio = "annotate.web.main:main"


def test_only_matte_and_save_are_public_endpoints(studio) -> None:
    _, _, client = studio
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/matte", "/save"}
    assert [p["label"] for p in endpoints["/save"]["parameters"]] == ["image", "mask"]


def test_matte_returns_cutout_and_mask(studio, tmp_path: Path) -> None:
    from gradio_client import handle_file

    _, _, client = studio
    rgb, alpha = draw_toon(96, 80, seed=3)
    source = write_png(tmp_path / "hero.png", rgb)
    cut_path, mask_path = client.predict(handle_file(str(source)), api_name="/matte")
    assert Path(mask_path).name == "hero_mask.png" and Path(cut_path).name == "hero.png"
    with Image.open(mask_path) as mask_image, Image.open(cut_path) as cut_image:
        assert mask_image.mode == "L" and mask_image.size == (80, 96)
        assert cut_image.mode == "RGBA" and cut_image.size == (80, 96)
        mask, cut = np.asarray(mask_image), np.asarray(cut_image)
    assert np.array_equal(cut[..., 3], mask)
    assert np.abs(mask.astype(int) - alpha).mean() < 10  # the classical fallback finds the flat-shaded toon


def test_save_stores_the_triple_and_keeps_history(studio, tmp_path: Path) -> None:
    from gradio_client import handle_file

    _, root, client = studio
    rgb, alpha = draw_toon(64, 48, seed=5)
    source = write_png(tmp_path / "Scene 01.png", rgb)
    first = alpha.copy()
    first[:8, :8] = 255  # a deliberate correction
    stem = client.predict(handle_file(str(source)), handle_file(str(write_png(tmp_path / "m1.png", first))),
                          api_name="/save")
    assert stem == "Scene_01"
    saved = triple(root, stem)
    assert np.array_equal(saved["im"], rgb)
    assert saved["gt"].dtype == np.uint8 and np.array_equal(saved["gt"], first)
    assert saved["an"].shape == (64, 48, 4) and np.array_equal(saved["an"][..., 3], first)

    second = alpha.copy()
    second[-4:, -4:] = 0
    again = client.predict(handle_file(str(source)), handle_file(str(write_png(tmp_path / "m2.png", second))),
                           api_name="/save")
    assert again == stem  # the same source keeps its stem...
    assert np.array_equal(triple(root, stem)["gt"], second)
    history = sorted((root / ".history" / "train" / GENERATION / stem).iterdir())
    assert len(history) == 1 and np.array_equal(read(history[0] / "gt.png"), first)  # ...and the old version


def test_concurrent_saves_of_one_image_keep_both_versions(studio, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, root, _ = studio
    rgb, alpha = draw_toon(48, 48, seed=8)
    source = write_png(tmp_path / "race.png", rgb)
    masks = [np.full_like(alpha, value) for value in (0, 255)]
    paths = [write_png(tmp_path / f"mask{i}.png", mask) for i, mask in enumerate(masks)]
    stems: list[str] = []

    def save(mask_path: Path) -> None:
        client = Client(url, verbose=False, download_files=str(tmp_path / "dl"))
        stems.append(client.predict(handle_file(str(source)), handle_file(str(mask_path)), api_name="/save"))

    threads = [threading.Thread(target=save, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert stems == ["race", "race"]
    current = triple(root, "race")
    history = list((root / ".history" / "train" / GENERATION / "race").iterdir())
    assert len(history) == 1
    old = {kind: read(history[0] / f"{kind}.png") for kind in ("im", "gt", "an")}
    gts = sorted(int(t["gt"][0, 0]) for t in (current, old))
    assert gts == [0, 255]  # both versions, whole
    for version in (current, old):
        assert np.array_equal(version["im"], rgb)
        assert np.array_equal(version["an"][..., 3], version["gt"])  # never a mix of two saves


def test_bad_files_give_one_sentence_and_the_server_stays_usable(studio, tmp_path: Path) -> None:
    from gradio_client import handle_file

    _, _, client = studio
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(junk)), api_name="/matte")
    message = str(caught.value)
    assert "junk.png" in message and "Traceback" not in message
    assert "/" not in message  # the file's name, never the server's upload folder

    rgb, alpha = draw_toon(40, 40, seed=1)
    image = write_png(tmp_path / "ok.png", rgb)
    small = write_png(tmp_path / "small.png", alpha[:20, :20])
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(image)), handle_file(str(small)), api_name="/save")
    assert "same size" in str(caught.value) and "small.png" in str(caught.value) and "/" not in str(caught.value)
    colour = write_png(tmp_path / "colour.png", rgb)
    with pytest.raises(Exception) as caught:
        client.predict(handle_file(str(image)), handle_file(str(colour)), api_name="/save")
    assert "grayscale" in str(caught.value)

    cut_path, mask_path = client.predict(handle_file(str(image)), api_name="/matte")
    assert read(mask_path).shape == (40, 40)



def test_the_app_refuses_to_start_on_a_read_only_dataset_root(tmp_path: Path, mounts) -> None:
    (tmp_path / "data").mkdir()
    view = mounts.read_only_view(tmp_path / "data", tmp_path / "view")
    done = subprocess.run([sys.executable, str(REPO / "app.py"), "--dataset-root", str(view), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "read-only" in lines[0] and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def team_studio(tmp_path_factory: pytest.TempPathFactory):
    """(url, dataset root) of a studio with sign-in: alice and bob are annotators, carol is not."""
    base = tmp_path_factory.mktemp("team")
    logins = base / "users.txt"
    logins.write_text("alice:a-pass\nbob:b-pass\ncarol:c-pass\n")
    process, url, log = start_app(base / "dataset", base / "hf_home", "--auth-file", str(logins),
                                  "--annotators", "alice,bob")
    try:
        yield url, base / "dataset", base
    finally:
        stop_app(process)
        print(log.read_text()[-3000:])


def test_signed_in_people_save_as_themselves_and_others_cannot_save(team_studio, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, root, base = team_studio
    clients = {name: Client(url, auth=(name, f"{name[0]}-pass"), verbose=False, download_files=str(base / name))
               for name in ("alice", "bob", "carol")}
    for name, seed in (("alice", 11), ("bob", 12), ("carol", 13)):
        rgb, alpha = draw_toon(40, 40, seed=seed)
        image = write_png(tmp_path / f"{name}_shot.png", rgb)
        _, mask = clients[name].predict(handle_file(str(image)), api_name="/matte")  # everyone signed in may matte
        assert read(mask).shape == (40, 40)
        mask_path = write_png(tmp_path / f"{name}_mask.png", alpha)
        if name == "carol":
            with pytest.raises(Exception) as caught:
                clients[name].predict(handle_file(str(image)), handle_file(str(mask_path)), api_name="/save")
            assert "carol is not on this studio's list of annotators" in str(caught.value)
            continue
        stem = clients[name].predict(handle_file(str(image)), handle_file(str(mask_path)), api_name="/save")
        assert stem == f"{name}_shot"
    from toonmatte.dataset import DatasetStore, list_items

    with DatasetStore(root) as store:
        assert {record.stem: record.annotator for record in store.items()} == {"alice_shot": "alice", "bob_shot": "bob"}
    assert sorted(item.stem for item in list_items(root)) == ["alice_shot", "bob_shot"]  # carol wrote nothing
    with pytest.raises(ValueError, match="Could not login"):  # the login page refuses the wrong password
        Client(url, auth=("carol", "wrong"), verbose=False)
