"""Every log line the suite makes the service write, kept for one check at the end.

In-process apps log through the root logger: a handler installed for the whole
session renders each record as production does (the redacting JSON formatter).
Service processes write to stderr: `tee_stderr` copies their lines here (and on to
the test's own stderr). `leaks` then looks for any secret, database URL, e-mail
address or customer name; it reports where, never the value.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import quote, quote_plus

from raxx_queue.logs import build_formatter
from raxx_queue.settings import LogFormat

# Shapes that must never reach a log line, whatever their value.
PATTERNS = {
    "e-mail address": re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "postgres URL": re.compile(r"(?i)postgres(?:ql)?://"),
    "Stripe key": re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]"),
    "webhook secret": re.compile(r"\bwhsec_[A-Za-z0-9]"),
}


@dataclass(frozen=True)
class Leak:
    what: str
    source: str
    line_number: int
    # the line's logger and field names, to find the culprit without repeating the value
    context: str = ""

    def __str__(self) -> str:
        return f"{self.what} in line {self.line_number} ({self.source}; {self.context})"


def _context(line: str, where: int) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return f"not JSON, at column {where}"
    if not isinstance(record, dict):
        return "not a JSON object"
    fields = ",".join(k for k in record if k not in ("event", "logger", "level", "timestamp"))
    return f"logger={record.get('logger')} fields={fields} column={where}"


class _SessionHandler(logging.Handler):
    def __init__(self, logs: SessionLogs) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(build_formatter(LogFormat.JSON))
        self._logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._logs.write("in-process", self.format(record))
        except Exception:  # a log handler must never fail the code that logs
            self.handleError(record)


class SessionLogs:
    """Log lines of the whole session, in a file: (source, line) per row."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._file: IO[str] | None = None
        self._keep = False
        self._handler = _SessionHandler(self)
        self.watched: dict[str, set[str]] = {}

    @property
    def active(self) -> bool:
        return self._file is not None

    def start(self) -> None:
        # QUEUE_TEST_LOG_DIR keeps the lines after the session, to find a leak's source
        kept = os.environ.get("QUEUE_TEST_LOG_DIR")
        self._keep = bool(kept)
        self._dir = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="queue-test-logs-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        self._file = (self._dir / "session.log").open("w", encoding="utf-8")
        logging.getLogger().addHandler(self._handler)

    def stop(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        if self._dir is not None and not self._keep:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def watch(self, what: str, *values: str) -> None:
        """Values the final check must not find (database URLs created on the way)."""
        self.watched.setdefault(what, set()).update(v for v in values if v)

    def write(self, source: str, line: str) -> None:
        text = line.rstrip("\n").replace("\n", "\\n")
        with self._lock:
            if self._file is not None:
                self._file.write(f"{source}\t{text}\n")
                self._file.flush()

    def lines(self) -> Iterator[tuple[str, str]]:
        if self._dir is None:
            return
        with self._lock, (self._dir / "session.log").open(encoding="utf-8") as file:
            rows = file.readlines()
        for row in rows:
            source, _, text = row.rstrip("\n").partition("\t")
            yield source, text

    def tee_stderr(self, stream: IO[bytes], source: str) -> threading.Thread:
        """Copy a child's stderr here and to our own stderr until the child closes it."""

        def copy() -> None:
            for raw in iter(stream.readline, b""):
                os.write(2, raw)
                self.write(source, raw.decode("utf-8", "replace"))
            stream.close()

        thread = threading.Thread(target=copy, name=f"stderr-{source}", daemon=True)
        thread.start()
        return thread


def encodings(value: str) -> set[str]:
    """A value as it could appear in a line: raw, URL-encoded, JSON-escaped."""
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        value.encode("unicode_escape").decode(),
    }


def leaks(lines: Iterable[tuple[str, str]], needles: dict[str, Iterable[str]]) -> Iterator[Leak]:
    """Where a named needle or a forbidden shape occurs; never the value itself."""
    forms = [
        (what, form) for what, values in needles.items() for v in values for form in encodings(v)
    ]
    for number, (source, line) in enumerate(lines, start=1):
        for what, form in forms:
            if (where := line.find(form)) >= 0:
                yield Leak(what, source, number, _context(line, where))
        for what, pattern in PATTERNS.items():
            if match := pattern.search(line):
                yield Leak(what, source, number, _context(line, match.start()))


SESSION_LOGS = SessionLogs()
