"""The real LINCS plates shipped with the package (``cpvae_assets/data/real``), used as test inputs."""

from __future__ import annotations

from cpvae_assets.storage.paths import PACKAGE_DATA

REAL_CP = PACKAGE_DATA / "real" / "lincs_cellpainting_plate_SQ00015054.csv.gz"
REAL_L1000 = PACKAGE_DATA / "real" / "l1000_LJP005_A375_24H.gct.gz"
REAL_CONSENSUS = PACKAGE_DATA / "real" / "l1000_consensus_drugbank.tsv.gz"
REAL_CONSENSUS_MOA = PACKAGE_DATA / "real" / "l1000_consensus_drugbank_moa.tsv"
