"""structlog set-up: a console (or JSON-lines) stream on stderr for people and CI, and
always a JSON-lines log in the run directory for after the fact."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from pathlib import Path

import structlog

from tracecore_perf.escape import json as escape_json
from tracecore_perf.escape import log_line
from tracecore_perf.files import open_append

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# Events that go to the run's harness.log only, never to the console: one line per failed
# episode would bury everything else on a long run; the command line prints one summary of
# the failures at the end instead.
RUN_LOG_ONLY = frozenset({"episode.failed"})


def _console_worthy(record: logging.LogRecord) -> bool:
    return not (isinstance(record.msg, dict) and record.msg.get("event") in RUN_LOG_ONLY)


def _printable(_logger: object, _name: str, event: dict) -> dict:
    """The console renderer prints strings as they are, and an event may carry what an episode
    or a scenario holds (an error, a problem naming an agent's file): shown as
    ``escape.log_line``, so no escape sequence reaches the terminal and no workflow command a
    CI runner's log."""
    return {key: log_line(value) if isinstance(value, str) else value for key, value in event.items()}


def _json_line(logger: object, name: str, event: dict) -> str:
    """A JSON line on stderr, where a CI runner may read it (``escape.json``: the same JSON)."""
    return escape_json(_JSON(logger, name, event))


_JSON = structlog.processors.JSONRenderer()


def configure(log_format: str = "console", level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger("tracecore_perf")
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    root.propagate = False
    rendering = (
        [_json_line]  # JSON escapes every control character itself
        if log_format == "json"
        else [_printable, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.addFilter(_console_worthy)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering], foreign_pre_chain=_SHARED
        )
    )
    root.addHandler(handler)
    # The event loop reports what it could not hand to anyone (a callback that raised as the run
    # stopped) through the "asyncio" logger, which would print a traceback on the console: one
    # line into our log instead.
    loop_log = logging.getLogger("asyncio")
    loop_log.handlers[:] = [_OneLine()]
    loop_log.propagate = False


class _OneLine(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        text = (record.getMessage().splitlines() or [""])[0]
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        structlog.get_logger("tracecore_perf.asyncio").warning("event_loop", message=text)


class _RunLogHandler(logging.FileHandler):
    """A file handler that goes quiet instead of printing a traceback per event when its
    disk fills up or its directory vanishes: the run's own error says what happened."""

    broken = False

    def _open(self):  # noqa: ANN202 - logging's hook
        # never through a link, nor into a FIFO, an episode planted at the name (files.open_append)
        return io.TextIOWrapper(open_append(Path(self.baseFilename)), encoding=self.encoding or "utf-8", write_through=True)

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.broken = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            super().close()


def add_run_log(path: Path) -> logging.Handler:
    """Every event, as JSON lines, into the run directory's ``harness.log``."""
    handler = _RunLogHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
            foreign_pre_chain=_SHARED,
        )
    )
    logging.getLogger("tracecore_perf").addHandler(handler)
    return handler
