"""loguru as the one log pipeline: uvicorn and every stdlib logger are routed into it.

Each line carries the request id (and the job id for job work), bound by the request-id
middleware and the job runner. `MUSICSEP_LOG_JSON=1` writes one JSON object per line.
`diagnose=False`: tracebacks never print local variables (they may hold secrets or paths).

Log injection: request paths, headers, model and file names reach log lines, and a decoded
`%0a` in a path used to start a forged record. One patcher escapes control characters in every
record's message and bound fields, whatever the call site, in text and JSON modes; in text mode
the lines of a traceback (whose exception text may quote a request too) are escaped and indented,
so a line that starts at the margin is always a record of its own.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
from typing import Any, TextIO

from loguru import logger

TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
    "{extra[request_id]} {extra[job_id]} | <cyan>{name}</cyan> - <level>{message}</level>"
)


#: What can end a line or steer a terminal: C0 (LF, CR, ESC …), DEL, C1 (NEL …), the Unicode line
#: and paragraph separators, and the bidirectional overrides and isolates.
_CONTROLS = [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _CONTROLS}
_ESCAPES_BUT_COLOUR = {code: text for code, text in _ESCAPES.items() if code != 0x1B}
_JSON_RAW = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x20}
_CONTINUATION = "    "


def escape_controls(text: str) -> str:
    """`text` with every control character written as a visible escape (`\\n`, `\\x1b`, `\\u2028`)."""
    return text.translate(_ESCAPES)


def _escape_record(record: Any) -> None:
    """The loguru patcher: runs on every record after its message is formatted."""
    record["message"] = escape_controls(record["message"])
    extra = record["extra"]  # a fresh dict per record
    for key, value in extra.items():
        if isinstance(value, str):
            extra[key] = escape_controls(value)


def _escape_traceback(text: str, escapes: dict[int, str]) -> str:
    """A formatted record without its final newline: the first line as it is (its fields are
    escaped by the patcher), the traceback lines after it escaped and indented."""
    first, _, rest = text.rstrip("\n").partition("\n")
    if not rest:
        return first
    return "\n".join([first, *(_CONTINUATION + line.translate(escapes) for line in rest.split("\n"))])


class _TextSink:
    """Text records; tracebacks keep ESC only when colouring (loguru colours them)."""

    def __init__(self, stream: TextIO, colour: bool) -> None:
        self._stream = stream
        self._escapes = _ESCAPES_BUT_COLOUR if colour else _ESCAPES

    def write(self, message: str) -> None:
        self._stream.write(_escape_traceback(message, self._escapes) + "\n")
        self._stream.flush()


class _JsonSink:
    """loguru's JSON lines, with the exception's text escaped like the rest, and the characters
    JSON leaves raw (DEL, C1, U+2028 …) written as \\u escapes: the same JSON value, on one line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, message: Any) -> None:
        line = str(message)
        if message.record["exception"] is not None:
            entry = json.loads(line)
            entry["text"] = _escape_traceback(entry["text"], _ESCAPES)
            exception = entry["record"]["exception"]
            exception["value"] = escape_controls(str(exception["value"]))
            line = json.dumps(entry, ensure_ascii=False)
        self._stream.write(line.rstrip("\n").translate(_JSON_RAW) + "\n")
        self._stream.flush()


class InterceptHandler(logging.Handler):
    """The stdlib → loguru bridge from loguru's documentation."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(json_lines: bool = False, level: str = "INFO") -> None:
    logger.remove()
    logger.configure(extra={"request_id": "-", "job_id": "-"}, patcher=_escape_record)
    if json_lines:
        logger.add(
            _JsonSink(sys.stderr).write,
            level=level,
            format=TEXT_FORMAT,
            serialize=True,
            backtrace=False,
            diagnose=False,
            colorize=False,
        )
    else:
        colour = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        logger.add(
            _TextSink(sys.stderr, colour).write,
            level=level,
            format=TEXT_FORMAT,
            backtrace=False,
            diagnose=False,
            colorize=colour,
        )
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "sse_starlette"):
        stdlib = logging.getLogger(name)
        stdlib.handlers = [InterceptHandler()]
        stdlib.propagate = False
