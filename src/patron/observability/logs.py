"""Structured logs with structlog: one JSON object per line (or readable lines on a terminal), for Patron's
own events and for the libraries' standard-library logging (uvicorn, alembic) alike."""

import logging
import logging.config
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["json", "console"]

_SHARED: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _renderer(log_format: LogFormat) -> structlog.typing.Processor:
    if log_format == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def configure_structlog() -> None:
    """Patron's structlog loggers hand their events to the standard library, formatted there with the rest."""
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure(log_format: LogFormat = "json", level: int = logging.INFO) -> None:
    """For a command's own process (`patron worker`): every log record to stderr, structured."""
    logging.config.dictConfig(dict_config(log_format))
    logging.getLogger().setLevel(level)


def formatter(log_format: LogFormat = "json") -> logging.Formatter:
    """The structured formatter, for a logging dictConfig (uvicorn applies one in each of its worker processes)."""
    configure_structlog()
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _renderer(log_format),
        ],
    )


def dict_config(log_format: LogFormat = "json") -> dict[str, Any]:
    """uvicorn's `log_config`: its own loggers and Patron's, all through the structured formatter on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": f"{__name__}.formatter", "log_format": log_format}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "structured", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_for_terminal() -> None:
    """For a command a person runs and reads (`patron jobs run`): readable lines on stderr, leaving stdout to
    the result and the standard library's logging as it is."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _renderer("console"),
        ],
        # The stream is looked up at each log call: a caller may have swapped sys.stderr meanwhile.
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
