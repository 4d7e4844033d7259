"""A browser that disconnects mid-request leaves a one-line notice in the app's log, not a traceback."""
from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from annotate.web.server_log import DISCONNECT_NOTICE, QuietClientDisconnects, is_client_disconnect
from conftest import REPO, draw_toon
from studio_server import start_app, stop_app

pytestmark = pytest.mark.timeout(300)


class ClientDisconnect(Exception):
    """Stands in for starlette.requests.ClientDisconnect (matched by name, as uvicorn's ClientDisconnected is)."""


def logged(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (),
                                 sys.exc_info())


def test_a_disconnect_anywhere_in_the_chain_becomes_one_info_line() -> None:
    def wrapped() -> BaseException:
        try:
            raise ClientDisconnect()
        except ClientDisconnect as cause:
            try:
                raise RuntimeError("reading the form failed") from cause
            except RuntimeError as error:
                return error

    class Group(Exception):  # an exception group's shape (ExceptionGroup needs Python 3.11)
        exceptions = (ValueError(), wrapped())

    for error in (ClientDisconnect(), wrapped(), Group()):
        record = logged(error)
        assert QuietClientDisconnects().filter(record)
        assert (record.levelno, record.getMessage(), record.exc_info) == (logging.INFO, DISCONNECT_NOTICE, None)
    record = logged(ValueError("a real bug"))
    assert QuietClientDisconnects().filter(record) and not is_client_disconnect(record.exc_info[1])
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_clients_killed_during_an_upload_and_during_an_event_leave_the_log_and_dataset_clean(tmp_path: Path) -> None:
    image = tmp_path / "big.png"
    Image.fromarray(draw_toon(1536, 1536, seed=4)[0]).save(image)
    dataset = tmp_path / "dataset"
    process, url, log = start_app(dataset, tmp_path / "hf_home")
    try:
        address = urlparse(url)
        for _ in range(3):  # an upload whose sender goes away a tenth of the way through
            with socket.create_connection((address.hostname, address.port)) as sock:
                body = b"x" * 200_000
                sock.sendall(b"POST /gradio_api/upload HTTP/1.1\r\nHost: localhost\r\n"
                             b"Content-Type: multipart/form-data; boundary=edge\r\nContent-Length: 2000000\r\n\r\n"
                             b"--edge\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n"
                             b"Content-Type: image/png\r\n\r\n" + body)
                time.sleep(0.3)
        client = [sys.executable, "-c", "import sys; from gradio_client import Client, handle_file; "
                  "Client(sys.argv[1], verbose=False).predict(handle_file(sys.argv[2]), api_name='/matte')",
                  url, str(image)]
        for delay in (1.0, 2.5):  # a client killed while its event is queued or running
            killed = subprocess.Popen(client, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            killed.send_signal(signal.SIGKILL)
            killed.wait()
        from gradio_client import Client, handle_file

        small = tmp_path / "small.png"
        Image.fromarray(draw_toon(96, 96)[0]).save(small)
        _, mask = Client(url, verbose=False, download_files=str(tmp_path / "dl")).predict(handle_file(str(small)),
                                                                                          api_name="/matte")
        assert np.asarray(Image.open(mask)).shape == (96, 96)  # the studio still serves
        time.sleep(3)  # the killed clients' requests finish or fail on the server
    finally:
        stop_app(process)
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    triples = [path for path in dataset.rglob("*.png") if ".uploads" not in path.parts]
    assert not triples, triples  # /matte writes nothing, and nothing half-written was left behind
