"""Run ``python app.py`` offline on a free local port for the end-to-end tests (test_app, test_browser)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from conftest import REPO

GENERATION = "g1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(dataset: Path, hf_home: Path, *extra: str,
              env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, Path]:
    """Launch the studio offline (classical fallback) on a free port, with ``env`` added to its
    environment; returns (process, url, log) once it serves."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "GRADIO_ANALYTICS_ENABLED": "False",
           **(env or {})}
    env.pop("TOONMATTE_WEIGHTS", None)
    log = dataset.parent / f"app-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--dataset-root", str(dataset),
         "--generation", GENERATION, *extra],
        cwd=REPO, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url, log
        except OSError:
            time.sleep(0.2)
    stop_app(process)
    raise RuntimeError(f"app.py did not serve within 120 s:\n{log.read_text()}")


def stop_app(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
