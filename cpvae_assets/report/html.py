"""The report as one HTML file: inline CSS, figures as data URIs, no script or font from the network.
A few lines of inline JavaScript count the figures that decoded, so a reader (or a test in a headless
browser) sees at once whether every figure rendered."""

from __future__ import annotations

import base64
import datetime as dt
import html
from functools import partial
from pathlib import Path

import pandas as pd

from cpvae_assets.interpretation.correlation import correlation_matrix
from cpvae_assets.interpretation.feature_groups import (
    cluster_order,
    contribution_matrix,
)
from cpvae_assets.plots import (
    active_features_plot,
    correlation_heatmap,
    feature_group_heatmap,
    forest_plot,
    training_curves_figure,
    traversal_plot,
    umap_figure,
)
from cpvae_assets.report.collect import ReportData, collect
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.tables import atomic_path
from cpvae_assets.storage.version import code_version

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;margin-top:2em}h3{margin-bottom:.3em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f3f3f3}figure{display:inline-block;margin:.5em}figcaption{font-size:.8em;color:#555}
img{max-width:100%}.note{color:#555;font-size:.9em}#render-check{font-size:.8em;color:#555}"""
RENDER_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.figure'), ok = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) { ok++; } });
  var p = document.getElementById('render-check');
  p.textContent = ok + ' of ' + imgs.length + ' figures rendered';
  p.setAttribute('data-rendered', ok); p.setAttribute('data-figures', imgs.length);
});
</script>"""
TOP = 10


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}", na_rep="", border=0)


def _figure(png: bytes, caption: str) -> str:
    src = "data:image/png;base64," + base64.b64encode(png).decode()
    text = html.escape(caption)
    return f'<figure><img class="figure" alt="{text}" src="{src}"><figcaption>{text}</figcaption></figure>'


def _data_section(data: ReportData) -> str:
    s = data.splits
    per_split = (s.groupby("split").agg(profiles=("profile_id", "size"), compounds=("compound", "nunique"),
                                        controls=("is_control", "sum")).reset_index())
    kinds = data.groups.groupby("kind").size().rename("groups").reset_index() if "kind" in data.groups else pd.DataFrame()
    return (f"<h2>Data</h2><p>{len(s):,} profiles x {data.n_features:,} features ({data.kind.replace('_', ' ')}); "
            f"{s['compound'].nunique():,} compounds, {s['moa'].nunique():,} MOA annotations.</p>"
            + _table(per_split) + "<h3>MOA groups used for latent space arithmetic</h3>" + _table(kinds))


def _training_section(data: ReportData) -> str:
    parts = [("<h2>Training</h2><p class='note'>Train (solid) and validation (dashed) loss, real vs "
             "column-shuffled data; the chosen model is the best real seed.</p>")]
    chosen = data.stacked("trained_models")
    cols = [c for c in ("model_type", "role", "seed", "epochs_run", "best_epoch", "val_loss", "latent_dim", "learning_rate",
                        "batch_size", "beta", "lam", "explained_variance", "seconds") if c in chosen.columns]
    parts.append(_table(chosen[cols]))
    for m in data.model_types:
        if m == "pca":  # fitted in one step: nothing to plot
            parts.append("<p class='note'>PCA is fitted in one step: no training curve; its explained variance is "
                         "in the table above.</p>")
            continue
        png = data.figure("training_curves", "curves", m,
                          lambda: training_curves_figure(data.table("training_curves", "data", m), f"{data.dataset} / {m}"))
        parts.append(_figure(png, f"Training curves, {m}"))
    return "".join(parts)


def _generation_section(data: ReportData) -> str:
    parts = [("<h2>Generation QC</h2><p class='note'>Test split: reconstruction error, and how far simulated "
             "profiles (decoded prior samples) are from real ones.</p>"), _table(data.stacked("generation_qc"))]
    for m in data.model_types:
        png = data.figure("generation_qc", "umap", m, lambda: umap_figure(data.table("generation_qc", "umap", m),
                                                                          f"{data.dataset} / {m}"))
        parts.append(_figure(png, f"UMAP of real, reconstructed and simulated test profiles, {m}"))
    return "".join(parts)


def _heatmap(groups: pd.DataFrame, dataset: str, model_type: str) -> bytes:
    matrix = contribution_matrix(groups)
    return feature_group_heatmap(matrix, *cluster_order(matrix), f"{dataset} / {model_type}")


def _interpretation_section(data: ReportData) -> str:
    rows = []
    for m in data.model_types:
        active = data.table("feature_group_contributions", "active", m)
        corr = data.table("latent_correlation", "summary", m).iloc[0]
        qc = data.table("generation_qc", "data", m).iloc[0]
        rows.append({"model_type": m, "latent_features": len(active), "active_latent_features": int(active["active"].sum()),
                     "mean_abs_correlation": corr["mean_abs_correlation"], "reconstruction_mse": qc["reconstruction_mse"]})
    parts = [("<h2>Latent interpretation</h2><p class='note'>Active: decoding z_i = +3 vs -3 moves some feature by at "
             "least the threshold. Lower mean |r| between latent features: more disentangled (Supplementary Figures 5 "
             "and 6).</p>"), _table(pd.DataFrame(rows))]
    for m in data.model_types:
        active = data.table("feature_group_contributions", "active", m)
        groups = data.table("feature_group_contributions", "data", m)
        if len(groups):
            png = data.figure("feature_group_contributions", "heatmap", m, partial(_heatmap, groups, data.dataset, m))
            parts.append(_figure(png, f"Feature-group contributions per latent feature, {m} (Figure 4)"))
        else:
            top = data.table("latent_traversal", "top", m)
            png = data.figure("latent_traversal", "traversal", m, partial(traversal_plot, top, f"{data.dataset} / {m}"))
            parts.append(_figure(png, f"Strongest genes per latent feature, {m}"))
        threshold = float(active["threshold"].iloc[0])
        png = data.figure("feature_group_contributions", "active", m,
                          partial(active_features_plot, active, threshold, m, f"{data.dataset} / {m}"))
        parts.append(_figure(png, f"Active latent features, {m}"))
        png = data.figure("latent_correlation", "heatmap", m, lambda: correlation_heatmap(
            correlation_matrix(data.table("latent_correlation", "data", m)), f"{data.dataset} / {m}"))
        parts.append(_figure(png, f"Latent feature correlation, {m}"))
    return "".join(parts)


def _lsa_section(data: ReportData) -> str:
    summary = data.stacked("lsa_zscores", "summary")
    z = data.stacked("lsa_zscores")
    lsa = z[z["method"] == "lsa"][["model_type", "pair", "l2", "z", "q", "average_precision"]]
    best = lsa.sort_values("z").groupby("model_type").head(TOP)
    worst = lsa.sort_values("z", ascending=False).groupby("model_type").head(TOP)
    maps = data.stacked("lsa_distances", "map")
    return ("<h2>Latent space arithmetic</h2><p class='note'>Per method: mean L2 distance of the predicted to the "
            "real A|B mean profile, the same under shuffled MOA labels, and the share of pairs with BH q &lt; 0.05. "
            "Baselines: feature arithmetic, mean of singles, best single (an oracle), control (no effect).</p>"
            + _table(summary)
            + f"<h3>Best predicted A|B (lowest z, top {TOP} per model type)</h3>" + _table(best)
            + f"<h3>Worst predicted A|B (highest z, {TOP} per model type)</h3>" + _table(worst)
            + "<h3>Retrieval: mean average precision (copairs, cosine distance)</h3><p class='note'>Query: a method's "
            "predicted A|B profile; positives: the real profiles of compounds annotated A|B; negatives: every other "
            "compound's profiles (controls excluded). p: copairs' permutation null.</p>" + _table(maps)
            + _comparison_part(data))


def _comparison_part(data: ReportData) -> str:
    table = data.stacked("method_comparison")
    cols = ["model_type", "baseline", "metric", "n", "mean_difference", "ci_low", "ci_high", "wilcoxon_p", "win_rate",
            "reason"]
    labelled = table.assign(label=table["model_type"] + " vs " + table["baseline"])
    return ("<h3>Does LSA beat the baselines?</h3><p class='note'>Per A|B pair, d = metric(LSA) - metric(baseline) "
            "on the same pair; mean of d with a percentile bootstrap 95% CI over pairs, two-sided Wilcoxon p and the "
            "share of pairs where LSA is better (win rate). L2 and cosine distance: d &lt; 0 means LSA is better; "
            "shift Pearson r (of the shifts from the control): d &gt; 0 means LSA is better. L2 alone rewards small "
            "predictions (the control baseline predicts no effect), so the three metrics are shown side by side. "
            "Fewer than 5 pairs: n and the reason only.</p>" + _table(table[cols])
            + _figure(forest_plot(labelled, f"{data.dataset}: LSA - baseline (95% bootstrap CI)"),
                      "LSA minus each baseline per metric (forest plot)"))


def _provenance_section(data: ReportData, provenance: dict[str, str], runs: dict[tuple[str, str], str]) -> str:
    seeds = data.stacked("trained_models")[["model_type", "role", "seed", "chosen"]]
    files = pd.DataFrame(data.files)
    files.insert(2, "run_id", [runs.get((a, m), "") for a, m in zip(files["asset"], files["model_type"])])
    extra = "".join(f"<li>{html.escape(k)}: <code>{html.escape(str(v))}</code></li>" for k, v in provenance.items())
    return ("<h2>How these numbers were produced</h2>"
            f"<ul><li>cpvae {html.escape(code_version())} (this report)</li>{extra}</ul><h3>Models and seeds</h3>" + _table(seeds)
            + "<h3>Every table and figure read: the run that wrote it, its code version, its op config (seeds) and "
            "the SHA-256 of the file</h3>" + _table(files))


def render(data: ReportData, provenance: dict[str, str] | None = None,
           runs: dict[tuple[str, str], str] | None = None) -> str:
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (_data_section(data) + _training_section(data) + _generation_section(data) + _interpretation_section(data)
            + _lsa_section(data) + _provenance_section(data, provenance or {}, runs or {}))
    title = html.escape(f"cpvae report: {data.dataset}")
    if data.incomplete:
        gaps = "; ".join(f"{m}: {', '.join(a)}" for m, a in data.incomplete.items())
        body = f"<p class='note'>Left out, not materialised yet: {html.escape(gaps)}.</p>" + body
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{CSS}</style></head><body><h1>{title}</h1><p class='note'>Generated {generated}; model types: "
            f"{', '.join(data.model_types)}.</p><p id='render-check'>figures not checked (JavaScript off)</p>"
            f"{body}{RENDER_CHECK}</body></html>")


def write_report(lake: Lake, dataset: str, kind: str, target: Path, provenance: dict[str, str] | None = None,
                 overwrite: bool = False, runs: dict[tuple[str, str], str] | None = None) -> Path:
    """Render and write atomically; an existing ``target`` is kept unless ``overwrite``."""
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists; pass --overwrite to replace it")
    text = render(collect(lake, dataset, kind), provenance, runs)  # raises before anything is written
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target
