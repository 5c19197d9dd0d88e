"""structlog set-up: JSON or console lines, request context, redaction."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from raxx_queue.redaction import redactor
from raxx_queue.settings import LogFormat, Settings


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    redacted: MutableMapping[str, Any] = redactor.value(dict(event_dict))
    return redacted


def _json_line(event_dict: Any, **kwargs: Any) -> str:
    """orjson, several times faster than json on every line; unknown types by repr."""
    try:
        return orjson.dumps(event_dict, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # what orjson cannot hold (an integer over 64 bits)
        return json.dumps(event_dict, **kwargs)  # structlog's own fallback for the rest


def _redact_exception(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The rendered traceback, which exists only once the formatter has run."""
    if isinstance(exception := event_dict.get("exception"), str):
        event_dict["exception"] = redactor.text(exception)
    return event_dict


# Redaction runs here, before a record reaches any handler (Sentry's breadcrumbs read
# records too), once per line: the formatter redacts only what it renders itself.
SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _redact,
]


class LineFormatter(structlog.stdlib.ProcessorFormatter):
    """structlog's formatter, with a short way for a structlog line without an exception
    in JSON: its event dict handed straight to the JSON renderer. The full way's
    processors (copy the dict, add and remove their own keys, format an exception there
    is none of) would hand the renderer the same dict, so the line is the same. Foreign
    records, exceptions and console lines take the full way."""

    def __init__(self, *, json_renderer: structlog.types.Processor | None, **options: Any) -> None:
        super().__init__(**options)
        self._json_renderer = json_renderer

    def format(self, record: logging.LogRecord) -> str:
        event_dict = record.msg
        if (
            self._json_renderer is not None
            and isinstance(event_dict, dict)
            and "_logger" in record.__dict__  # made by structlog (wrap_for_formatter, log_info)
            and "exc_info" not in event_dict
            and "exception" not in event_dict
        ):
            line: str = self._json_renderer(None, "info", event_dict)  # type: ignore[assignment]
            return line
        return super().format(record)


def build_formatter(log_format: LogFormat) -> LineFormatter:
    renderer: structlog.types.Processor
    json_renderer: structlog.types.Processor | None = None
    if log_format is LogFormat.JSON:
        renderer = json_renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    return LineFormatter(
        json_renderer=json_renderer,
        foreign_pre_chain=SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_exception,
            renderer,
        ],
    )


def log_info(logger: logging.Logger, event: str, **fields: Any) -> None:
    """The line `structlog.get_logger(logger.name).info(event, **fields)` writes, to the
    same handlers, without the bound logger's layers: SHARED_PROCESSORS over the event
    dict, then the record that wrap_for_formatter makes of it. For the line written on
    every request, where those layers cost about a quarter of it (docs/performance.md,
    fifteenth look); and nothing is done for a line the level drops."""
    if not logger.isEnabledFor(logging.INFO):
        return
    event_dict: MutableMapping[str, Any] = {**fields, "event": event}  # structlog's order
    for processor in SHARED_PROCESSORS:
        event_dict = processor(logger, "info", event_dict)  # type: ignore[assignment]
    record = logger.makeRecord(
        logger.name, logging.INFO, "(unknown file)", 0, event_dict, (), None, "(unknown function)"
    )
    record.__dict__.update(_logger=logger, _name="info")
    logger.handle(record)


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging through one redacting formatter on stderr."""
    redactor.register(_secrets_of(settings))
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # A line is its event dict, rendered: the stdlib record's source location (found by
    # walking up the stack on every line), process and thread ids are never read. The
    # logging HOWTO's "Optimization" switches turn their collection off.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(build_formatter(settings.log_format))
    handler.set_name("raxx_queue")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "raxx_queue"]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # request lines are logged by our middleware, with the request id and caller
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs each outbound request at INFO (one line per mirror push); the
    # callers log the outcomes that matter. LOG_LEVEL=DEBUG still shows them.
    quiet = logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING
    logging.getLogger("httpx").setLevel(quiet)


def _secrets_of(settings: Settings) -> list[str | None]:
    secrets = [
        settings.database_url,
        settings.stripe_restricted_key,
        settings.stripe_secret_key,
        *settings.queue_service_token_raptor,
        *settings.queue_service_token_console,
        *settings.metrics_token,
        settings.raptor_mirror_token,
        settings.raptor_mirror_signing_key,
        settings.billing_audit_hmac_key,
        settings.sentry_dsn,
        *settings.stripe_webhook_secret,
        *settings.stripe_thin_webhook_secret,
        *settings.raptor_mirror_signing_secret,
    ]
    return [s.get_secret_value() if s is not None else None for s in secrets]
