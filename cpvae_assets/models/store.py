"""Trained models in the lake: the chosen model of a ``trained_models`` partition in its folder, every
real seed's model under ``seeds/seed=<s>/``. The one place that turns a partition into a model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from cpvae_assets.models.latent import KerasModel, LatentModel, PcaModel
from cpvae_assets.schema import check_model_type
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.lake import Lake

ASSET = "trained_models"
MODEL_SUFFIXES = (".keras", ".npz")


class ModelStore:
    def __init__(self, lake: Lake):
        self.lake = lake

    def folder(self, dataset: str, model_type: str) -> Path:
        return self.lake.folder(ASSET, dataset, check_model_type(model_type))

    def load(self, dataset: str, model_type: str) -> LatentModel:
        """The chosen model; ``ModelFileError`` (naming the file) if it is missing or damaged."""
        return _load(self.folder(dataset, model_type), model_type)

    def seeds(self, dataset: str, model_type: str) -> Iterator[tuple[int, LatentModel]]:
        """Every real seed's model, in seed order."""
        base = self.folder(dataset, model_type) / "seeds"
        folders = [p for p in base.iterdir() if p.name.startswith("seed=")] if base.is_dir() else []
        for folder in sorted(folders, key=lambda p: int(p.name.split("=", 1)[1])):
            yield int(folder.name.split("=", 1)[1]), _load(folder, model_type)

    def save(self, dataset: str, model_type: str, model: LatentModel,
             seed_models: Sequence[tuple[int, LatentModel]] = ()) -> dict[str, str]:
        """Store the chosen model and every seed's (seeds of an earlier run are removed); returns the
        sha256 of the chosen model's files, which the ``trained_models`` table records."""
        folder = self.folder(dataset, model_type)
        model.save(folder)
        keep = {f"seed={seed}" for seed, _ in seed_models}
        if (folder / "seeds").is_dir():
            for old in (folder / "seeds").iterdir():
                if old.name not in keep:
                    shutil.rmtree(old)
        for seed, member in seed_models:
            member.save(folder / "seeds" / f"seed={seed}")
        return {p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.suffix in MODEL_SUFFIXES}


def _load(folder: Path, model_type: str) -> LatentModel:
    return PcaModel.load(folder) if model_type == "pca" else KerasModel.load(folder)
