"""The repository as a Hugging Face Space: the README's front matter agrees with requirements.txt, the
zoo and app.py, and ``app.py`` starts and serves with a Space's environment (offline, no GPU)."""
from __future__ import annotations

import json
import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from huggingface_hub import metadata_load
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import REPO
from studio_server import start_app, stop_app
from toonmatte.model.zoo import DEFAULT_MODEL, ZOO

COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
HARDWARE = {"cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "a10g-small",
            "a10g-large", "a100-large"}
OPTIONAL_SCOPES = {"email", "read-billing", "read-repos", "write-repos", "manage-repos", "inference-api",
                   "write-discussions"}
SPACE = {"SPACE_ID": "studio-team/toonmatte", "SPACE_AUTHOR_NAME": "studio-team", "SYSTEM": "spaces",
         "CUDA_VISIBLE_DEVICES": ""}
OAUTH = {"OAUTH_CLIENT_ID": "client-id", "OAUTH_CLIENT_SECRET": "client-secret", "OAUTH_SCOPES": "openid profile",
         "OPENID_PROVIDER_URL": "https://huggingface.co"}
"""What a Space with ``hf_oauth: true`` sets; nothing here is contacted before someone signs in."""


@pytest.fixture(scope="module")
def card() -> dict:
    return metadata_load(REPO / "README.md")


def requirements() -> dict[str, Requirement]:
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    parsed = [Requirement(line.split("#")[0]) for line in lines if line.split("#")[0].strip()]
    return {requirement.name: requirement for requirement in parsed}


def test_front_matter_is_a_gradio_space_running_app_py(card):
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py" and (REPO / card["app_file"]).is_file()
    assert card["title"] and card["emoji"] and {card["colorFrom"], card["colorTo"]} <= COLOURS
    assert card["license"] == "mit" and 0 < len(card["short_description"]) <= 60
    assert card["suggested_hardware"] in HARDWARE
    requires = re.search(r'requires-python\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert re.fullmatch(r"3\.\d+", card["python_version"]) and f"{card['python_version']}.0" in SpecifierSet(requires)


def test_sdk_version_is_the_gradio_the_tests_run_and_requirements_allow_it(card):
    import gradio

    assert card["sdk_version"] == gradio.__version__
    needed = requirements()
    assert needed["gradio"].specifier.contains(card["sdk_version"])
    assert "oauth" in needed["gradio"].extras  # the Sign in with Hugging Face button's libraries
    assert "spaces" in needed


def test_sign_in_asks_for_no_scope_beyond_what_it_needs(card):
    assert card["hf_oauth"] is True
    assert set(card.get("hf_oauth_scopes") or []) <= OPTIONAL_SCOPES - {"write-repos", "manage-repos"}


def test_models_are_the_zoos_hub_repos_and_toonout_is_preloaded(card):
    assert sorted(card["models"]) == sorted({spec.repo_id for spec in ZOO.values()})
    assert len(card["models"]) == len(set(card["models"]))
    toonout = ZOO[DEFAULT_MODEL]
    preloads = [entry.split() for entry in card["preload_from_hub"]]
    # At the zoo's pinned commit: the engine asks the cache for that commit, so a preload of another would not count.
    assert [toonout.repo_id, toonout.filename, toonout.revision] in preloads


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


@pytest.mark.timeout(300)
def test_app_starts_and_serves_with_a_spaces_environment_offline_without_a_gpu(tmp_path):
    pytest.importorskip("spaces")
    process, url, log = start_app(tmp_path / "dataset", tmp_path / "hf_home", env={**SPACE, **OAUTH})
    try:
        assert get(url) == 200
    finally:
        stop_app(process)
    assert "Traceback" not in log.read_text().split("* Running on")[0]


@pytest.mark.timeout(300)
def test_app_starts_with_only_space_id_and_system(tmp_path):
    """The interface's own check: ``SPACE_ID=owner/name SYSTEM=spaces python app.py --port P``."""
    process, url, _ = start_app(tmp_path / "dataset", tmp_path / "hf_home", env=SPACE)
    try:
        assert get(url) == 200
    finally:
        stop_app(process)


class FakeDeviceApi(BaseHTTPRequestHandler):
    """ZeroGPU's device API as far as a start-up goes: the start-up report is accepted and recorded."""

    calls: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        FakeDeviceApi.calls.append(self.path)
        self.send_response(200 if self.path == "/startup-report" else 404)
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


@pytest.mark.timeout(300)
def test_app_starts_on_zerogpu_without_a_gpu(tmp_path):
    """With ZeroGPU's variables the ``spaces`` package emulates CUDA and reports the app's GPU function
    to the device API at launch; the app serves (offline it runs the classical fallback, which asks
    for no GPU)."""
    pytest.importorskip("spaces")
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDeviceApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**SPACE, **OAUTH, "SPACES_ZERO_GPU": "true",
           "SPACES_ZERO_DEVICE_API_URL": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        process, url, log = start_app(tmp_path / "dataset", tmp_path / "hf_home", env=env)
        try:
            assert get(url) == 200
            config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
            assert config["components"]
        finally:
            stop_app(process)
    finally:
        server.shutdown()
    assert FakeDeviceApi.calls == ["/startup-report"], log.read_text()[-3000:]
