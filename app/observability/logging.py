"""JSON log lines on stdout: one object per record, with the request's correlation id.

Each line carries `timestamp` (ISO 8601, UTC, milliseconds), `level`, `logger`, `message`,
`request_id` (when a request is in progress), `exception` (traceback text, when present) and any
`extra={...}` fields. uvicorn's own loggers are routed through the same handler. Every line passes
through `redaction.redact` (tokens, client secrets, passwords never reach a log). stdlib only.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from app.observability.context import current_request_id
from app.observability.redaction import redact

# Every attribute a bare LogRecord has; whatever else a record carries came from `extra=`.
# uvicorn's `color_message` duplicates the message with ANSI escapes; it is dropped too.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonFormatter(logging.Formatter):
    """Formats a record as a single-line JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            # setdefault: an extra field never overwrites the core fields above.
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a non-JSON extra (a UUID, a Path, ...) is logged as text instead of losing the line.
        # redact last, on the whole line: no field, extra or traceback can carry a credential out.
        return redact(json.dumps(entry, default=str))


class _StdoutJsonHandler(logging.Handler):
    """Writes each formatted record as one line to the current `sys.stdout`.

    `sys.stdout` is looked up per record rather than captured once, so a replaced stdout (pytest's
    capture, a redirect) is honoured; the line and its newline go out in a single write so lines from
    different threads cannot interleave, and each line is flushed because stdout is a pipe under ECS.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stdout
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def configure_logging(level: str) -> None:
    """Install the JSON handler on the root logger and route uvicorn's loggers through it.

    Idempotent: a previously installed JSON handler is replaced, never duplicated. Other handlers on
    the root logger (pytest's capture, for one) are left alone.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StdoutJsonHandler)]:
        root.removeHandler(handler)
    json_handler = _StdoutJsonHandler()
    json_handler.setFormatter(JsonFormatter())
    root.addHandler(json_handler)
    root.setLevel(level.upper())

    # uvicorn's dictConfig (run before the app is imported) gives these loggers their own plain-text
    # handlers and propagate=False; hand them to the root logger so they share format and level. A
    # logger with neither handlers nor propagation has been silenced on purpose (`--no-access-log`
    # does that to uvicorn.access) and stays silent.
    for name in _UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        if not uvicorn_logger.handlers and not uvicorn_logger.propagate:
            continue
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)


def _iso_utc(created: float) -> str:
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
