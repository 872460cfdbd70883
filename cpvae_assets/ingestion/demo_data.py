"""A seeded generator of LINCS-shaped demo datasets with a known answer.

Each MOA is a direction in a hidden 8-dimensional space; a compound is its MOA's direction plus
compound noise, scaled by a Hill dose response. A two-MOA compound ``A|B`` is *additive* (the sum of
A's and B's directions, which latent space arithmetic should recover) or *synergistic* (a random
direction of the same size at least ``min_synergy_angle_degrees`` away from that sum, so that no
arithmetic can recover it by luck). A fixed map takes hidden states to 588 CellProfiler-named
features (and another to 978 L1000 genes); replicate wells add noise and plate effects, and the
level-5 profile is the median of its replicates (pycytominer's consensus). The truth, with each
pair's angle to the sum, is written to ``ground_truth/combinations.csv`` beside each dataset.

Two knobs make it a power analysis (method.md): ``effect_size`` = norm of every MOA's hidden
direction / standard deviation of the compound-to-compound noise (per hidden dimension), set through
the noise so that the geometry the map sees stays the same; ``nonlinearity`` blends the map from its
linearisation at DMSO (0: feature arithmetic is exact for additive pairs) to the full one-hidden-layer
tanh map (1).
"""

from __future__ import annotations

import gzip
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cpvae_assets.storage.paths import PACKAGE_DATA
from cpvae_assets.storage.tables import atomic_path

DOSES_UM = (0.04, 0.12, 0.37, 1.11, 3.33, 10.0)
HIDDEN = 8
DIRECTION_NORM = 4.0  # hidden-space norm of every single MOA's direction (about the old demo's average, 4.1)
CHANNELS = ("DNA", "RNA", "ER", "AGP", "Mito")
GROUND_TRUTH = Path("ground_truth") / "combinations.csv"


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 20211
    n_single_moas: int = 40
    n_pairs: int = 15
    n_synergistic: int = 3
    compounds_per_moa: int = 4
    plate_maps: int = 6
    dmso_per_plate_map: int = 30
    replicates: int = 4
    n_features: int = 588
    l1000_cell_lines: tuple[str, ...] = ("A549", "MCF7")
    # defaults: compounds of one MOA spread about as far as their MOA's direction (noise sd 1.33), and a
    # map half way to the saturating tanh; there the methods' recovery of the truth differs (bench/lsa_power.py)
    effect_size: float = 3.0  # DIRECTION_NORM / sd of the compound noise per hidden dimension
    nonlinearity: float = 0.5  # 0: the map's linearisation at DMSO, 1: the full non-linear map
    min_synergy_angle_degrees: float = 90.0  # smallest angle of a synergistic pair from the sum of its singles

    def __post_init__(self) -> None:
        if not self.effect_size > 0:
            raise ValueError(f"effect_size must be positive, got {self.effect_size}")
        if not 0 <= self.nonlinearity <= 1:
            raise ValueError(f"nonlinearity must be in [0, 1], got {self.nonlinearity}")
        if not 0 <= self.min_synergy_angle_degrees <= 150:
            raise ValueError(f"min_synergy_angle_degrees must be in [0, 150], got {self.min_synergy_angle_degrees}")

    @property
    def compound_noise_sd(self) -> float:
        return DIRECTION_NORM / self.effect_size


def cellprofiler_feature_names(n: int = 588) -> list[str]:
    """Names shaped like real CellProfiler features, spread evenly over the three compartments."""
    per = {}
    for comp in ("Cells", "Cytoplasm", "Nuclei"):
        names = [f"{comp}_AreaShape_{m}" for m in ("Area", "Compactness", "Eccentricity", "Extent",
                                                   "FormFactor", "MajorAxisLength", "Solidity")]
        names += [f"{comp}_AreaShape_Zernike_{i}_{j}" for i in range(10) for j in range(i % 2, i + 1, 2)]
        for ch in CHANNELS:
            names += [f"{comp}_Intensity_{m}_{ch}" for m in ("IntegratedIntensity", "MeanIntensity",
                                                             "StdIntensity", "MADIntensity", "MaxIntensity")]
            names += [f"{comp}_Texture_{m}_{ch}_{s}_0" for m in ("AngularSecondMoment", "Contrast", "Entropy",
                                                                  "InverseDifferenceMoment", "SumAverage") for s in (3, 5)]
            names += [f"{comp}_Granularity_{g}_{ch}" for g in range(1, 9)]
            names += [f"{comp}_RadialDistribution_{m}_{ch}_{k}of4" for m in ("FracAtD", "MeanFrac") for k in range(1, 5)]
        names += [f"{comp}_Correlation_Correlation_{a}_{b}" for a, b in itertools.combinations(CHANNELS, 2)]
        per[comp] = names
    take = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    out = [name for (comp, names), k in zip(per.items(), take) for name in names[:k]]
    if len(out) != n:
        raise ValueError(f"cannot name {n} features (at most {sum(len(v) for v in per.values())})")
    return out


def _moa_names(n: int) -> list[str]:
    table = pd.read_csv(PACKAGE_DATA / "repurposing_info_external_moa_map_resolved.tsv", sep="\t", dtype=str)
    single = table["moa"].dropna()
    counts = single[~single.str.contains("|", regex=False)].value_counts()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in ranked[:n]]


def _random_direction(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(0, 1, HIDDEN)
    return v / np.linalg.norm(v) * DIRECTION_NORM


def _angle_degrees(u: np.ndarray, v: np.ndarray) -> float:
    cos = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def _synergy(summed: np.ndarray, min_angle: float, rng: np.random.Generator, tries: int = 10_000) -> np.ndarray:
    """A random direction as long as ``summed``, at least ``min_angle`` degrees from it (rejection sampling:
    the angle keeps the distribution of a random direction, above the floor)."""
    for _ in range(tries):
        other = rng.normal(0, 1, HIDDEN)
        if _angle_degrees(other, summed) >= min_angle:
            return other / np.linalg.norm(other) * np.linalg.norm(summed)
    raise ValueError(f"no random direction at least {min_angle} degrees from the sum in {tries} draws")


def design_compounds(cfg: DemoConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Compounds (id, moa, hidden direction) and the ground truth of the two-MOA combinations."""
    moas = _moa_names(cfg.n_single_moas)
    direction = {m: _random_direction(rng) for m in moas}
    pairs = rng.choice(len(list(itertools.combinations(moas, 2))), cfg.n_pairs, replace=False)
    all_pairs = list(itertools.combinations(moas, 2))
    synergy = set(rng.choice(cfg.n_pairs, cfg.n_synergistic, replace=False).tolist())
    truth = []
    for i, p in enumerate(pairs):
        a, b = all_pairs[p]
        if rng.random() < 0.5:
            a, b = b, a  # real annotations list the two mechanisms in either order
        additive = i not in synergy
        summed = direction[a] + direction[b]
        effect = summed if additive else _synergy(summed, cfg.min_synergy_angle_degrees, rng)
        direction[f"{a}|{b}"] = effect
        truth.append({"moa_pair": f"{a}|{b}", "moa_a": a, "moa_b": b, "additive": additive,
                      "cosine_to_sum": float(effect @ summed / np.linalg.norm(effect) / np.linalg.norm(summed)),
                      "angle_to_sum_degrees": 0.0 if additive else round(_angle_degrees(effect, summed), 3),
                      "min_synergy_angle_degrees": cfg.min_synergy_angle_degrees,
                      "effect_size": cfg.effect_size, "nonlinearity": cfg.nonlinearity})
    # one compound with three mechanisms and two without annotation, as in the real table
    a, b, c = moas[:3]
    direction[f"{a}|{b}|{c}"] = direction[a] + direction[b] + direction[c]
    groups = [m for m in direction] + [None]
    rows, serial = [], itertools.count(1)
    for moa in groups:
        n = 2 if moa is None or moa.count("|") == 2 else cfg.compounds_per_moa
        for _ in range(n if moa is not None else 2):
            k = next(serial)
            base = direction[moa] if moa is not None else _random_direction(rng)
            rows.append({"compound": f"BRD-K{10000000 + 7919 * k:08d}-001-01-{k % 10}",
                         "pert_iname": f"cpd-{k:04d}", "moa": moa,
                         "hidden": base + rng.normal(0, cfg.compound_noise_sd, HIDDEN),
                         "plate_map": f"C-7161-01-LM6-{(k % cfg.plate_maps) + 1:03d}"})
    return pd.DataFrame(rows), pd.DataFrame(truth), direction


def hidden_map(rng: np.random.Generator, n_out: int, nonlinearity: float, width: int = 32):
    """Hidden states to features: ``(1 - nonlinearity)`` x the map's first-order Taylor expansion at
    DMSO (h = 0) + ``nonlinearity`` x the tanh map itself. Both agree at DMSO in value and slope, so
    the knob changes the curvature only, not the scale of the signal."""
    w1 = rng.normal(0, 0.6, (HIDDEN, width))
    b1 = rng.normal(0, 0.3, width)
    w2 = rng.normal(0, 1 / np.sqrt(width), (width, n_out))
    at_zero = np.tanh(b1) @ w2
    jacobian = (w1 * (1 - np.tanh(b1) ** 2)) @ w2

    def to_out(h: np.ndarray) -> np.ndarray:
        linear = at_zero + h @ jacobian
        return linear if nonlinearity == 0 else (1 - nonlinearity) * linear + nonlinearity * (np.tanh(h @ w1 + b1) @ w2)

    return to_out


def _hill(dose: float) -> float:
    return dose / (dose + 1.0)


def generate_cell_painting(cfg: DemoConfig, compounds: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Level-4 replicate wells and level-5 consensus (median of replicates) profiles."""
    features = cellprofiler_feature_names(cfg.n_features)
    to_features = hidden_map(rng, cfg.n_features, cfg.nonlinearity)
    plate_effect = {f"SQ{15000 + i:08d}": rng.normal(0, 0.15, cfg.n_features)
                    for i in range(cfg.plate_maps * cfg.replicates)}
    plates = list(plate_effect)
    baseline = to_features(np.zeros(HIDDEN))
    treatments = [(c, d) for c in compounds.itertuples() for d in range(1, 7)]
    dmso = [(None, 0) for _ in range(cfg.plate_maps * cfg.dmso_per_plate_map)]
    rows, consensus = [], []
    for t, (cpd, dose_code) in enumerate(treatments + dmso):
        plate_map_idx = (t % cfg.plate_maps) if cpd is None else int(cpd.plate_map[-3:]) - 1
        hidden = np.zeros(HIDDEN) if cpd is None else cpd.hidden * _hill(DOSES_UM[dose_code - 1])
        signal = to_features(hidden) - baseline
        meta = {
            "Metadata_Plate_Map_Name": f"C-7161-01-LM6-{plate_map_idx + 1:03d}",
            "Metadata_broad_sample": "DMSO" if cpd is None else cpd.compound,
            "Metadata_pert_iname": "DMSO" if cpd is None else cpd.pert_iname,
            "Metadata_mmoles_per_liter": 0.0 if cpd is None else DOSES_UM[dose_code - 1],
            "Metadata_dose_recode": dose_code,
            "Metadata_moa": None if cpd is None else cpd.moa,
            "Metadata_cell_id": "A549",
            "Metadata_time_point": "48H",
        }
        wells = []
        for r in range(cfg.replicates):
            plate = plates[plate_map_idx * cfg.replicates + r]
            profile = signal + plate_effect[plate] + rng.normal(0, 0.35, cfg.n_features)
            wells.append(profile)
            rows.append({**meta, "Metadata_Plate": plate, "Metadata_Well": f"{'ABCDEFGHIJKLMNOP'[t % 16]}{t % 24 + 1:02d}",
                         **dict(zip(features, profile))})
        consensus.append({**meta, **dict(zip(features, np.median(wells, axis=0)))})
    level4 = pd.DataFrame(rows)
    level5 = pd.DataFrame(consensus)
    f32 = {f: np.float32 for f in features}
    return level4.astype(f32), level5.astype(f32)


def generate_l1000(cfg: DemoConfig, compounds: pd.DataFrame, rng: np.random.Generator, genes: pd.DataFrame) -> pd.DataFrame:
    to_genes = hidden_map(rng, len(genes), cfg.nonlinearity, width=48)
    baseline = to_genes(np.zeros(HIDDEN))
    cells = {c: rng.normal(0, 0.3, len(genes)) for c in cfg.l1000_cell_lines}
    rows = []
    for cell, shift in cells.items():
        items = [(c, d) for c in compounds.itertuples() for d in range(1, 7)] + [(None, 0)] * 60
        for i, (cpd, dose_code) in enumerate(items):
            hidden = np.zeros(HIDDEN) if cpd is None else cpd.hidden * _hill(DOSES_UM[dose_code - 1])
            values = 2.0 * (to_genes(hidden) - baseline) + shift + rng.normal(0, 0.5, len(genes))
            rows.append({
                "sample_id": f"DEMO001_{cell}_24H:{i:05d}",
                "pert_id": "DMSO" if cpd is None else cpd.compound[:13],
                "pert_iname": "DMSO" if cpd is None else cpd.pert_iname,
                "pert_type": "ctl_vehicle" if cpd is None else "trt_cp",
                "pert_dose": -666.0 if cpd is None else DOSES_UM[dose_code - 1],
                "pert_dose_unit": "um", "cell_id": cell, "pert_itime": "24 h",
                "moa": "" if cpd is None or cpd.moa is None else cpd.moa,
                "values": values.astype(np.float32),
            })
    return pd.DataFrame(rows)


def write_gctx(path: Path, samples: pd.DataFrame, genes: pd.DataFrame) -> None:
    """Write samples x genes in the cmapPy GCTX layout (deterministic: no HDF5 timestamps)."""
    import h5py

    matrix = np.vstack(samples["values"].to_numpy())
    with h5py.File(path, "w", track_order=True) as h5:
        h5.create_dataset("0/DATA/0/matrix", data=matrix, track_times=False)
        for where, frame, key in (("ROW", genes, "feature"), ("COL", samples.drop(columns="values"), "sample_id")):
            h5.create_dataset(f"0/META/{where}/id", data=frame[key].astype(str).to_numpy(dtype="S"), track_times=False)
            for col in frame.columns.drop(key):
                data = frame[col].to_numpy()
                data = data.astype("S") if data.dtype == object else data
                h5.create_dataset(f"0/META/{where}/{col}", data=data, track_times=False)


def _landmark_genes() -> pd.DataFrame:
    from cpvae_assets.ingestion.readers import read_gct

    _, genes = read_gct(PACKAGE_DATA / "real" / "l1000_LJP005_A375_24H.gct.gz")
    return genes[["feature", "pr_gene_symbol"]]


def _write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as handle:
        handle.write(frame.to_csv(index=False, float_format="%.6g").encode())


def generate_demo(landing_root: Path, cfg: DemoConfig = DemoConfig()) -> dict[str, Path]:
    """Write ``demo_cp_level5`` (CSV.gz), ``demo_cp_level4`` (Parquet), ``demo_l1000`` (GCTX)."""
    rng = np.random.default_rng(cfg.seed)
    compounds, truth, _ = design_compounds(cfg, rng)
    level4, level5 = generate_cell_painting(cfg, compounds, rng)
    l1000 = generate_l1000(cfg, compounds, rng, _landmark_genes())
    out = {}
    for name, file_name, writer in (
        ("demo_cp_level5", "demo_cp_level5_consensus.csv.gz", lambda p: _write_csv_gz(level5, p)),
        ("demo_cp_level4", "demo_cp_level4_replicates.parquet", lambda p: level4.to_parquet(p, index=False)),
        ("demo_l1000", "demo_l1000_level5.gctx", lambda p: write_gctx(p, l1000, _landmark_genes())),
    ):
        folder = landing_root / name
        # written beside and renamed, so a running landing sensor never sees half a file
        with atomic_path(folder / file_name) as tmp:
            writer(tmp)
        with atomic_path(folder / GROUND_TRUTH) as tmp:
            truth.to_csv(tmp, index=False)
        out[name] = folder
    return out
