"""Predict ``A|B`` as ``mean(A) - mean(DMSO) + mean(B)`` and score it, with baselines and a null.

Every method runs through the same code, so they compare row for row:
- ``lsa``: the arithmetic on latent means, decoded by the model (for PCA: LSA in PCA space);
- ``feature_arithmetic``: the same arithmetic on mean profiles, no model;
- ``mean_of_singles``: (mean(A) + mean(B)) / 2;
- ``best_single``: mean(A) or mean(B), whichever is closer to the real ``A|B`` (an oracle);
- ``control``: mean(DMSO) itself, "no effect": what a method must beat to claim any prediction.
The null permutes MOA labels over all kept profiles (DMSO included), recomputes every group mean and
prediction, and scores them against the real (unpermuted) ``A|B`` means. Group sizes do not change
under permutation, so all permuted means are one sparse matrix product per chunk of permutations.
A dataset without controls (``zero_signature``) has one control row, the zero signature brought into
the models' space; its label stays fixed and only the compounds' labels are permuted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, stats

from cpvae_assets.lsa.moa_groups import stored_membership
from cpvae_assets.models.latent import LatentModel
from cpvae_assets.preprocessing.splits import scale
from cpvae_assets.schema import CONTROL_LABEL, feature_columns, latent_columns, latent_columns_of

METHODS = ("lsa", "feature_arithmetic", "mean_of_singles", "best_single", "control")
BASELINES = METHODS[1:]
EXPRESSIONS = {
    "lsa": "decode(mean_z(A) - mean_z(DMSO) + mean_z(B))",
    "feature_arithmetic": "mean_x(A) - mean_x(DMSO) + mean_x(B)",
    "mean_of_singles": "(mean_x(A) + mean_x(B)) / 2",
    "best_single": "argmin over {mean_x(A), mean_x(B)} of the distance to mean_x(A|B)",
    "control": "mean_x(DMSO)",
}
DISTANCE_COLUMNS = ["pair", "moa_a", "moa_b", "method", "expression", "l2", "cosine_distance", "shift_pearson"]
Decoder = Callable[[np.ndarray], np.ndarray]
TIE = 1e-5  # relative resolution of the float32 null: closer distances are ties
Encoder = Callable[[np.ndarray], np.ndarray]


@dataclass
class Design:
    """Kept profiles as group indices, and the pairs whose two singles are present.

    For a zero-signature dataset the last row is the control (no profile of the data): ``fixed``
    marks it, and whoever builds the values appends the matching row (``lsa_inputs`` does)."""

    groups: list[str]
    labels: np.ndarray  # (N,) group index per kept profile (and the zero-signature control row)
    pairs: pd.DataFrame  # pair, moa_a, moa_b and their group indices ab, a, b
    control: int
    fixed: np.ndarray | None = None  # (N,) rows whose label never moves under permutation

    @property
    def zero_signature(self) -> bool:
        return self.fixed is not None

    @classmethod
    def build(cls, membership: pd.Series, group_table: pd.DataFrame) -> Design:
        kept = membership.dropna()
        zero = bool(group_table.get("zero_signature", pd.Series(dtype=bool)).fillna(False).astype(bool).any())
        groups = sorted(set(kept.unique()) | ({CONTROL_LABEL} if zero else set()))
        index = {g: i for i, g in enumerate(groups)}
        usable = group_table[(group_table["kind"] == "pair") & (group_table["singles_present"] == True)]  # noqa: E712
        pairs = pd.DataFrame({"pair": usable["group"], "moa_a": usable["moa_a"], "moa_b": usable["moa_b"]})
        for col, src in (("ab", "pair"), ("a", "moa_a"), ("b", "moa_b")):
            pairs[col] = pairs[src].map(index).astype(int)
        labels, fixed = kept.map(index).to_numpy(int), None
        if zero:
            labels = np.append(labels, index[CONTROL_LABEL])
            fixed = np.arange(len(labels)) == len(labels) - 1
        return cls(groups, labels, pairs.reset_index(drop=True), index[CONTROL_LABEL], fixed)

    def permuted(self, rng: np.random.Generator) -> np.ndarray:
        """One permutation of the labels: every row's for real controls, the compounds' only (the
        control row stays) for a zero-signature dataset. Without fixed rows this is exactly
        ``rng.permutation(labels)``, so nulls stored before zero signatures existed do not change."""
        if self.fixed is None:
            return rng.permutation(self.labels)
        out = self.labels.copy()
        out[~self.fixed] = rng.permutation(self.labels[~self.fixed])
        return out


@dataclass
class LsaInputs:
    """The kept profiles of a dataset in both spaces, with their design."""

    design: Design
    features: np.ndarray  # (kept profiles, D): scaled feature space
    latent: np.ndarray  # (kept profiles, L): the model's latent means
    feature_names: list[str]


def zero_signature_row(scaler: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    """The zero signature of the input space in the models' (scaled) space: ``scale(0)``, not 0."""
    table = scaler.set_index("feature")
    missing = [f for f in feature_names if f not in table.index]
    if missing:
        raise ValueError(f"the scaler has no row for {len(missing)} feature(s), e.g. {missing[:3]}")
    return scale(np.zeros((1, len(feature_names))), table.loc[feature_names].reset_index())


def lsa_inputs(groups: pd.DataFrame, membership: pd.DataFrame, splits: pd.DataFrame,
               embeddings: pd.DataFrame | None = None, scaler: pd.DataFrame | None = None,
               encode: Encoder | None = None) -> LsaInputs:
    """From the stored ``moa_groups`` (table and ``membership``), the profiles and their embeddings.

    A zero-signature dataset gets one extra row, the control: ``scale(0)`` with ``scaler`` (the
    ``normalised_splits_scaler`` table) in feature space, and ``encode`` of it in latent space."""
    group_of = stored_membership(splits, membership)
    design = Design.build(group_of, groups)
    kept = group_of.notna().to_numpy()
    names = feature_columns(splits)
    x = splits.loc[kept, names].to_numpy(np.float64)
    if embeddings is None:
        z = np.empty((len(x), 0))
    else:
        z_cols = latent_columns_of(embeddings)
        z = embeddings.set_index("profile_id").loc[splits.loc[kept, "profile_id"], z_cols].to_numpy(np.float64)
    if design.zero_signature:
        if scaler is None or (embeddings is not None and encode is None):
            raise ValueError("a zero-signature dataset needs the scaler (and the model's encoder) for its control row")
        row = zero_signature_row(scaler, names)
        x = np.vstack([x, row])
        z = np.vstack([z, encode(row.astype(np.float32)).astype(np.float64) if embeddings is not None
                       else np.empty((1, 0))])
    return LsaInputs(design, x, z, names)


def group_means(labels: np.ndarray, values: np.ndarray, n_groups: int, needed: np.ndarray | None = None) -> np.ndarray:
    """Means per group for each row of ``labels`` (P, N) -> (P, G, K), as one sparse product.

    ``needed`` (group indices) limits the work to the groups a computation reads; the rows of other
    groups are left at zero.
    """
    labels = np.atleast_2d(labels)
    n_perm, n = labels.shape
    counts = np.bincount(labels[0], minlength=n_groups).astype(np.float64)
    flat = labels.ravel()
    columns = np.tile(np.arange(n), n_perm)
    rows = (labels + np.arange(n_perm)[:, None] * n_groups).ravel()
    if needed is not None:
        keep = np.isin(flat, needed)
        flat, columns, rows = flat[keep], columns[keep], rows[keep]
    weights = (1.0 / counts[flat]).astype(values.dtype)
    matrix = sparse.csr_matrix((weights, (rows, columns)), shape=(n_perm * n_groups, n))
    return np.asarray(matrix @ values).reshape(n_perm, n_groups, values.shape[1])


def predict(design: Design, latent_means: np.ndarray, feature_means: np.ndarray, decode: Decoder,
            target: np.ndarray) -> dict[str, np.ndarray]:
    """Predicted profiles (P, pairs, D) per method; ``target`` (pairs, D) only picks the best single."""
    a, b, c = design.pairs["a"].to_numpy(), design.pairs["b"].to_numpy(), design.control
    n_perm, n_pairs = latent_means.shape[0], len(design.pairs)
    z_hat = latent_means[:, a] - latent_means[:, [c]] + latent_means[:, b]
    decoded = decode(z_hat.reshape(n_perm * n_pairs, -1).astype(np.float32)).reshape(n_perm, n_pairs, -1)
    fa, fb = feature_means[:, a], feature_means[:, b]
    closer_a = np.linalg.norm(fa - target, axis=-1) <= np.linalg.norm(fb - target, axis=-1)
    return {"lsa": decoded, "feature_arithmetic": fa - feature_means[:, [c]] + fb,
            "mean_of_singles": (fa + fb) / 2, "best_single": np.where(closer_a[..., None], fa, fb),
            "control": np.broadcast_to(feature_means[:, [c]], fa.shape)}


def l2(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - target, axis=-1)


def score(design: Design, latent: np.ndarray, features: np.ndarray, decode: Decoder,
          feature_names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """On the real labels: predicted profiles (pair x method), distances, and the latent predictions.

    ``shift_pearson`` is the Pearson r of the predicted and the real shift from the control; it is
    undefined (NaN) for a prediction with no shift at all, such as the ``control`` baseline's."""
    if design.pairs.empty:  # e.g. a single plate whose A|B compounds have no single-MOA partners
        numeric = {"l2", "cosine_distance", "shift_pearson"}
        distances = pd.DataFrame({c: pd.Series(dtype=float if c in numeric else object) for c in DISTANCE_COLUMNS})
        return (pd.DataFrame(columns=["pair", "method", *feature_names]), distances, pd.DataFrame(columns=["pair", "method"]))
    n_groups = len(design.groups)
    lm = group_means(design.labels, latent, n_groups)
    fm = group_means(design.labels, features, n_groups)
    target = fm[0, design.pairs["ab"].to_numpy()]
    control = fm[0, design.control]
    preds = predict(design, lm, fm, decode, target)
    rows, predicted = [], []
    for method, values in preds.items():
        values = values[0]
        for i, pair in enumerate(design.pairs.itertuples()):
            shift_pred, shift_real = values[i] - control, target[i] - control
            rows.append({"pair": pair.pair, "moa_a": pair.moa_a, "moa_b": pair.moa_b, "method": method,
                         "expression": EXPRESSIONS[method], "l2": float(np.linalg.norm(values[i] - target[i])),
                         "cosine_distance": float(1 - np.dot(values[i], target[i]) /
                                                  (np.linalg.norm(values[i]) * np.linalg.norm(target[i]) + 1e-12)),
                         "shift_pearson": float(stats.pearsonr(shift_pred, shift_real)[0]) if np.std(shift_pred) > 0 else np.nan})
        predicted.append(pd.DataFrame(values, columns=feature_names).assign(pair=design.pairs["pair"].values, method=method))
    if "lsa" in preds:
        z = lm[0, design.pairs["a"]] - lm[0, [design.control]] + lm[0, design.pairs["b"]]
        latent_table = pd.DataFrame(z, columns=latent_columns(z.shape[1])).assign(
            pair=design.pairs["pair"].values, method="lsa")
    else:
        latent_table = pd.DataFrame()
    return pd.concat(predicted, ignore_index=True), pd.DataFrame(rows), latent_table


def shuffled_null(design: Design, latent: np.ndarray, features: np.ndarray, decode: Decoder, permutations: int,
                  seed: int, chunk: int = 100) -> pd.DataFrame:
    """L2 of every method's prediction to the real ``A|B`` means under ``permutations`` label shuffles
    (a zero-signature control row keeps its label: see ``Design.permuted``)."""
    if design.pairs.empty:
        return pd.DataFrame({"method": pd.Series(dtype=str), "permutation": pd.Series(dtype=int),
                             "pair": pd.Series(dtype=str), "l2": pd.Series(dtype=float)})
    rng = np.random.default_rng(seed)
    n_groups = len(design.groups)
    fm_real = group_means(design.labels, features, n_groups)[0]
    target = fm_real[design.pairs["ab"].to_numpy()]
    # predictions read only the singles of usable pairs and DMSO; float32 halves the memory traffic
    needed = np.unique(np.concatenate([design.pairs["a"], design.pairs["b"], [design.control]]))
    latent32, features32 = latent.astype(np.float32), features.astype(np.float32)
    out = []
    for start in range(0, permutations, chunk):
        n = min(chunk, permutations - start)
        labels = np.stack([design.permuted(rng) for _ in range(n)])
        preds = predict(design, group_means(labels, latent32, n_groups, needed),
                        group_means(labels, features32, n_groups, needed), decode, target)
        for method, values in preds.items():
            d = l2(values, target[None])  # (n, pairs)
            out.append(pd.DataFrame({"method": method, "permutation": np.repeat(np.arange(start, start + n), len(design.pairs)),
                                     "pair": np.tile(design.pairs["pair"].to_numpy(), n), "l2": d.ravel()}))
    return pd.concat(out, ignore_index=True)


def zscores(distances: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """Per pair and method: z against the null, empirical p = (k + 1) / (n + 1), BH q within method.

    The null is computed in float32, the real distance in float64: a null distance within
    ``TIE`` (relative) of the real one counts as a tie (<=), and a null whose spread is below that
    resolution is constant, so its z is undefined (NaN) and its p is 1. That is the case of a
    prediction that does not depend on the labels, such as the ``control`` baseline of a
    zero-signature dataset, whose control row never moves."""
    stats_ = null.groupby(["method", "pair"])["l2"].agg(null_mean="mean", null_sd="std", n_null="size").reset_index()
    merged = distances.merge(stats_, on=["method", "pair"], how="left")
    below = null.merge(distances[["method", "pair", "l2"]].rename(columns={"l2": "d_real"}), on=["method", "pair"])
    tie = TIE * below["d_real"].abs()
    k = (below["l2"] <= below["d_real"] + tie).groupby([below["method"], below["pair"]]).sum().rename("k").reset_index()
    merged = merged.merge(k, on=["method", "pair"], how="left")
    constant = merged["null_sd"] <= TIE * merged["null_mean"].abs()
    merged["z"] = ((merged["l2"] - merged["null_mean"]) / merged["null_sd"]).mask(constant)
    merged["p"] = (merged["k"] + 1) / (merged["n_null"] + 1)
    merged["q"] = (merged.groupby("method")["p"].transform(lambda p: stats.false_discovery_control(p.to_numpy(), method="bh"))
                   if len(merged) else pd.Series(dtype=float))
    return merged


def seed_spread(inputs: LsaInputs, models: Iterable[LatentModel]) -> pd.DataFrame:
    """LSA distance of each A|B under every seed's model: mean, standard deviation and count."""
    rows = []
    for model in models:
        z = model.encode(inputs.features.astype(np.float32)).astype(np.float64)
        _, dist, _ = score(inputs.design, z, inputs.features, model.decode, inputs.feature_names)
        rows.append(dist.loc[dist["method"] == "lsa", ["method", "pair", "l2"]])
    if not rows:
        return pd.DataFrame(columns=["method", "pair", "l2_seed_mean", "l2_seed_sd", "seeds"])
    both = pd.concat(rows)
    return both.groupby(["method", "pair"])["l2"].agg(l2_seed_mean="mean", l2_seed_sd="std", seeds="size").reset_index()
