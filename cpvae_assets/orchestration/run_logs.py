"""A Dagster logger that hands every event of a run to a Python logger, so a process that launches
runs in itself (``cpvae demo``) can show progress and keep the full log in a file while the events
still go to the instance (and the UI)."""

from __future__ import annotations

import logging
from typing import NamedTuple

import dagster as dg

# the Python logger cpvae's own runs log to, unless the run config names another
RUN_LOGGER = "cpvae.runs"
# the attribute of a record forwarded from a worker process that names the planned run it came from
RUN_LABEL = "cpvae_run"


class EventType(NamedTuple):
    """What a forwarded record keeps of its ``DagsterEvent``: its type (a full event is heavy to send to another process)."""

    event_type_value: str


@dg.logger(config_schema={"name": dg.Field(str, default_value=RUN_LOGGER, description="Python logger name")},
           description="Every event of the run to a Python logger (its handlers decide what is shown).")
def python_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger(init_context.logger_config["name"])
    logger.setLevel(logging.DEBUG)
    return logger


def dagster_event(record: logging.LogRecord) -> object | None:
    """The ``DagsterEvent`` a log record carries (step start, success, failure...), or None."""
    meta = getattr(record, "dagster_meta", None) or {}
    return meta.get("dagster_event")


def step_key(record: logging.LogRecord) -> str | None:
    meta = getattr(record, "dagster_meta", None) or {}
    return meta.get("step_key")


def forwardable(record: logging.LogRecord, label: str) -> logging.LogRecord:
    """A small copy of ``record`` that another process can receive: its text, level, time, step and event
    type, and ``label``, the planned run it belongs to."""
    meta = getattr(record, "dagster_meta", None) or {}
    event = meta.get("dagster_event")
    return logging.makeLogRecord({
        "name": record.name, "levelno": record.levelno, "levelname": record.levelname, "msg": record.getMessage(),
        "created": record.created, "msecs": record.msecs, "relativeCreated": record.relativeCreated,
        RUN_LABEL: label,
        "dagster_meta": {"step_key": meta.get("step_key"),
                         "orig_message": None if meta.get("orig_message") is None else str(meta["orig_message"]),
                         "dagster_event": EventType(event.event_type_value) if event is not None else None}})
