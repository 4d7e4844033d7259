"""The server's log: a browser that goes away in the middle of a request is a notice, not a traceback.

A closed tab or a dropped network during an upload or an event makes the ASGI server log
"Exception in ASGI application" with the whole traceback of the request that could not finish.
Nothing is wrong with the studio then, and a traceback in its log should mean that something is.
"""
from __future__ import annotations

import logging

DISCONNECT_NOTICE = ("A browser disconnected in the middle of a request (page closed or network lost); "
                     "that request was dropped.")
SERVER_LOGGERS = ("uvicorn.error", "uvicorn.asgi")


def is_client_disconnect(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it, or any exception in its group) is a client disconnecting."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if "Disconnect" in type(current).__name__:  # starlette's ClientDisconnect, uvicorn's ClientDisconnected
            return True
        pending += [current.__cause__, current.__context__, *getattr(current, "exceptions", ())]
    return False


class QuietClientDisconnects(logging.Filter):
    """Turns a logged client-disconnect traceback into one line at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_client_disconnect(record.exc_info[1]):
            record.msg, record.args = DISCONNECT_NOTICE, ()
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_client_disconnects() -> None:
    """Install the filter on the ASGI server's loggers (once)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, QuietClientDisconnects) for existing in logger.filters):
            logger.addFilter(QuietClientDisconnects())
