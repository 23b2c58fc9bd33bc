"""Log output for `scim-bridge serve`: readable text for a terminal, or one JSON object per line
for a log pipeline (setting ``log_format``).

Every JSON record carries ``time`` (UTC, RFC 3339), ``level``, ``logger`` and ``message``;
an exception adds ``exception``, values passed with ``extra=`` are kept, and uvicorn's access
lines add ``client``, ``method``, ``path`` and ``status``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=`.
# uvicorn's `color_message` is the message again with terminal colours: not for a log pipeline.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, _, status = args
            entry.update(client=client, method=method, path=path, status=status)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(log_format: LogFormat, level: str = "info") -> dict[str, Any]:
    """A `logging.config.dictConfig` (uvicorn's ``log_config``): every logger, uvicorn's
    included, writes to stderr in the one format."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"format": TEXT_FORMAT, "datefmt": "%Y-%m-%dT%H:%M:%S%z"}
    )
    inherit = {"handlers": [], "propagate": True}
    # httpx logs every request (every Coder call) at INFO; show those only when debugging.
    chatty = "DEBUG" if level.lower() == "debug" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"scim_bridge": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "scim_bridge",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {**inherit, "level": level.upper()},
            "uvicorn.error": {**inherit, "level": level.upper()},
            "uvicorn.access": {**inherit, "level": level.upper()},
            "httpx": {"level": chatty},
            "httpcore": {"level": chatty},
        },
    }
