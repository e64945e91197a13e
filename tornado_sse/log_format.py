"""Log output: human-readable text, or one JSON object per line for log pipelines.

Structured lines (the access log) pass ``extra={"event": NAME, "fields": {...}}``:
the text format shows the message (already ``key=value`` pairs), the JSON
format puts the event name and the fields themselves into the object, typed
(numbers stay numbers) instead of the message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            obj["event"] = str(getattr(record, "event", "log"))
            obj.update(fields)
        else:
            obj["message"] = record.getMessage()
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Set up the root logger (replacing any handlers) for ``fmt`` 'text' or 'json'."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
