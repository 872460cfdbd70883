#!/usr/bin/env python
"""Training throughput: the project's stacked loop (``train_stack``) versus a plain Keras ``model.fit``.

Prints (it is not a test) seconds per epoch and profiles per second, on this machine and in one
process (but the configurations of other TensorFlow threads, each in a child process), for two shapes of the paper (Cell Painting level 5 and L1000) on synthetic data:

  (a) keras   a subclassed ``keras.Model`` with a sampling layer and a custom ``train_step`` (the
              paper's way), trained with ``model.fit`` -- the reference, defined in this file; run
              with this project's TensorFlow threads (``cpvae_assets.models``: one thread per op)
      kerastf the same, in a child process with TensorFlow's default threads (each op on all
              cores), as plain Keras runs; the faster of the two is the reference;
  (b) K=1     ``cpvae_assets.models.trainer.train_stack`` with one member;
      k1core  the same, in a child process with one TensorFlow thread: one model on one core, whose speed
              times the cores is a stack's speed with perfect scaling (the ``scaling`` table);
  (c) K=2/4/6 ``train_stack`` with real + column-shuffled pairs, as ``train_model`` builds them
              (n_seeds = 1, 2 (the default), 3).

The first epoch (tracing, compiling, building the data tensors) is never timed: every
configuration runs 1 warm-up epoch plus N timed ones, and the time of epoch i is the gap between
the end-of-epoch stamps of epochs i-1 and i (both loops include their validation pass in it).
Throughput counts models x training rows x timed epochs / timed seconds.

Usage:  .venv/bin/python bench/train_throughput.py [--quick] [--epochs N] [--shapes cp5,l1000]
                                                   [--configs keras,kerastf,k1,k1core,k2,k4,k6] [--no-append]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cpvae_assets.models import DEFAULTED_ENV, process_cores, tensorflow_threads  # noqa: E402  (sets TensorFlow's threads before it starts)
from cpvae_assets.models.compiled import use_chains  # noqa: E402
from cpvae_assets.models.precision import kernel_record  # noqa: E402
from cpvae_assets.models.trainer import StackMember, train_stack  # noqa: E402
from cpvae_assets.models.training import column_shuffled  # noqa: E402

tf.get_logger().setLevel("ERROR")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from keras_reference import EpochStamps, PaperVAE  # noqa: E402
from throughput_report import (CHILD_RUNS, CONFIGS, DEFAULT_CONFIGS, SHAPES, Row, Shape, _fmt,  # noqa: E402
                               paired, references, scaling, table, training_flops)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results.md"
VALIDATION_FRACTION = 0.10
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- measuring


def _system_busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used (busy jiffies of /proc/stat, steal included)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        return (user + nice + system + irq + softirq + steal) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def _vm_hwm_mb() -> float | None:
    return _common.proc_status_mb("VmHWM")


def _vm_rss_mb() -> float | None:
    return _common.proc_status_mb("VmRSS")


@dataclass
class Clock:
    """End-of-epoch stamps of wall time, process CPU time and machine-wide busy CPU time."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    busy: list[float | None] = field(default_factory=list)

    def stamp(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.busy.append(_system_busy_seconds())


def _op_determinism(enabled: bool) -> None:
    """train_stack switches op determinism on for the whole process; the reference runs without it."""
    from tensorflow.python.framework import config as tf_config  # no public switch-off in TF 2.20

    (tf_config.enable_op_determinism if enabled else tf_config.disable_op_determinism)()


def _op_determinism_enabled() -> bool:
    try:
        from tensorflow.python.framework import config as tf_config

        return bool(tf_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return False


def run_keras(shape: Shape, train: np.ndarray, val: np.ndarray, epochs: int, seed: int, deterministic: bool) -> tuple[Clock, str, float]:
    try:
        _op_determinism(deterministic)
    except (ImportError, AttributeError):
        pass
    keras.utils.set_random_seed(seed)
    model = PaperVAE(shape.features, shape.hidden_dim, shape.latent_dim, shape.beta, batch_norm=True, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(shape.learning_rate))
    clock = Clock()
    clock.stamp()
    history = model.fit(train, batch_size=shape.batch_size, epochs=epochs, validation_data=(val,), shuffle=True,
                        verbose=0, callbacks=[EpochStamps(clock)])
    return clock, f"jit_compile={model.jit_compile}", float(history.history["val_loss"][-1])


def stack_members(train: np.ndarray, val: np.ndarray, k: int, beta: float, seed: int) -> list[StackMember]:
    """As ``train_model`` builds them (since commit fed4423): K=1 one real model, else K/2 real seeds
    on the data and K/2 shuffled seeds sharing one column-shuffled copy (the stack holds each distinct
    array once, so K=2/4/6 all hold 2 datasets)."""
    if k == 1:
        return [StackMember(f"real:{seed}", beta, 0.0, train, val, seed)]
    n_seeds = k // 2
    members = [StackMember(f"real:{seed + i}", beta, 0.0, train, val, seed + i) for i in range(n_seeds)]
    shuffled_train, shuffled_val = column_shuffled(train, seed + 1000), column_shuffled(val, seed + 2000)
    members += [StackMember(f"shuffled:{seed + i}", beta, 0.0, shuffled_train, shuffled_val, seed + i)
                for i in range(n_seeds)]
    return members


def run_stack(shape: Shape, train: np.ndarray, val: np.ndarray, k: int, epochs: int, seed: int,
              matmul_dtype: str = "float32") -> tuple[Clock, str, float]:
    members = stack_members(train, val, k, shape.beta, seed)
    clock = Clock()
    clock.stamp()
    result = train_stack(members, shape.latent_dim, shape.hidden_dim, shape.learning_rate, shape.batch_size,
                         encoder_batch_norm=True, epochs=epochs, patience=epochs + 1,
                         on_epoch=lambda epoch, rows: clock.stamp(), matmul_dtype=matmul_dtype)
    last = [row["val_loss"] for row in result.history if row["epoch"] == result.epochs_run]
    note = f"stopped after {result.epochs_run} epochs" if result.epochs_run != epochs else "; ".join(result.notes)
    note = ("one chain per model " if use_chains(k, len(train), epochs) else "batched " if k > 1 else "") + note
    return clock, ("matmuls in bfloat16 (opt-in) " + note).strip() if matmul_dtype != "float32" else note, float(np.mean(last))


def measure_in_child(shape: Shape, config: str, rows: int, timed_epochs: int, seed: int, keras_deterministic: bool) -> Row:
    """TensorFlow fixes its thread pools when its runtime starts: another setting needs another process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        measured, threads = CHILD_RUNS[config]
        cmd = [sys.executable, __file__, "--child",
               f"{shape.key}:{measured}:{rows}:{timed_epochs}:{seed}:{int(keras_deterministic)}:{out}"]
        # the child's thread variables are set here, not defaulted by the package (configure_threads)
        env = {name: value for name, value in os.environ.items() if name != DEFAULTED_ENV} | threads
        subprocess.run(cmd, check=True, env=env)
        fields = json.loads(out.read_text())
    return Row(**{**fields, "shape": shape, "config": config})


def _child(spec: str) -> int:
    key, config, rows, timed, seed, deterministic, out = spec.split(":", 6)
    shape = SHAPES[key]
    train, val = synthetic(shape, int(rows), int(seed))
    row = measure(shape, config, train, val, int(timed), int(seed), bool(int(deterministic)))
    Path(out).write_text(json.dumps({f.name: getattr(row, f.name) for f in dataclasses.fields(row) if f.name != "shape"}))
    return 0


def measure(shape: Shape, config: str, train: np.ndarray, val: np.ndarray, timed_epochs: int, seed: int,
            keras_deterministic: bool) -> Row:
    keras.backend.clear_session()
    gc.collect()
    rss_before = _vm_rss_mb()
    reset = _common.reset_peak_rss()
    k = CONFIGS[config]
    epochs = 1 + timed_epochs
    started = time.perf_counter()
    if k is None:
        clock, note, val_loss = run_keras(shape, train, val, epochs, seed, keras_deterministic)
        k_models = 1
    else:
        clock, note, val_loss = run_stack(shape, train, val, k, epochs, seed,
                                          "bfloat16" if config.endswith("bf16") else "float32")
        k_models = k
    total = time.perf_counter() - started
    determinism = _op_determinism_enabled()
    if len(clock.wall) < 3:
        raise RuntimeError(f"{shape.key}/{config}: only {len(clock.wall) - 1} epochs ran, nothing to time")
    # stamp 0 is the start, stamp i the end of epoch i; epoch 1 is the warm-up
    wall = clock.wall
    epoch_seconds = [wall[i] - wall[i - 1] for i in range(2, len(wall))]
    timed = wall[-1] - wall[1]
    cpu_cores = (clock.cpu[-1] - clock.cpu[1]) / timed
    other = None
    if clock.busy[-1] is not None and clock.busy[1] is not None:
        other = max(0.0, (clock.busy[-1] - clock.busy[1]) / timed - cpu_cores)
    return Row(shape, config, k_models, len(train), epoch_seconds, wall[1] - wall[0], total, cpu_cores, other,
               _common.maxrss_mb(), rss_before, _vm_hwm_mb() if reset else None, determinism, note, val_loss)


# ---------------------------------------------------------------- data and reporting


def synthetic(shape: Shape, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform [0, 1) float32 profiles; the last 10% of the rows are the validation set."""
    x = np.random.default_rng(seed).random((rows, shape.features), dtype=np.float32)
    n_val = max(1, round(VALIDATION_FRACTION * rows))
    return x[: rows - n_val], x[rows - n_val:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None,
                        help="timed epochs per configuration, after 1 warm-up epoch (default: 3 for cp5, 2 for l1000; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer rows (2,000 / 8,000) and 1 timed epoch")
    parser.add_argument("--shapes", default="cp5,l1000", help="comma-separated subset of: " + ",".join(SHAPES))
    parser.add_argument("--configs", default=DEFAULT_CONFIGS,
                        help=f"comma-separated, run in this order (repeats allowed), from: {','.join(CONFIGS)} (default {DEFAULT_CONFIGS})")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the configurations this many times per shape; each speed-up against its own round's Keras")
    parser.add_argument("--rows", type=int, default=None, help="override the row count of every shape")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keras-deterministic", action="store_true",
                        help="run the Keras reference with TF op determinism on, as train_stack runs (default: off)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"Markdown file to update (default {RESULTS})")
    parser.add_argument("--no-append", action="store_true", help="print only, do not write the results file")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one measurement in its own process, for measure_in_child
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child)

    shapes = [SHAPES[s.strip()] for s in args.shapes.split(",") if s.strip()]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    run = _common.Run(_common.command_line("train_throughput.py"))
    threads = tensorflow_threads()
    run.extra.append(f"tensorflow {tf.__version__}, keras {keras.__version__}, TF threads intra/inter "
                     f"{threads['intra_op']}/{threads['inter_op']} (" + "; ".join(
                         f"{c}: {v['TF_NUM_INTRAOP_THREADS']}/{v['TF_NUM_INTEROP_THREADS']}" for c, (_, v) in CHILD_RUNS.items())
                     + "; 0: TensorFlow's default, all cores)")
    kernels = kernel_record()
    run.extra.append(f"CPU vector instructions {kernels['vector_isa']}, native bfloat16 {kernels['native_bf16']}; TensorFlow's "
                     f"oneDNN ops {'on' if kernels['tensorflow_onednn'] else 'off'} (off: each matmul is Eigen's blocked "
                     f"contraction calling oneDNN's sgemm per block; TensorFlow decides by CPU unless TF_ENABLE_ONEDNN_OPTS is set)")
    print(run.header(finished=False), flush=True)
    peaks = [_common.matmul_peak_gflops()]
    print(f"numpy float32 matmul peak: {peaks[0]:.0f} GFLOP/s", flush=True)

    rows: list[Row] = []
    for shape in shapes:
        n = args.rows or (shape.quick_rows if args.quick else shape.rows)
        timed = args.epochs or (1 if args.quick else shape.timed_epochs)
        train, val = synthetic(shape, n, args.seed)
        print(f"\n{shape.label}: {len(train):,} train + {len(val):,} validation rows x {shape.features} features, "
              f"batch {shape.batch_size}, latent {shape.latent_dim}, hidden {shape.hidden_dim}, beta {shape.beta}, "
              f"lr {shape.learning_rate}, 1 warm-up + {timed} timed epochs, "
              f"{training_flops(shape) / 1e6:.2f} MFLOP per profile per training step", flush=True)
        for rnd, config in ((rnd, c) for rnd in range(1, args.rounds + 1) for c in configs):
            row = (measure_in_child(shape, config, n, timed, args.seed, args.keras_deterministic) if config in CHILD_RUNS
                   else measure(shape, config, train, val, timed, args.seed, args.keras_deterministic))
            row.round = rnd
            rows.append(row)
            print(f"  {rnd}:{config:>6}: {statistics.mean(row.epoch_seconds):7.2f} s/epoch "
                  f"({', '.join(f'{s:.2f}' for s in row.epoch_seconds)}), {row.profiles_per_second:10,.0f} model-profiles/s, "
                  f"warm-up {row.warmup_seconds:.1f} s, CPU {row.cpu_cores:.2f} cores, "
                  f"others {_fmt(row.other_cores, '.2f')} cores, "
                  f"config peak {_fmt(row.config_peak_mb, ',.0f')} MB, val loss {_fmt(row.val_loss, '.4f')} {row.note}", flush=True)
        del train, val
        gc.collect()
        peaks.append(_common.matmul_peak_gflops())
        print(f"numpy float32 matmul peak: {peaks[-1]:.0f} GFLOP/s", flush=True)

    peak = max(peaks)
    flops = ", ".join(f"{s.key} {training_flops(s) / 1e6:.2f}" for s in shapes)
    ref = references(rows)  # per shape and round
    report = table(rows, ref, peak)
    summary = "\n\n".join(filter(None, [paired(rows, ref), scaling(rows, ref, process_cores())]))
    print("\n" + summary, flush=True)
    footer = (f"Matmul peak: numpy float32 2048x2048x2048 product, best of 5, measured {len(peaks)} times in this run "
              f"({', '.join(f'{p:.0f}' for p in peaks)} GFLOP/s); the best, {peak:.0f} GFLOP/s, is the reference. "
              f"matmul GFLOP/s = model-profiles/s x training-step matmul MFLOP per profile ({flops}: forward, weight "
              f"gradients, input gradients but the first layer's; element-wise work, validation and batch-norm calibration "
              f"not counted, so the true fraction is a little higher). Epoch 1 (warm-up) excluded; model-profiles/s = K x "
              f"train rows x timed epochs / timed seconds; speed-up = that / the mean of the runs of the faster Keras "
              f"configuration at the same shape in the same round (keras: this project's threads; kerastf: TensorFlow's default threads); per CPU-s = model-profiles/s / CPU cores used; 'other procs' cores' = machine-wide busy CPU minus this "
              f"process during the timed epochs (> ~0.2: contended, numbers noisy). Scaling table: k1core is one model on one core (one TensorFlow thread, its own process); K independent models on C cores train about C times its speed at best (shared caches and memory make it less, rarely more), so 'perfect scaling vs Keras' is about the most a stack reaches on this machine unless one model's step gets cheaper, and a stack row's share of it measures how well its K models share the cores. val loss: mean over the K members after "
              f"the last epoch (bf16 rows: compare with the float32 row of the same K, same seeds and data).")
    body = run.header() + "\n\n" + summary + "\n\n" + report + "\n\n" + footer + "\n"
    _common.publish("throughput", "Training throughput: train_stack vs plain Keras model.fit (`train_throughput.py`)", body, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
