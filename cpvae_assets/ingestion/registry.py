"""Dataset descriptions: which column is the compound, the MOA, the dose, the stratum, and DMSO.

The same loader reads LINCS Cell Painting level 5, level 4 and L1000 because these differences live
in data (``datasets.toml``), not in code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from cpvae_assets.schema import CONTROL_LABEL, CONTROLS, Control, Kind
from cpvae_assets.storage.paths import PACKAGE_DATA, check_name, inside

REGISTRY_FILE = Path(__file__).with_name("datasets.toml")
LOCAL_SPEC = "dataset.toml"


class RegistryError(ValueError):
    """A dataset description that is missing, unknown or incomplete."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: Kind
    compound: str
    dose: str
    stratum: str
    control_column: str
    control_values: tuple[str, ...]
    moa: str | None = None
    moa_table: str | None = None
    moa_join: tuple[str, str] | None = None  # (profile column, table column)
    description: str = ""
    remote_files: tuple[str, ...] = field(default_factory=tuple)
    level: int = 5  # LINCS processing level: 5 consensus, 4 replicate wells
    control: Control = "profiles"  # "zero_signature": z-scored signatures without control rows

    @property
    def model_preset(self) -> str:
        """Which of the paper's hyperparameter sets fits: ``cp5``, ``cp4`` or ``l1000``."""
        if self.kind == "l1000":
            return "l1000"
        return "cp4" if self.level == 4 else "cp5"

    @property
    def required_columns(self) -> list[str]:
        cols = [self.compound, self.dose, self.stratum, self.control_column]
        cols += [self.moa] if self.moa else [self.moa_join[0]] if self.moa_join else []
        return list(dict.fromkeys(cols))

    def moa_table_path(self) -> Path | None:
        if self.moa_table is None:
            return None
        return PACKAGE_DATA / check_name(self.moa_table, "MOA table name")


def _build(name: str, raw: dict, source: str) -> DatasetSpec:
    missing = [k for k in ("kind", "compound", "dose", "stratum", "control_column") if k not in raw]
    if missing:
        raise RegistryError(f"{source}: dataset {name!r} lacks {', '.join(missing)}")
    if raw["kind"] not in get_args(Kind):
        raise RegistryError(
            f"{source}: dataset {name!r} has kind {raw['kind']!r}; expected one of {get_args(Kind)}"
        )
    if not raw.get("moa") and not (raw.get("moa_table") and raw.get("moa_join")):
        raise RegistryError(f"{source}: dataset {name!r} needs `moa` or `moa_table` + `moa_join`")
    if raw.get("control", "profiles") not in CONTROLS:
        raise RegistryError(f"{source}: dataset {name!r} has control {raw['control']!r}; expected one of {CONTROLS}")
    join = raw.get("moa_join")
    known = set(DatasetSpec.__dataclass_fields__) | {"extends"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise RegistryError(f"{source}: dataset {name!r} has unknown keys {unknown}")
    return DatasetSpec(
        name=name,
        kind=raw["kind"],
        compound=raw["compound"],
        dose=raw["dose"],
        stratum=raw["stratum"],
        control_column=raw["control_column"],
        control_values=tuple(str(v) for v in raw.get("control_values", [CONTROL_LABEL])),
        moa=raw.get("moa"),
        moa_table=raw.get("moa_table"),
        moa_join=(join["profile"], join["table"]) if join else None,
        description=raw.get("description", ""),
        remote_files=tuple(raw.get("remote_files", ())),
        level=int(raw.get("level", 5)),
        control=raw.get("control", "profiles"),
    )


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
        return {**base, **raw}

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
            raw = {**base, **raw}
        return _build(name, raw, str(local))
    registry = load_registry()
    if name not in registry:
        raise RegistryError(
            f"no description for dataset {name!r}: add it to {REGISTRY_FILE} or put a "
            f"{LOCAL_SPEC} in its landing folder (known: {', '.join(sorted(registry))})"
        )
    return registry[name]
