"""The names every stage shares: model types, the control label, which columns are metadata,
features or latent features, and how an MOA pair is keyed. Defined here once; nothing here imports
pandas, so the CLI and the sensors can use it cheaply."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

ModelType = Literal["vanilla", "beta", "mmd", "pca"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
Objective = Literal["vanilla", "beta", "mmd"]
VAE_TYPES: tuple[str, ...] = get_args(Objective)
Kind = Literal["cell_painting", "l1000"]
# how a dataset's vehicle is known: control rows in the data ("profiles"), or, for z-scored signatures
# without control rows, the zero vector of the input space ("zero_signature"; method.md)
Control = Literal["profiles", "zero_signature"]
CONTROLS: tuple[str, ...] = get_args(Control)
# feature scaling fitted on the training split: min-max (the paper's), or robust: clipped to training
# quantiles first, then min-max over the clipped range (heavy-tailed z-scores)
Scaling = Literal["minmax", "robust"]
SCALINGS: tuple[str, ...] = get_args(Scaling)
# robust scaling clips each feature to these quantiles of its training values unless a dataset says otherwise
DEFAULT_CLIP_QUANTILES = (0.005, 0.995)
# tuning and training budgets of the jobs (defs/jobs.py): a demo in minutes, the paper's method
Preset = Literal["demo", "paper"]
PRESETS: tuple[str, ...] = get_args(Preset)
# operands of the stacked trainer's matrix products (bench/bf16_results.py compares the two)
MatmulDtype = Literal["float32", "bfloat16"]
MATMUL_DTYPES: tuple[str, ...] = get_args(MatmulDtype)

# the negative control (vehicle); the MOA group of every control profile
CONTROL_LABEL = "DMSO"

# pycytominer's rule: metadata columns carry this prefix, every other column of a profile file is a feature
META_PREFIX = "Metadata_"
# the metadata every later stage relies on, written by ingestion in this order
CANONICAL = ("profile_id", "compound", "moa", "dose", "stratum", "is_control", "source_file")
# columns later stages add beside the canonical ones; never features
DERIVED = ("split", "stratified_by")
# the label of profiles without an MOA where the MOA group stands in for a plate or cell line
NO_MOA = "no MOA"
# latent features are z_0, z_1, ... in every table that holds them
LATENT_PREFIX = "z_"
# two mechanisms of action in one annotation: "A|B"
MOA_SEPARATOR = "|"


def is_feature(column: object) -> bool:
    name = str(column)
    return name not in CANONICAL and name not in DERIVED and not name.startswith(META_PREFIX)


def feature_columns(frame_or_columns) -> list[str]:
    """The feature columns of a table (or of a list of column names), in their order."""
    columns = getattr(frame_or_columns, "columns", frame_or_columns)
    return [c for c in columns if is_feature(c)]


def latent_columns(latent_dim: int) -> list[str]:
    return [f"{LATENT_PREFIX}{i}" for i in range(latent_dim)]


def latent_columns_of(frame_or_columns) -> list[str]:
    """The ``z_<i>`` columns of a table, in their order."""
    columns = getattr(frame_or_columns, "columns", frame_or_columns)
    return [c for c in columns if str(c).startswith(LATENT_PREFIX) and str(c)[len(LATENT_PREFIX):].isdigit()]


def parse_moa(value: object) -> tuple[str, ...]:
    """``' HDAC inhibitor |EGFR inhibitor'`` -> ``('HDAC inhibitor', 'EGFR inhibitor')``; () for none."""
    if value is None or type(value).__name__ == "NAType" or (isinstance(value, float) and value != value):
        return ()  # None, pd.NA, NaN
    return tuple(part.strip() for part in str(value).split(MOA_SEPARATOR) if part.strip())


def moa_key(parts: Iterable[str]) -> tuple[str, ...]:
    """The spelling-independent key of a set of mechanisms: trimmed, lower case, sorted, unique."""
    return tuple(sorted({p.strip().lower() for p in parts if p.strip()}))


def pair_key(pair: object) -> str:
    """``'EGFR inhibitor|hdac inhibitor '`` and ``'HDAC inhibitor|EGFR inhibitor'`` -> one key."""
    return MOA_SEPARATOR.join(moa_key(parse_moa(pair)))


def check_model_type(model_type: str) -> str:
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; expected one of {', '.join(MODEL_TYPES)}")
    return model_type
