"""What ``cpvae demo`` and ``cpvae run`` show while runs go on: a live progress view (runs and steps
done and left, the step running, elapsed time and an estimate of what is left), one line per finished
dataset, and at the end the warnings that matter, grouped. Every event goes to a log file as well."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cpvae_assets.orchestration.run_logs import RUN_LABEL, RUN_LOGGER, dagster_event

STEP_DONE = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def warning_pattern(message: str, datasets: list[str]) -> str:
    """A warning with its dataset, numbers and quoted names blanked: one key for one kind of warning."""
    for name in sorted(datasets, key=len, reverse=True):
        message = message.replace(name, "<dataset>")
    return _NUMBER.sub("N", _QUOTED.sub("'...'", message))


@dataclass
class Warned:
    example: str
    where: list[str] = field(default_factory=list)


class RunProgress(logging.Handler):
    """Receives the events of every run (Python logger ``cpvae.runs``) and drives the display."""

    def __init__(self, console: Console, total_steps: int, total_runs: int, log_file: Path, live: bool):
        super().__init__(logging.DEBUG)
        self.console = console
        self.live = live
        self.started = time.monotonic()
        self.running: dict[str, str] = {}  # label of each run in progress -> its step running
        self.steps_done = 0
        self.total_steps = total_steps
        self.warnings: dict[str, Warned] = {}
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                                 TextColumn("runs"), TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
                                 console=console, transient=True, disable=not live)
        self.task = self.progress.add_task("starting", total=total_runs, left="")
        self.file = logging.FileHandler(log_file, encoding="utf-8")
        self.file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.datasets: list[str] = []

    def __enter__(self) -> RunProgress:
        logger = logging.getLogger(RUN_LOGGER)
        logger.addHandler(self)
        logger.addHandler(self.file)
        logger.propagate = False
        logging.captureWarnings(True)  # Python warnings of the libraries: into the file, not the screen
        warnings_logger = logging.getLogger("py.warnings")
        warnings_logger.addHandler(self.file)
        warnings_logger.propagate = False
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
        logging.getLogger(RUN_LOGGER).removeHandler(self)
        logging.getLogger(RUN_LOGGER).removeHandler(self.file)
        logging.getLogger("py.warnings").removeHandler(self.file)
        logging.captureWarnings(False)
        self.file.close()

    # ---------------------------------------------------------------- events
    def start_run(self, label: str) -> None:
        self.running[label] = ""
        self._describe()

    def end_run(self, label: str) -> None:
        self.running.pop(label, None)
        self.progress.advance(self.task)
        self._describe()

    def advance_skipped(self) -> None:
        self.progress.advance(self.task)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "py.warnings":  # a library's Python warning, forwarded by a worker: the log file only
            return
        # a worker's record names its run; in this process one run goes at a time
        label = getattr(record, RUN_LABEL, None) or next(iter(self.running), "")
        event = dagster_event(record)
        meta = getattr(record, "dagster_meta", {}) or {}
        step = meta.get("step_key")
        if event is not None:
            kind = event.event_type_value
            if kind == "STEP_START" and label in self.running:
                self.running[label] = step or ""
            elif kind in STEP_DONE:
                self.steps_done += 1
            self._describe()
            return
        if record.levelno >= logging.WARNING:
            message = " ".join(str(meta.get("orig_message") or record.getMessage()).split())
            key = warning_pattern(message, self.datasets)
            self.warnings.setdefault(key, Warned(message)).where.append(label)

    def _describe(self) -> None:
        elapsed = time.monotonic() - self.started
        done = self.steps_done / self.total_steps if self.total_steps else 0.0
        left = f"~{duration(elapsed * (1 - done) / done)} left" if done > 0.02 else ""
        text = " | ".join(f"{label} · {step}" if step else label for label, step in self.running.items())
        self.progress.update(self.task, description=text[:80].ljust(80), left=left)

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def grouped_warnings(warned: dict[str, Warned], most: int = 8, summarised: tuple[str, ...] = ()) -> list[str]:
    """One line per kind of warning, the most frequent first, with where it came from; warnings that
    start with one of ``summarised`` are left out (the caller reports them in a line of its own)."""
    rows = sorted((w for w in warned.values() if not w.example.startswith(summarised)),
                  key=lambda w: (-len(w.where), w.example))
    lines = []
    for w in rows[:most]:
        where = sorted(dict.fromkeys(w.where))
        places = ", ".join(where[:2]) + (f" and {len(where) - 2} more" if len(where) > 2 else "")
        example = w.example if len(w.example) <= 80 else w.example[:77] + "..."
        lines.append(f"{example}  [{len(w.where)}x: {places}]")
    if len(rows) > most:
        lines.append(f"... and {len(rows) - most} other kinds of warning (see the log)")
    return lines
