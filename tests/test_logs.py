"""The request line's short way (logs.log_info) and the formatter's (LineFormatter)
write the lines structlog's full way writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from hypothesis import example, given
from hypothesis import strategies as st

from raxx_queue import logs
from raxx_queue.logs import build_formatter, configure_logging, log_info
from raxx_queue.settings import LogFormat, Settings
from tests.support import values
from tests.support.logs import CapturedLogs

LOGGER = "tests.request_line"


def without_timestamp(entry: dict[str, Any]) -> dict[str, Any]:
    assert entry.pop("timestamp").endswith("Z")
    return entry


@pytest.fixture
def json_logging(captured_logs: CapturedLogs) -> Iterator[CapturedLogs]:
    configure_logging(
        Settings(
            log_format=LogFormat.JSON,
            log_level="INFO",
            stripe_webhook_secret=values.WEBHOOK_SECRET,
        )
    )
    structlog.contextvars.clear_contextvars()
    yield captured_logs
    structlog.contextvars.clear_contextvars()  # the context bound here stays here


def test_log_info_writes_the_line_structlog_writes(json_logging: CapturedLogs) -> None:
    structlog.contextvars.bind_contextvars(request_id="req-1", caller="raptor")
    fields: dict[str, Any] = {
        "method": "POST",
        "status": 200,
        "duration_ms": 1.25,
        "caller": None,  # given: wins over the context's
        "note": f"paid by someone@example.com with {values.WEBHOOK_SECRET}",
        "email": "someone@example.com",
        "when": datetime(2026, 12, 4, tzinfo=UTC),
    }
    structlog.get_logger(LOGGER).info("request", **fields)
    log_info(logging.getLogger(LOGGER), "request", **fields)

    full, short = (without_timestamp(entry) for entry in json_logging.entries)
    assert short == full
    assert list(short) == list(full)  # the same keys in the same order
    assert short["request_id"] == "req-1"
    assert short["caller"] is None
    assert short["logger"] == LOGGER
    assert short["level"] == "info"
    json_logging.assert_free_of(["someone@example.com", values.WEBHOOK_SECRET])


def test_log_info_does_nothing_for_a_line_the_level_drops(
    json_logging: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def spy(_: Any, __: str, event_dict: Any) -> Any:
        ran.append(event_dict["event"])
        return event_dict

    monkeypatch.setattr(logs, "SHARED_PROCESSORS", [spy])
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.WARNING)
    try:
        log_info(logger, "dropped")
    finally:
        logger.setLevel(logging.NOTSET)
    log_info(logger, "kept")

    assert ran == ["kept"]
    assert [entry["event"] for entry in json_logging.entries] == ["kept"]


def test_a_line_with_an_exception_takes_the_full_way(json_logging: CapturedLogs) -> None:
    try:
        raise ValueError(f"bad key {values.WEBHOOK_SECRET}")
    except ValueError:
        structlog.get_logger(LOGGER).exception("failed")

    (entry,) = json_logging.entries
    assert "ValueError: bad key [redacted]" in entry["exception"]
    assert "exc_info" not in entry
    json_logging.assert_free_of([values.WEBHOOK_SECRET])


# what a line's fields hold: JSON's values, and what only the fallbacks render
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.datetimes(timezones=st.just(UTC))
    | st.just(object)
)
field_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=12), field_values, max_size=6))
@example({"exception": f"ValueError: bad key {values.WEBHOOK_SECRET}"})  # the full way's
@example({"exc_info": False, "status": 200})
def test_the_short_way_renders_what_the_full_way_renders(fields: dict[str, Any]) -> None:
    event_dict = {"event": "line", **fields, "level": "info", "logger": LOGGER}
    record = logging.LogRecord(LOGGER, logging.INFO, "(unknown file)", 0, event_dict, (), None)
    record.__dict__.update(_logger=logging.getLogger(LOGGER), _name="info")
    formatter = build_formatter(LogFormat.JSON)

    short = formatter.format(record)
    full = structlog.stdlib.ProcessorFormatter.format(formatter, record)
    assert short == full
    assert record.msg is event_dict  # left as it was
    assert "_record" not in event_dict
