"""Where ``cpvae demo`` and ``cpvae run`` execute the runs of a plan: in this process, one at a time
(``workers=1``), or side by side in worker processes that each import the code (and TensorFlow) once.

Two workers on two cores: in one process the demo kept 1.26 cores busy on average, because most of
its steps (UMAP, copairs, pandas, the figures) run on one core while only training uses both. Each run
is still a whole Dagster run on the instance (the UI shows it); the events of a worker's run come back
to this process through a queue, as small records, for the progress view and the log file.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from cpvae_assets.orchestration.run_logs import RUN_LOGGER, forwardable

# most workers by default: each holds TensorFlow and a dataset in memory (2-3 GB at the demo's sizes)
MAX_DEFAULT_WORKERS = 2


def default_workers() -> int:
    from cpvae_assets.models import process_cores

    return max(1, min(MAX_DEFAULT_WORKERS, process_cores()))


# ------------------------------------------------------------------ in a worker process
_queue: Any = None
_label = ""


class _Forward(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            _queue.put(forwardable(record, _label))
        except Exception:  # a record that cannot be sent must not fail the run
            self.handleError(record)


def _start_worker(queue: Any, cores: int) -> None:
    """Forward this worker's records to ``queue``; use ``cores`` threads (TensorFlow, BLAS), the worker's
    share of the machine: the threads of two workers that each took every core wait on one another
    (each step 1.7x slower, measured in ``cpvae demo`` on 2 cores)."""
    global _queue
    _queue = queue
    from cpvae_assets.models import use_cores

    use_cores(cores)
    handler = _Forward(logging.DEBUG)
    for name in (RUN_LOGGER, "py.warnings"):  # a library's Python warnings: to the log file, not the screen
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False
    logging.captureWarnings(True)


def launch(job: str, partition: Any, ops: dict, label: str, loggers: dict,
           tags: dict[str, str]) -> tuple[bool, str]:
    """Execute one run (``partition``: a dataset, a ``MultiPartitionKey`` or None) on the instance of
    ``$DAGSTER_HOME``; returns (success, run id)."""
    global _label
    _label = label
    import dagster as dg

    from cpvae_assets.definitions import defs

    result = defs.resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.get(), partition_key=partition, raise_on_error=False,
        run_config={"ops": ops, "loggers": loggers}, tags=tags)
    return result.success, result.run_id


# ------------------------------------------------------------------ in the launching process
class Launcher:
    """``submit(...)`` starts a run and returns its future of (success, run id). With one worker the run
    executes in this process before ``submit`` returns; with more, in a pool of spawned processes
    (never forked: this process has threads), whose records go to ``handlers`` here."""

    def __init__(self, workers: int, handlers: Sequence[logging.Handler]):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.handlers = list(handlers)
        self.pool: ProcessPoolExecutor | None = None
        self.listener: logging.handlers.QueueListener | None = None

    def __enter__(self) -> Launcher:
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            self.listener = logging.handlers.QueueListener(queue, *self.handlers)
            self.listener.start()
            from cpvae_assets.models import process_cores

            share = max(1, process_cores() // self.workers)
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                            initargs=(queue, share))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.listener is not None:
            self.listener.stop()  # after every worker ended: each record is handled before the summary

    def submit(self, job: str, partition: Any, ops: dict, label: str, loggers: dict, tags: dict[str, str]) -> Future:
        if self.pool is not None:
            return self.pool.submit(launch, job, partition, ops, label, loggers, tags)
        future: Future = Future()
        try:
            future.set_result(launch(job, partition, ops, label, loggers, tags))
        except Exception as exc:  # noqa: BLE001  (reported as a failed run, as a worker's would be)
            future.set_exception(exc)
        return future
