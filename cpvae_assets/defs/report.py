"""``report``: the self-contained HTML report of one dataset (also ``cpvae report <dataset>``)."""

import dagster as dg
import pandas as pd

from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.orchestration.partitions import dataset_partitions
from cpvae_assets.orchestration.provenance import landing_provenance, run_ids
from cpvae_assets.report import collect, render
from cpvae_assets.report.collect import report_inputs
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.tables import atomic_path

BY_DATASET = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="dataset")
UPSTREAM = ("lsa_zscores", "method_comparison", "feature_group_contributions", "latent_correlation", "generation_qc", "training_curves")


@dg.asset(partitions_def=dataset_partitions, group_name="reporting", kinds={"html"},
          deps=[dg.AssetDep(name, partition_mapping=BY_DATASET) for name in UPSTREAM] + ["moa_groups"])
def report(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake]) -> pd.DataFrame:
    """``report.html`` beside this table: data summary, training, generation QC, latent interpretation,
    LSA with baselines and provenance, figures inlined. The table lists every file the report read."""
    dataset = context.partition_key
    data = collect(lake, dataset, dataset_spec(dataset, lake.landing(dataset)).kind)
    target = lake.folder("report", dataset) / "report.html"
    text = render(data, {"report run": context.run.run_id, **landing_provenance(context.instance, dataset)},
                  run_ids(context.instance, dataset, report_inputs()))
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    context.add_output_metadata({"report": dg.MetadataValue.path(str(target)), "model_types": ", ".join(data.model_types),
                                 "size_kb": round(len(text.encode()) / 1024, 1)})
    return pd.DataFrame(data.files)
