"""Dataset descriptions: which column is the compound, the MOA, the dose, the stratum, and DMSO (or
that the data are z-scored signatures whose vehicle is the zero vector), and how features are scaled.

The same loader reads LINCS Cell Painting level 5, level 4 and L1000 because these differences live
in data (``datasets.toml``), not in code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from cpvae_assets.schema import (
    CONTROL_LABEL,
    CONTROLS,
    DEFAULT_CLIP_QUANTILES,
    META_PREFIX,
    SCALINGS,
    Control,
    Kind,
    Scaling,
)
from cpvae_assets.storage.paths import PACKAGE_DATA, UnsafePathError, check_name, inside

REGISTRY_FILE = Path(__file__).with_name("datasets.toml")
LOCAL_SPEC = "dataset.toml"


class RegistryError(ValueError):
    """A dataset description that is missing, unknown or incomplete."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset's columns and choices. Role columns (compound, MOA, dose, stratum, control marker,
    MOA join key) may name a ``metadata_columns`` entry with or without the ``Metadata_`` prefix;
    they are stored prefixed, as the column reads after ingestion renamed it."""

    name: str
    kind: Kind
    compound: str
    dose: str | None = None  # none: canonical dose is NaN
    stratum: str | None = None  # none (no plate, no cell line): splits are stratified by MOA group
    control_column: str | None = None  # required unless control = "zero_signature"
    control_values: tuple[str, ...] = (CONTROL_LABEL,)
    moa: str | None = None
    moa_table: str | None = None  # a file under the package data folder, e.g. "real/x_moa.tsv"
    moa_join: tuple[str, str] | None = None  # (profile column, table column)
    description: str = ""
    remote_files: tuple[str, ...] = field(default_factory=tuple)
    level: int = 5  # LINCS processing level: 5 consensus, 4 replicate wells
    metadata_columns: tuple[str, ...] = ()  # unprefixed metadata columns, renamed to Metadata_<name> on reading
    control: Control = "profiles"
    scaling: Scaling = "minmax"
    clip_quantiles: tuple[float, float] | None = None  # robust only; default DEFAULT_CLIP_QUANTILES

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise RegistryError(f"dataset {self.name!r} {problem}")
        prefixed = {name: f"{META_PREFIX}{name}" for name in self.metadata_columns}
        for role in ("compound", "dose", "stratum", "control_column", "moa"):
            value = getattr(self, role)
            object.__setattr__(self, role, prefixed.get(value, value))
        if self.moa_join:
            object.__setattr__(self, "moa_join", (prefixed.get(self.moa_join[0], self.moa_join[0]), self.moa_join[1]))
        if self.clip_quantiles is not None:
            object.__setattr__(self, "clip_quantiles", tuple(float(q) for q in self.clip_quantiles))

    def _problem(self) -> str | None:
        """What is wrong with the description, as the end of a sentence starting with its name."""
        if self.kind not in get_args(Kind):
            return f"has kind {self.kind!r}; expected one of {get_args(Kind)}"
        if self.control not in CONTROLS:
            return f"has control {self.control!r}; expected one of {CONTROLS}"
        if self.control == "profiles" and not self.control_column:
            return ("lacks control_column (the column that marks DMSO rows); z-scored signatures without "
                    'control rows declare control = "zero_signature"')
        if self.scaling not in SCALINGS:
            return f"has scaling {self.scaling!r}; expected one of {SCALINGS}"
        if self.clip_quantiles is not None:
            if self.scaling != "robust":
                return f'has clip_quantiles {list(self.clip_quantiles)}, which only scaling = "robust" uses'
            q = self.clip_quantiles
            if len(q) != 2 or not all(isinstance(v, int | float) for v in q) or not 0 <= q[0] < q[1] <= 1:
                return f"has clip_quantiles {list(q)}; expected [low, high] with 0 <= low < high <= 1"
        if not self.moa and not (self.moa_table and self.moa_join):
            return "needs `moa` or `moa_table` + `moa_join`"
        shadowed = [c for c in self.metadata_columns if not isinstance(c, str) or c.startswith(META_PREFIX) or not c]
        if shadowed:
            return f"lists {shadowed} in metadata_columns; list unprefixed names (Metadata_* columns are metadata already)"
        self.moa_table_path()  # refuses a path that leaves the package data folder
        return None

    @property
    def model_preset(self) -> str:
        """Which of the paper's hyperparameter sets fits: ``cp5``, ``cp4`` or ``l1000``."""
        if self.kind == "l1000":
            return "l1000"
        return "cp4" if self.level == 4 else "cp5"

    @property
    def quantiles(self) -> tuple[float, float] | None:
        """The training quantiles robust scaling clips to; None for min-max."""
        if self.scaling != "robust":
            return None
        return self.clip_quantiles or DEFAULT_CLIP_QUANTILES

    @property
    def required_columns(self) -> list[str]:
        cols = [self.compound, self.dose, self.stratum, self.control_column]
        cols += [self.moa] if self.moa else [self.moa_join[0]] if self.moa_join else []
        return list(dict.fromkeys(c for c in cols if c))

    def moa_table_path(self) -> Path | None:
        """The MOA table: a relative path under the package data folder whose every part is a plain
        name (no ``..``, no absolute path) and which resolves inside that folder (no symlink out)."""
        if self.moa_table is None:
            return None
        parts = str(self.moa_table).split("/")
        for part in parts:
            check_name(part, f"MOA table path {self.moa_table!r}: part")
        return inside(PACKAGE_DATA, PACKAGE_DATA.joinpath(*parts))


def _build(name: str, raw: dict, source: str) -> DatasetSpec:
    control = raw.get("control", "profiles")
    required = ("kind", "compound") + (("control_column",) if control == "profiles" else ())
    missing = [k for k in required if k not in raw]
    if missing:
        raise RegistryError(f"{source}: dataset {name!r} lacks {', '.join(missing)}")
    join = raw.get("moa_join")
    if join is not None and not (isinstance(join, dict) and {"profile", "table"} <= set(join)):
        raise RegistryError(f"{source}: dataset {name!r} has moa_join {join!r}; expected "
                            '{ profile = "<profile column>", table = "<table column>" }')
    known = set(DatasetSpec.__dataclass_fields__) | {"extends"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RegistryError(f"{source}: dataset {name!r} has unknown keys {unknown}")
    quantiles = raw.get("clip_quantiles")
    try:
        return DatasetSpec(
            name=name,
            kind=raw["kind"],
            compound=raw["compound"],
            dose=raw.get("dose"),
            stratum=raw.get("stratum"),
            control_column=raw.get("control_column"),
            control_values=tuple(str(v) for v in raw.get("control_values", [CONTROL_LABEL])),
            moa=raw.get("moa"),
            moa_table=raw.get("moa_table"),
            moa_join=(join["profile"], join["table"]) if join else None,
            description=raw.get("description", ""),
            remote_files=tuple(raw.get("remote_files", ())),
            level=int(raw.get("level", 5)),
            metadata_columns=tuple(raw.get("metadata_columns", ())),
            control=control,
            scaling=raw.get("scaling", "minmax"),
            clip_quantiles=tuple(quantiles) if quantiles is not None else None,
        )
    except (RegistryError, UnsafePathError) as exc:
        raise type(exc)(f"{source}: {exc}") from exc


def _inherit(base: dict, raw: dict) -> dict:
    """``raw`` over the entry it extends; clip quantiles belong to the scaling they were set with, so a
    child that chooses its own scaling does not inherit them."""
    if "scaling" in raw and "clip_quantiles" not in raw:
        base = {k: v for k, v in base.items() if k != "clip_quantiles"}
    return {**base, **raw}


def load_registry(path: Path = REGISTRY_FILE) -> dict[str, DatasetSpec]:
    with open(path, "rb") as handle:
        entries = tomllib.load(handle).get("datasets", {})
    resolved: dict[str, dict] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> dict:
        if name in seen:
            raise RegistryError(f"{path}: `extends` cycle {' -> '.join(seen + (name,))}")
        if name not in entries:
            raise RegistryError(f"{path}: unknown dataset {name!r} in `extends`")
        raw = dict(entries[name])
        parent = raw.pop("extends", None)
        base = resolve(parent, seen + (name,)) if parent else {}
        # remote files and descriptions belong to one dataset; they are not inherited
        base = {k: v for k, v in base.items() if k not in ("remote_files", "description")}
        return _inherit(base, raw)

    for name in entries:
        check_name(name)
        resolved[name] = resolve(name)
    return {name: _build(name, raw, str(path)) for name, raw in resolved.items()}


def dataset_spec(name: str, landing: Path | None = None) -> DatasetSpec:
    """The description of ``name``: its landing folder's ``dataset.toml`` first, then the registry."""
    check_name(name)
    if landing is not None and (landing / LOCAL_SPEC).is_file():
        local = inside(landing, landing / LOCAL_SPEC)
        with open(local, "rb") as handle:
            raw = tomllib.load(handle)
        registry = load_registry()
        parent = raw.pop("extends", None)
        if parent:
            if parent not in registry:
                raise RegistryError(f"{local}: unknown dataset {parent!r} in `extends`")
            base = {
                k: v
                for k, v in registry[parent].__dict__.items()
                if k not in ("name", "remote_files", "description") and v is not None
            }
            if base.get("moa_join"):
                base["moa_join"] = dict(zip(("profile", "table"), base["moa_join"]))
            raw = _inherit(base, raw)
        return _build(name, raw, str(local))
    registry = load_registry()
    if name not in registry:
        raise RegistryError(
            f"no description for dataset {name!r}: add it to {REGISTRY_FILE} or put a "
            f"{LOCAL_SPEC} in its landing folder (known: {', '.join(sorted(registry))})"
        )
    return registry[name]
