"""The records a worker process sends back, and the progress view that receives them from several runs."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
from rich.console import Console

from cpvae_assets.cli.progress import RunProgress
from cpvae_assets.cli.workers import Launcher
from cpvae_assets.orchestration.run_logs import RUN_LABEL, EventType, dagster_event, forwardable


class _HeavyEvent:
    """Stands in for a DagsterEvent: only its type may cross to the other process."""

    event_type_value = "STEP_START"

    def __reduce__(self):
        raise TypeError("not picklable")


def _record(level: int, message: str, step: str | None = None, event: object | None = None) -> logging.LogRecord:
    return logging.makeLogRecord({"name": "cpvae.runs", "levelno": level, "levelname": logging.getLevelName(level),
                                  "msg": "%s", "args": (message,),
                                  "dagster_meta": {"step_key": step, "orig_message": message, "dagster_event": event}})


def test_a_forwarded_record_pickles_and_keeps_text_step_event_and_run() -> None:
    sent = pickle.loads(pickle.dumps(forwardable(_record(logging.INFO, "epoch 3", "trained_models", _HeavyEvent()), "d beta")))
    assert sent.getMessage() == "epoch 3" and sent.levelno == logging.INFO
    assert getattr(sent, RUN_LABEL) == "d beta"
    assert sent.dagster_meta["step_key"] == "trained_models"
    assert dagster_event(sent) == EventType("STEP_START")


def test_progress_follows_each_run_and_attributes_warnings_to_their_run(tmp_path: Path) -> None:
    progress = RunProgress(Console(file=open(tmp_path / "screen", "w")), total_steps=4, total_runs=2,
                           log_file=tmp_path / "log", live=False)
    with progress:
        progress.start_run("d beta")
        progress.start_run("d pca")
        for label, step in (("d beta", "trained_models"), ("d pca", "generation_qc")):
            progress.handle(forwardable(_record(logging.DEBUG, "start", step, EventType("STEP_START")), label))
        assert progress.running == {"d beta": "trained_models", "d pca": "generation_qc"}
        progress.handle(forwardable(_record(logging.WARNING, "too few profiles: 12"), "d pca"))
        progress.handle(forwardable(_record(logging.WARNING, "too few profiles: 30"), "d beta"))
        progress.handle(forwardable(_record(logging.DEBUG, "done", "generation_qc", EventType("STEP_SUCCESS")), "d pca"))
        warned = logging.makeLogRecord({"name": "py.warnings", "levelno": logging.WARNING, "msg": "DeprecationWarning"})
        progress.handle(warned)  # a library's warning: the log file only, not a warning that matters
        progress.end_run("d pca")
        assert progress.running == {"d beta": "trained_models"} and progress.steps_done == 1
    assert [w.where for w in progress.warnings.values()] == [["d pca", "d beta"]]


def test_a_launcher_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        Launcher(0, [])
