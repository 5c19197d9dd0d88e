"""Captures every log line the service writes, rendered as in production (JSON)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson

from raxx_queue.logs import build_formatter
from raxx_queue.settings import LogFormat


class CapturedLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(build_formatter(LogFormat.JSON))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Every line, parsed: each must be one JSON object."""
        return [orjson.loads(line) for line in self.lines]

    def logged(self, **fields: Any) -> bool:
        """Whether some line carries all these fields with these values."""
        return any(all(e.get(k) == v for k, v in fields.items()) for e in self.entries)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def assert_free_of(self, values: Iterable[str]) -> None:
        leaked = [value for value in values if value and value in self.text]
        assert not leaked, f"{len(leaked)} secret or PII value(s) found in captured logs"
