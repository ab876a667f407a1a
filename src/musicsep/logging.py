"""loguru as the one log pipeline: uvicorn and every stdlib logger are routed into it.

Each line carries the request id (and the job id for job work), bound by the request-id
middleware and the job runner. `MUSICSEP_LOG_JSON=1` writes one JSON object per line.
`diagnose=False`: tracebacks never print local variables (they may hold secrets or paths).
"""

from __future__ import annotations

import inspect
import logging
import sys

from loguru import logger

TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <7}</level> | "
    "{extra[request_id]} {extra[job_id]} | <cyan>{name}</cyan> - <level>{message}</level>"
)


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
    logger.configure(extra={"request_id": "-", "job_id": "-"})
    logger.add(sys.stderr, level=level, format=TEXT_FORMAT, serialize=json_lines,
               backtrace=False, diagnose=False, colorize=None if not json_lines else False)
    logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "sse_starlette"):
        stdlib = logging.getLogger(name)
        stdlib.handlers = [InterceptHandler()]
        stdlib.propagate = False
