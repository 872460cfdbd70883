"""What ``train_throughput.py`` measures and how it reports it: the shapes, the configurations, one
row per measured configuration, and the Markdown tables (no TensorFlow here)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

@dataclass(frozen=True)
class Shape:
    key: str
    label: str
    rows: int
    features: int
    batch_size: int
    latent_dim: int
    hidden_dim: int
    beta: float
    learning_rate: float
    timed_epochs: int
    quick_rows: int


SHAPES = {
    "cp5": Shape("cp5", "Cell Painting level 5", 10_368, 588, 96, 10, 250, 0.3, 1e-3, 3, 2_000),
    "l1000": Shape("l1000", "L1000", 118_050, 978, 512, 65, 500, 40.0, 1e-3, 2, 8_000),
}
# config key -> number of stacked models (None: the Keras reference); "...bf16": matmul_dtype="bfloat16"
CONFIGS = {"keras": None, "kerastf": None, "k1": 1, "k1core": 1, "k2": 2, "k4": 4, "k6": 6, "k1bf16": 1, "k4bf16": 4}
DEFAULT_CONFIGS = "keras,kerastf,k1,k1core,k2,k4,k6,k1bf16,k4bf16,kerastf,keras"  # the references first and last (drift)
KERAS_CONFIGS = ("keras", "kerastf")
# configurations measured in a child process: another configuration with other TensorFlow threads (read once,
# when its runtime starts). kerastf: keras as plain Keras runs (0: TensorFlow decides, each op on all cores);
# k1core: k1 on one core, whose speed times the cores is a stack's speed with perfect scaling (``scaling``)
CHILD_RUNS = {"kerastf": ("keras", {"TF_NUM_INTEROP_THREADS": "0", "TF_NUM_INTRAOP_THREADS": "0"}),
              "k1core": ("k1", {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"})}
LABELS = {"keras": "(a) keras fit", "kerastf": "(a) keras fit, TF threads", "k1core": "(b) train_stack, one core"}


def training_flops(shape: Shape) -> float:
    """Matrix-multiply flops of one training step per profile: forward (encoder dense, z_mean and
    z_log_var, decoder dense, output) plus backward (weight gradients of every layer, input gradients
    of every layer but the first). Element-wise work, validation and calibration are not counted."""
    f, h, lat = shape.features, shape.hidden_dim, shape.latent_dim
    forward = f * h + 2 * h * lat + lat * h + h * f
    return 2.0 * (forward + forward + (forward - f * h))


@dataclass
class Row:
    shape: Shape
    config: str
    k: int
    train_rows: int
    epoch_seconds: list[float]  # timed epochs only
    warmup_seconds: float
    total_seconds: float
    cpu_cores: float  # this process, during the timed epochs
    other_cores: float | None  # every other process of the machine, during the timed epochs
    maxrss_mb: float
    rss_before_mb: float | None
    config_peak_mb: float | None
    op_determinism: bool
    note: str = ""
    val_loss: float | None = None  # mean over members of the last epoch's validation loss
    round: int = 1  # --rounds: which pass over the configurations

    @property
    def timed(self) -> float:
        return sum(self.epoch_seconds)

    @property
    def profiles_per_second(self) -> float:
        return self.k * self.train_rows * len(self.epoch_seconds) / self.timed

    @property
    def profiles_per_cpu_second(self) -> float:
        """Throughput per CPU-second this process got: less sensitive to other processes than wall time."""
        return self.profiles_per_second / self.cpu_cores


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _reference(rows: list[Row]) -> tuple[float, float] | None:
    """Profiles/s and profiles per CPU-s of the faster Keras configuration among ``rows`` (mean over its
    runs): the project's threads or TensorFlow's defaults, whichever suits plain Keras."""
    by_config = [[r for r in rows if r.config == c] for c in KERAS_CONFIGS]
    runs = [group for group in by_config if group]
    if not runs:
        return None
    best = max(runs, key=lambda group: statistics.mean(r.profiles_per_second for r in group))
    return (statistics.mean(r.profiles_per_second for r in best),
            statistics.mean(r.profiles_per_cpu_second for r in best))


def references(rows: list[Row]) -> dict[tuple[str, int], tuple[float, float]]:
    """Per shape and round, the Keras reference of that round (its first and last runs, so drift within
    the round shows); a round without Keras rows takes the reference of the whole run. A speed-up is
    taken against the reference of its own round: on a shared machine the speed drifts by tens of
    per cent over minutes, and a stack row compared with Keras measured minutes away shows the drift."""
    out = {}
    for key in {r.shape.key for r in rows}:
        of_shape = [r for r in rows if r.shape.key == key]
        whole = _reference(of_shape)
        for rnd in {r.round for r in of_shape}:
            ref = _reference([r for r in of_shape if r.round == rnd]) or whole
            if ref is not None:
                out[(key, rnd)] = ref
    return out


def paired(rows: list[Row], ref: dict[tuple[str, int], tuple[float, float]]) -> str:
    """Per shape and stack configuration, the speed-up in each round against that round's Keras, with the
    median and range over the rounds: the figure to quote, since each ratio is measured side by side."""
    lines = ["| shape | config | K | rounds | speed-up per round | median | min-max |", "|---|---|---|---|---|---|---|"]
    stack_configs = dict.fromkeys(r.config for r in rows if r.config not in KERAS_CONFIGS)
    for key in dict.fromkeys(r.shape.key for r in rows):
        for config in stack_configs:
            ratios = [r.profiles_per_second / ref[(key, r.round)][0] for r in rows
                      if r.shape.key == key and r.config == config and (key, r.round) in ref]
            if ratios:
                lines.append(f"| {key} | {config} | {CONFIGS[config]} | {len(ratios)} | "
                             f"{', '.join(f'{x:.2f}x' for x in ratios)} | {statistics.median(ratios):.2f}x | "
                             f"{min(ratios):.2f}-{max(ratios):.2f}x |")
    return "\n".join(lines)


def table(rows: list[Row], ref: dict[tuple[str, int], tuple[float, float]], peak_gflops: float) -> str:
    head = ("| shape | round | config | K | train rows | batch | timed epochs | s/epoch (mean) | s/epoch (min-max) "
            "| model-profiles/s | speed-up vs (a) | matmul GFLOP/s | % of matmul peak | per CPU-s | speed-up per CPU-s "
            "| warm-up epoch s | CPU cores used | other procs' cores | RSS before MB | config peak RSS MB | val loss "
            "| op determinism | note |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        label = LABELS.get(r.config, f"{'(b)' if r.k == 1 else '(c)'} train_stack")
        ref_speed, ref_cpu = ref.get((r.shape.key, r.round), (None, None))
        speed = f"{r.profiles_per_second / ref_speed:.2f}x" if ref_speed else "n/a"
        speed_cpu = f"{r.profiles_per_cpu_second / ref_cpu:.2f}x" if ref_cpu else "n/a"
        gflops = r.profiles_per_second * training_flops(r.shape) / 1e9
        lines.append(
            f"| {r.shape.key} | {r.round} | {label} | {r.k} | {r.train_rows:,} | {r.shape.batch_size} | {len(r.epoch_seconds)} "
            f"| {statistics.mean(r.epoch_seconds):.2f} | {min(r.epoch_seconds):.2f}-{max(r.epoch_seconds):.2f} "
            f"| {r.profiles_per_second:,.0f} | {speed} | {gflops:.0f} | {100 * gflops / peak_gflops:.0f}% "
            f"| {r.profiles_per_cpu_second:,.0f} | {speed_cpu} | {r.warmup_seconds:.1f} "
            f"| {r.cpu_cores:.2f} | {_fmt(r.other_cores, '.2f')} | {_fmt(r.rss_before_mb, ',.0f')} "
            f"| {_fmt(r.config_peak_mb, ',.0f')} | {_fmt(r.val_loss, '.4f')} "
            f"| {'on' if r.op_determinism else 'off'} | {r.note} |")
    return "\n".join(lines)


def scaling(rows: list[Row], ref: dict[tuple[str, int], tuple[float, float]], cores: int) -> str:
    """Per shape and round, perfect scaling of one model on one core (``k1core``): K independent models on
    ``cores`` cores train about ``cores`` times its speed at best (shared caches and memory make it less,
    rarely more), unless a model's own step gets cheaper. Each stack row's share of it tells a loop that
    scales badly from a step that costs too much. Keras is the round's reference (the run's, in a round
    without Keras rows: ``references``). ``cores`` counts logical CPUs: with two hardware threads per core,
    perfect scaling over them is more than the machine can give."""
    lines = ["| shape | round | one model on one core, model-profiles/s | cores | perfect scaling: cores x that "
             "| perfect scaling vs Keras | stack rows: share of perfect scaling |", "|---|---|---|---|---|---|---|"]
    for solo in (r for r in rows if r.config == "k1core"):
        key, rnd = solo.shape.key, solo.round
        ideal = cores * solo.profiles_per_second
        keras_speed = ref.get((key, rnd), (None, None))[0]
        shares = [f"{r.config} {100 * r.profiles_per_second / ideal:.0f}%" for r in rows
                  if r.shape.key == key and r.round == rnd and r.config not in (*KERAS_CONFIGS, "k1core") and r.k > 1]
        lines.append(f"| {key} | {rnd} | {solo.profiles_per_second:,.0f} | {cores} | {ideal:,.0f} "
                     f"| {f'{ideal / keras_speed:.2f}x' if keras_speed else 'n/a'} | {', '.join(shares) or 'n/a'} |")
    return "\n".join(lines) if len(lines) > 2 else ""
