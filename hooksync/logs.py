"""Structured logs: one JSON object a line (or plain text for local use), never a secret.

Callers pass context as keyword fields (`delivery`, `target`, `job`, `event`, `step`); the
formatter drops any field whose name says it holds a credential.
"""

from __future__ import annotations

import datetime
import functools
import logging
import sys
from typing import Any

from hooksync.jsontext import dump_json

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("secret", "token", "password", "authorization", "signature", "key")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info and record.levelno >= logging.ERROR:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return dump_json(entry, default=str).decode("utf-8")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        stamp = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname:<7} {record.getMessage()} {fields}".rstrip()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key.removesuffix("_"): value
        for key, value in vars(record).items()
        if key not in _STANDARD and value is not None and _allowed(key)
    }


@functools.cache
def _allowed(key: str) -> bool:
    return not any(word in key.lower() for word in _SECRET_WORDS)


def extra(**fields: Any) -> dict[str, Any]:
    """Fields for a log call's `extra`; names a LogRecord already uses (`created`, `name`)
    get a trailing underscore, which the formatters remove again."""
    return {(f"{key}_" if key in _STANDARD else key): value for key, value in fields.items()}


def configure(log_format: str = "json", level: int = logging.INFO) -> None:
    """Send hooksync's logs to stderr in `log_format` ("json" or "text")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if log_format == "text" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "kubernetes", "github", "gitlab", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
