"""``cpvae report <dataset>``: one self-contained HTML file per dataset, to send to a colleague."""

from cpvae_assets.report.collect import MissingAssets, ReportData, collect
from cpvae_assets.report.html import render, write_report

__all__ = ["MissingAssets", "ReportData", "collect", "render", "write_report"]
