"""A Dagster logger that hands every event of a run to a Python logger, so a process that launches
runs in itself (``cpvae demo``) can show progress and keep the full log in a file while the events
still go to the instance (and the UI)."""

from __future__ import annotations

import logging

import dagster as dg

# the Python logger cpvae's own runs log to, unless the run config names another
RUN_LOGGER = "cpvae.runs"


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
